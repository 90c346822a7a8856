// Package safetensors reads and writes safetensors files, the container of
// qat's float32 checkpoints and int8 model files.
//
// # Format
//
// A file is, in order:
//
//	8 bytes   N, the header size, an unsigned little-endian 64-bit integer
//	N bytes   the header: a UTF-8 JSON object, optionally padded with spaces
//	rest      the data buffer
//
// The header maps each tensor name to an entry
//
//	{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
//
// whose offsets index the data buffer, and may hold "__metadata__", an
// object of string values. Tensor data is little-endian and row-major
// (C order), the layout of Hugging Face's reference implementation
// (github.com/huggingface/safetensors), whose files this package reads and
// whose byte layout it writes.
//
// # Invariants
//
// Parse accepts a file only when it is entirely well formed; every rejection
// is an error wrapping ErrFormat that names the problem (and ReadFile adds
// the path). A well-formed file has:
//
//   - a header of at most MaxHeaderSize bytes, inside the file, valid UTF-8,
//     starting with '{' and holding exactly one JSON object, with no key
//     repeated at any level;
//   - a non-empty name for every tensor, and "__metadata__", if present,
//     an object whose values are all strings;
//   - for every tensor exactly the fields dtype, shape and data_offsets: a
//     dtype this package knows (see DType), dimensions that are non-negative
//     integers whose product times the element size fits in an int, and
//     data_offsets [begin, end] with begin <= end <= the buffer length and
//     end-begin equal to that product times the element size;
//   - tensors that, sorted by offset, cover the data buffer exactly: no hole
//     between tensors, no overlap and no byte after the last one. Tensors
//     with no elements (a dimension of 0) have begin == end and may share
//     an offset.
//
// A 0-d tensor (shape []) holds one element. The reference implementation
// ignores unknown fields in a tensor entry; Parse rejects them, as it rejects
// the sub-byte dtypes (F4, F6_*) that this package does not support.
//
// Write produces the layout of the reference writer: the header is compact
// JSON with "__metadata__" first (omitted when there is no metadata; keys in
// byte order), then the tensors sorted by descending dtype rank (the
// reference's order, which puts wider elements first) and then by name,
// each entry's fields in the order dtype, shape, data_offsets; the header is
// padded with spaces to a multiple of 8 bytes, so the data buffer starts
// 8-byte aligned and every tensor's data is aligned to its element size.
// Writing the same File twice gives identical bytes.
//
// Write validates the whole File before it writes a byte (errors wrap
// ErrInvalid): each tensor's data length must equal the product of its
// shape times its element size, names must be non-empty valid UTF-8 other
// than "__metadata__", and metadata keys and values valid UTF-8. WriteFile
// writes a temporary file in the destination directory, syncs it, and
// renames it over the destination, so the destination holds either its old
// content or the complete new file, never a partial one.
//
// # Ownership
//
// Parse does not copy tensor data: each Tensor.Data aliases the input
// buffer (with its capacity clipped to the tensor, so an append never
// overwrites a neighbour). The caller must not modify the buffer while the
// File is in use. Read and ReadFile read into a fresh buffer that only the
// returned File references. FromFloat32 and the other constructors copy
// their arguments, and the typed getters (Float32, Int8, Uint8, Int32)
// return fresh slices. Write never retains or modifies the File.
//
// # Digest
//
// A writer may Seal a file: its metadata then holds under "qat.sha256"
// (MetaDigest) the SHA-256 of its content, metadata and tensors (Digest).
// Parse checks the digest of every file that holds one and rejects a file
// whose content no longer matches it, so a damaged checkpoint is an error,
// not other numbers. Files without the key (those of other writers, or
// older ones of qat's) are read as before.
package safetensors
