package data

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Shape of the images of CIFAR-10: 3 channels (red, green, blue) of
// 32 x 32 pixels.
const (
	CIFARChannels = 3
	CIFARSide     = 32
)

// cifarImage and cifarRecord are the sizes of an image and of a record
// (its label byte, then the image) of CIFAR-10's binary version.
const (
	cifarImage  = CIFARChannels * CIFARSide * CIFARSide
	cifarRecord = 1 + cifarImage
)

// cifarFiles returns the base names of the files of a CIFAR-10 split, in
// the order LoadCIFAR10 concatenates them.
func cifarFiles(split string) ([]string, error) {
	switch split {
	case Train:
		return []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}, nil
	case Test:
		return []string{"test_batch.bin"}, nil
	}
	return nil, fmt.Errorf("unknown split %q (want %q or %q)", split, Train, Test)
}

// LoadCIFAR10 loads split Train or Test of the binary version of CIFAR-10
// from dir, the folder cifar-10-batches-bin of its archive: the training
// split is data_batch_1.bin to data_batch_5.bin concatenated in that
// order, the test split test_batch.bin. Each file is a positive whole
// number of 3073-byte records: a label below NumClasses, then 1024 red,
// 1024 green and 1024 blue pixels, each 32 x 32 row-major, which are the
// image in CHW order (10000 records a file in CIFAR-10 itself). Errors
// name the file at fault and, for a bad label, the record; a missing file
// is an error wrapping fs.ErrNotExist. A split holds at most MaxIDXBytes
// pixels. The Dataset, of 3 x 32 x 32 images and NumClasses classes, is
// named after dir and the split.
func LoadCIFAR10(dir, split string) (*Dataset, error) {
	names, err := cifarFiles(split)
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(names))
	var total int64
	for i, name := range names {
		paths[i] = filepath.Join(dir, name)
		st, err := os.Stat(paths[i])
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: CIFAR-10 %s batch not found: %w", paths[i], split, fs.ErrNotExist)
		} else if err != nil {
			return nil, err // *fs.PathError names the file
		}
		total += st.Size()
	}
	// The sizes only reserve memory; readCIFAR checks what it reads.
	records := min(total, MaxIDXBytes) / cifarRecord
	images, labels := make([]uint8, 0, records*cifarImage), make([]uint8, 0, records)
	for _, path := range paths {
		if images, labels, err = readCIFARFile(path, images, labels); err != nil {
			return nil, err
		}
	}
	return &Dataset{
		Name:    dir + " " + split,
		N:       len(labels),
		C:       CIFARChannels,
		H:       CIFARSide,
		W:       CIFARSide,
		Images:  images,
		Labels:  labels,
		Classes: NumClasses,
	}, nil
}

// readCIFARFile is readCIFAR of the file at path.
func readCIFARFile(path string, images, labels []uint8) ([]uint8, []uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err // *fs.PathError names the file
	}
	defer f.Close()
	return readCIFAR(bufio.NewReaderSize(f, 1<<16), path, images, labels)
}

// readCIFAR reads records of CIFAR-10's binary version from r until it
// ends and appends their pixels to images and their labels to labels.
// name identifies r in errors, each of which starts with it: an empty
// input, one that is not a whole number of records (with its byte and
// record counts), a label not below NumClasses (with the record's index
// in r), or more than MaxIDXBytes pixels in images.
func readCIFAR(r io.Reader, name string, images, labels []uint8) ([]uint8, []uint8, error) {
	var rec [cifarRecord]byte
	for n := 0; ; n++ {
		k, err := io.ReadFull(r, rec[:])
		switch {
		case err == io.EOF && n == 0:
			return nil, nil, fmt.Errorf("%s: empty file: want records of %d bytes (a label and %dx%dx%d pixels)", name, cifarRecord, CIFARChannels, CIFARSide, CIFARSide)
		case err == io.EOF:
			return images, labels, nil
		case err == io.ErrUnexpectedEOF:
			return nil, nil, fmt.Errorf("%s: %d bytes are not a whole number of %d-byte records: %d records and %d bytes over",
				name, int64(n)*cifarRecord+int64(k), cifarRecord, n, k)
		case err != nil:
			return nil, nil, fmt.Errorf("%s: reading record %d: %w", name, n, err)
		case rec[0] >= NumClasses:
			return nil, nil, fmt.Errorf("%s: record %d: label %d is not below %d", name, n, rec[0], NumClasses)
		case int64(len(images))+cifarImage > MaxIDXBytes:
			return nil, nil, fmt.Errorf("%s: record %d: the split exceeds the limit of %d pixels (--max-data-bytes raises it)", name, n, MaxIDXBytes)
		}
		labels = append(labels, rec[0])
		images = append(images, rec[1:]...)
	}
}
