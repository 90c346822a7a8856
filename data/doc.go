// Package data loads the image classification data qat trains on: MNIST
// and Fashion-MNIST in their idx file format, and a sample of MNIST
// embedded in the binary. It turns samples into normalised float32 batches
// and orders them reproducibly from a seed.
//
// # Files
//
// ReadIDX reads one idx array of unsigned bytes, raw or gzip-compressed
// (recognised by the magic bytes 1f 8b, never by a file name), and checks
// it completely: magic, element type, rank 1 to 4, positive dimensions,
// at most MaxIDXBytes elements, and exactly as many data bytes as the
// shape needs. LoadSplit reads a split from a directory holding
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each raw or with a .gz
// suffix. Every error starts with the name of the file at fault and says
// what is wrong; a missing file or directory wraps fs.ErrNotExist.
//
// # Sources
//
// ResolveSource maps a --data flag to a Source: "mnist" and
// "fashion-mnist" are directories under $QAT_DATA (default ~/.cache/qat)
// that scripts/fetch-data.sh fills, "embedded" is the sample built into
// the binary (the first 4000 training and 1000 test images of MNIST; see
// embedded/SOURCE.md), anything else a directory.
//
// # Datasets
//
// A Dataset holds N images of H x W uint8 pixels, row-major and
// contiguous, and a label below Classes for each. The package never
// modifies a Dataset's slices after building it; Limit returns views that
// share them. A Dataset is therefore safe for concurrent reads.
//
// # Batches and buffers
//
// Fill writes a batch into buffers the caller owns and reuses: pixels as a
// float32 NCHW tensor [B, 1, H, W], labels as ints. It allocates nothing
// and retains neither buffer. Batches yields index slices that are views
// into a buffer the Batches owns; they are valid until the next call to
// Epoch. The order of epoch e is Permutation(seed, e), a Fisher-Yates
// shuffle driven by a math/rand/v2 PCG seeded with (seed, e): it depends
// on nothing else, so a run, or a resumed run, sees the same batches for
// the same seed. A Batches is not safe for concurrent use.
//
// # Normalisation
//
// A pixel p becomes x = (float32(p)/255 - Mean) / Std in float32, as
// torchvision's ToTensor followed by Normalize. The zero Norm stops at
// [0, 1]. MNISTMean and MNISTStd are the usual MNIST constants;
// Dataset.MeanStd computes the constants of any dataset.
//
// # Panics
//
// Buffer lengths that do not match a batch, indices out of range, a batch
// size below 1, a negative limit or epoch, and an invalid Norm given to
// Fill are programmer errors and panic. Everything that depends on files
// is an error.
package data
