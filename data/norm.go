package data

import (
	"fmt"

	"qat/model"
)

// Normalisation constants (for a model.Norm): the mean and standard deviation of the pixels
// of each training set scaled to [0, 1]. MNIST's are the values of
// PyTorch's MNIST example; Fashion-MNIST's were computed with
// Dataset.MeanStd over its 60000 training images (0.28604, 0.35302).
const (
	MNISTMean        = 0.1307
	MNISTStd         = 0.3081
	FashionMNISTMean = 0.2860
	FashionMNISTStd  = 0.3530
)

// table returns n.Apply for every pixel value.
func table(n model.Norm) *[256]float32 {
	var t [256]float32
	for p := range t {
		t[p] = n.Apply(uint8(p))
	}
	return &t
}

// Fill writes the samples idx of d into caller-owned buffers: their
// pixels, normalised by n, into x as an NCHW tensor [len(idx), 1, H, W]
// (len(x) must be len(idx)*H*W), and their labels into y (len(idx) long,
// or nil to skip labels). Fill allocates nothing and keeps neither buffer,
// so one pair of buffers serves every batch. Wrong buffer lengths, an
// index out of range or an invalid n are programmer errors and panic.
func (d *Dataset) Fill(x []float32, y []int, idx []int, n model.Norm) {
	if err := n.Validate(); err != nil {
		panic("data: Fill: " + err.Error())
	}
	size := d.H * d.W
	if len(x) != len(idx)*size {
		panic(fmt.Sprintf("data: Fill: x has %d elements for %d images of %dx%d", len(x), len(idx), d.H, d.W))
	}
	if y != nil && len(y) != len(idx) {
		panic(fmt.Sprintf("data: Fill: y has %d elements for %d samples", len(y), len(idx)))
	}
	t := table(n)
	for b, i := range idx {
		img := d.Image(i)
		dst := x[b*size : (b+1)*size]
		for k, p := range img {
			dst[k] = t[p]
		}
		if y != nil {
			y[b] = int(d.Labels[i])
		}
	}
}

// OneHot writes the one-hot encoding of labels into the caller-owned dst,
// a [len(labels), classes] row-major matrix. A label outside [0, classes)
// or len(dst) != len(labels)*classes panics.
func OneHot(dst []float32, labels []int, classes int) {
	if len(dst) != len(labels)*classes {
		panic(fmt.Sprintf("data: OneHot: dst has %d elements for %d labels of %d classes", len(dst), len(labels), classes))
	}
	clear(dst)
	for i, l := range labels {
		if l < 0 || l >= classes {
			panic(fmt.Sprintf("data: OneHot: label %d outside [0, %d)", l, classes))
		}
		dst[i*classes+l] = 1
	}
}
