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

// Fill writes the samples idx of d into caller-owned buffers: their
// pixels into x as an NCHW tensor [len(idx), C, H, W] (len(x) must be
// len(idx)*C*H*W), channel c normalised by n.Of(c), and their labels into
// y (len(idx) long, or nil to skip labels). Fill allocates nothing, keeps
// neither buffer and modifies nothing else, so one pair of buffers serves
// every batch and a Dataset may be filled from several goroutines at
// once. Wrong buffer lengths, an index out of range or an n that is not
// valid for C channels are programmer errors and panic.
func (d *Dataset) Fill(x []float32, y []int, idx []int, n model.Norm) {
	d.fill("Fill", x, y, idx, n, Augment{}, 0, 0)
}

// fill is Fill, or FillAugmented with a, seed and epoch; fn names the
// caller in panics.
func (d *Dataset) fill(fn string, x []float32, y []int, idx []int, n model.Norm, a Augment, seed uint64, epoch int) {
	checkNorm(fn, n, d.C)
	plane, size := d.H*d.W, d.ImageSize()
	if len(x) != len(idx)*size {
		panic(fmt.Sprintf("data: %s: x has %d elements for %d images of %dx%dx%d", fn, len(x), len(idx), d.C, d.H, d.W))
	}
	if y != nil && len(y) != len(idx) {
		panic(fmt.Sprintf("data: %s: y has %d elements for %d samples", fn, len(y), len(idx)))
	}
	plain := a == Augment{}
	// Channel by channel, so that one table of the 256 normalised pixel
	// values, on the stack, serves the whole batch.
	for c := range d.C {
		var t [256]float32
		nc := n.Of(c)
		for p := range t {
			t[p] = nc.Apply(uint8(p))
		}
		for b, i := range idx {
			src := d.Image(i)[c*plane : (c+1)*plane]
			dst := x[b*size+c*plane : b*size+(c+1)*plane]
			if plain {
				for k, p := range src {
					dst[k] = t[p]
				}
				continue
			}
			oy, ox, flip := a.draw(seed, epoch, i)
			augmentPlane(dst, src, d.H, d.W, &t, oy, ox, flip)
		}
	}
	if y != nil {
		for b, i := range idx {
			y[b] = int(d.Labels[i])
		}
	}
}

// checkNorm panics, naming fn, unless n is valid for channels channels.
// Norm.Validate allocates only for an error, so Fill allocates nothing.
func checkNorm(fn string, n model.Norm, channels int) {
	if err := n.Validate(channels); err != nil {
		panic("data: " + fn + ": " + err.Error())
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
