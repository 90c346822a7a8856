// Package data loads the image classification data qat trains on: MNIST
// and Fashion-MNIST in their idx file format, a sample of MNIST embedded
// in the binary, CIFAR-10 in its binary format and folders of PNG and
// JPEG images. It turns samples into normalised, optionally augmented,
// float32 batches and orders them reproducibly from a seed.
//
// # Files
//
// ReadIDX reads one idx array of unsigned bytes, raw or gzip-compressed
// (recognised by the magic bytes 1f 8b, never by a file name), and checks
// it completely: magic, element type, rank 1 to 4, positive dimensions,
// at most MaxIDXBytes elements, and exactly as many data bytes as the
// shape needs. LoadSplit reads a split from a directory holding
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, each raw or with a .gz
// suffix. LoadCIFAR10 reads the files data_batch_1.bin to
// data_batch_5.bin (training) or test_batch.bin (test) of CIFAR-10's
// binary version: records of a label byte and 3x32x32 pixels, any
// positive whole number of them a file. LoadImageFolder reads
// torchvision's ImageFolder layout, DIR/train/<class>/* and
// DIR/test/<class>/* (or DIR/val), PNG and JPEG files recognised by their
// content, bounded in number (MaxFolderFiles) and in size
// (MaxImagePixels, checked from the header before decoding), converted to
// RGB, resized so that the shorter side is SIZE and centre-cropped to
// SIZE x SIZE. Every error starts with the name of the file at fault and
// says what is wrong; a missing file or directory wraps fs.ErrNotExist.
//
// # Sources
//
// ResolveSource maps a --data flag to a Source: "mnist" and
// "fashion-mnist" are directories under $QAT_DATA (default ~/.cache/qat)
// that scripts/fetch-data.sh fills, "embedded" is the sample built into
// the binary (the first 4000 training and 1000 test images of MNIST; see
// embedded/SOURCE.md), "cifar10:DIR" a directory of CIFAR-10 files,
// "imagefolder:DIR" and "imagefolder:DIR:SIZE" an image folder (SIZE 32
// by default), anything else a directory of MNIST-format files.
//
// # Datasets
//
// A Dataset holds N images of C channels of H x W uint8 pixels, in CHW
// order (PyTorch's: channel planes, each row-major) and contiguous, and a
// label below Classes for each. MNIST-format data has C = 1, CIFAR-10 and
// image folders C = 3 (red, green, blue). The package never modifies a
// Dataset's slices after building it; Limit returns views that share
// them. A Dataset is therefore safe for concurrent reads, Fill included.
//
// # Batches and buffers
//
// Fill writes a batch into buffers the caller owns and reuses: pixels as a
// float32 NCHW tensor [B, C, H, W], labels as ints. It allocates nothing
// and retains neither buffer. Batches yields index slices that are views
// into a buffer the Batches owns; they are valid until the next call to
// Epoch. The order of epoch e is Permutation(seed, e), a Fisher-Yates
// shuffle driven by a math/rand/v2 PCG seeded with (seed, e): it depends
// on nothing else, so a run, or a resumed run, sees the same batches for
// the same seed. A Batches is not safe for concurrent use.
//
// # Augmentation
//
// FillAugmented is Fill with each training image augmented as
// torchvision's RandomCrop(size, padding=Pad) with fill 0 followed, if
// Flip, by RandomHorizontalFlip(): a crop of the original size at a
// uniform offset of the image zero-padded by Pad on each side
// (0 <= Pad <= min(H, W)), then a left-right flip with probability 1/2.
// The draws for sample i in epoch e come from a math/rand/v2 PCG seeded
// from (seed, e, i) alone, so an image's augmentation does not depend on
// the batch it is in, on the order of the epoch or on the goroutine that
// fills it, and a resumed run sees the same pixels. The zero Augment
// augments nothing: FillAugmented then writes what Fill writes.
//
// # Normalisation
//
// A pixel p of channel c becomes x = (float32(p)/255 - mean) / std in
// float32, as torchvision's ToTensor followed by Normalize, with the
// constants of n.Of(c): the same for every channel, or per channel. The
// zero Norm stops at [0, 1]. MNISTMean and MNISTStd are the usual MNIST
// constants; Dataset.MeanStd computes the constants of any dataset and
// Dataset.ChannelMeanStd those of each channel, which Splits uses for
// CIFAR-10 and image folders.
//
// # Panics
//
// Buffer lengths that do not match a batch, indices out of range, a batch
// size below 1, a negative limit or epoch, and an invalid Norm or Augment
// given to Fill or FillAugmented are programmer errors and panic. Everything that depends on files
// is an error.
package data
