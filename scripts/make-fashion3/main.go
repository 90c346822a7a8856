// Command make-fashion3 writes Fashion-MNIST-3ch: Fashion-MNIST padded to
// 32x32 and replicated to 3 channels, in CIFAR-10's binary format; it is
// not CIFAR-10. It stands in for CIFAR-10, which cannot be downloaded
// here, to exercise the cifar10:DIR source and 3-channel models.
//
//	go run ./scripts/make-fashion3 -src /usr/share/datasets/fashion-mnist -out DIR
//	qat train --data cifar10:DIR ...
//
// The -src directory holds Fashion-MNIST's four idx files, raw or gzipped, as the
// Debian package dataset-fashion-mnist installs them in
// /usr/share/datasets/fashion-mnist or scripts/fetch-data.sh in
// $QAT_DATA/fashion-mnist. Each 28x28 image is zero-padded by 2 pixels on
// every side to 32x32 and copied into the red, green and blue channels;
// its label is Fashion-MNIST's (0 T-shirt/top to 9 ankle boot, not
// CIFAR-10's classes). The 60000 training images, in their order, make
// data_batch_1.bin to data_batch_5.bin, 12000 records each, and the 10000
// test images test_batch.bin. The output depends only on the input.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"qat/data"
)

// Sizes of Fashion-MNIST and of the output.
const (
	trainLen   = 60000
	testLen    = 10000
	batches    = 5
	side       = 28
	pad        = (data.CIFARSide - side) / 2
	recordSize = 1 + data.CIFARChannels*data.CIFARSide*data.CIFARSide
)

func main() {
	src := flag.String("src", "", "directory of the Fashion-MNIST idx files (required)")
	out := flag.String("out", "", "output directory (required)")
	flag.Parse()
	if *src == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./scripts/make-fashion3 -src DIR -out DIR")
		os.Exit(2)
	}
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "make-fashion3:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	train, err := load(src, data.Train, trainLen)
	if err != nil {
		return err
	}
	test, err := load(src, data.Test, testLen)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	per := trainLen / batches
	for b := range batches {
		name := fmt.Sprintf("data_batch_%d.bin", b+1)
		if err := write(filepath.Join(out, name), train, b*per, (b+1)*per); err != nil {
			return err
		}
	}
	return write(filepath.Join(out, "test_batch.bin"), test, 0, testLen)
}

// load loads a split of Fashion-MNIST from dir and checks that it has n
// images of 28x28 pixels.
func load(dir, split string, n int) (*data.Dataset, error) {
	d, err := data.LoadSplit(dir, split)
	if err != nil {
		return nil, err
	}
	if d.N != n || d.C != 1 || d.H != side || d.W != side {
		return nil, fmt.Errorf("%s: %d images of %dx%dx%d, want Fashion-MNIST's %d of 1x%dx%d", d.Name, d.N, d.C, d.H, d.W, n, side, side)
	}
	return d, nil
}

// write writes images lo to hi of d to path as CIFAR-10 records.
func write(path string, d *data.Dataset, lo, hi int) error {
	b := make([]byte, (hi-lo)*recordSize) // zero: the padding
	plane := data.CIFARSide * data.CIFARSide
	for i := lo; i < hi; i++ {
		rec := b[(i-lo)*recordSize : (i-lo+1)*recordSize]
		rec[0] = d.Labels[i]
		img := d.Image(i)
		for c := range data.CIFARChannels {
			for y := range side {
				dst := rec[1+c*plane+(y+pad)*data.CIFARSide+pad:]
				copy(dst[:side], img[y*side:(y+1)*side])
			}
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d images\n", path, hi-lo)
	return nil
}
