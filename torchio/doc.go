// Package torchio reads PyTorch state_dicts and maps them onto qat models.
//
// ReadStateDict reads a file written by torch.save(model.state_dict(), f)
// (the zip archive of PyTorch 1.6 and later) or a safetensors file, told
// apart by their first bytes, not their names; Retarget and Import turn
// the tensors into a float model (package layers) of a model.Graph.
//
// # The archive
//
// torch.save writes a zip archive whose entries share one top-level
// folder, PREFIX (the file's stem, or "archive"):
//
//	PREFIX/data.pkl     the pickled state_dict (pickle protocol 2)
//	PREFIX/data/KEY     the bytes of storage KEY, little-endian
//	PREFIX/version      the format version, a decimal number
//	PREFIX/byteorder    "little" (PyTorch 2.1 and later; absent: little)
//
// The pickle is an OrderedDict (or dict) of names to tensors, each
// pickled as torch._utils._rebuild_tensor_v2(storage, offset, size,
// stride, requires_grad, backward_hooks) (wrapped in _rebuild_parameter
// for a Parameter) whose storage is the persistent id ("storage",
// torch.FloatStorage, KEY, location, elements).
//
// # Untrusted files
//
// A pickle is a program: torch.load runs whatever functions it names.
// ReadStateDict runs nothing. It unpickles with
// github.com/nlpodyssey/gopickle after checking the whole pickle
// against the rules of PyTorch 1.13's torch.load(weights_only=True)
// (torch/_weights_only_unpickler.py): only the opcodes that unpickler
// accepts (except NEWOBJ, which no global below can use), every length
// inside the pickle, and only these globals, those a state_dict needs:
//
//	collections.OrderedDict
//	torch._utils._rebuild_tensor_v2
//	torch._utils._rebuild_parameter
//	torch.FloatStorage, torch.DoubleStorage, torch.HalfStorage,
//	torch.BFloat16Storage, torch.LongStorage, torch.IntStorage,
//	torch.ShortStorage, torch.CharStorage, torch.ByteStorage,
//	torch.BoolStorage
//
// Any other global (os.system, a module class of a pickled model) is an
// error that names it; the checks run before gopickle sees a byte, so
// its own built-in globals (__builtin__.object, copy_reg._reconstructor)
// are refused as well. The storages and tensors the pickle describes are
// then checked against the archive, each error naming the tensor: the
// storage record must exist and hold exactly its elements, a tensor
// must lie inside its storage and be contiguous (row-major; a transposed
// or expanded view is an error), and its dtype one of float32, float64,
// float16 and bfloat16, converted to float32, or int64 (BatchNorm's
// num_batches_tracked), kept as integers.
//
// Sizes are checked against MaxEntries, MaxPickleBytes and MaxBytes
// before anything of that size is allocated; every limit's error names
// the variable that raises it.
package torchio
