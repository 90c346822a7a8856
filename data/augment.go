package data

import (
	"fmt"
	"math/rand/v2"

	"qat/model"
)

// Augment is the random augmentation of training images: torchvision's
// RandomCrop(size, padding=Pad) with fill 0, then RandomHorizontalFlip()
// if Flip. The zero value augments nothing.
type Augment struct {
	// Pad is the zero padding on each side of the image from which a
	// crop of the original size is taken at a uniformly random offset,
	// 0 (no crop) to the smaller side of the image.
	Pad int `json:"pad,omitempty"`
	// Flip mirrors the image left to right with probability 1/2.
	Flip bool `json:"flip,omitempty"`
}

// Validate checks that a fits images of h x w pixels: 0 <= Pad <= min(h, w).
func (a Augment) Validate(h, w int) error {
	if a.Pad < 0 || a.Pad > min(h, w) {
		return fmt.Errorf("augment pad %d is outside [0, %d], the smaller side of %dx%d images", a.Pad, min(h, w), h, w)
	}
	return nil
}

// FillAugmented is Fill with every image augmented by a: sample i of
// epoch epoch is cropped and flipped by draws from a math/rand/v2 PCG
// seeded with (seed ^ mix(epoch), mix(i)), mix being SplitMix64's
// output function, so that its pixels depend on seed, epoch and i alone,
// not on the other samples of the batch or on which goroutine fills it.
// Padding pixels are pixel value 0 before normalisation. With the zero a,
// it writes what Fill writes. It allocates nothing and modifies nothing
// but the buffers, as Fill. A negative epoch or an a not valid for d's
// images (see Augment.Validate) panics, besides what panics in Fill.
func (d *Dataset) FillAugmented(x []float32, y []int, idx []int, n model.Norm, a Augment, seed uint64, epoch int) {
	if epoch < 0 {
		panic(fmt.Sprintf("data: FillAugmented: negative epoch %d", epoch))
	}
	if err := a.Validate(d.H, d.W); err != nil {
		panic("data: FillAugmented: " + err.Error())
	}
	d.fill("FillAugmented", x, y, idx, n, a, seed, epoch)
}

// draw returns the augmentation of sample i in epoch: the offset (oy, ox)
// of the crop from the image's top left corner, each in [-Pad, Pad], and
// whether to flip. Like torchvision, it draws the crop's row, then its
// column, then the flip.
func (a Augment) draw(seed uint64, epoch, i int) (oy, ox int, flip bool) {
	var src rand.PCG
	src.Seed(seed^mix(uint64(epoch)), mix(uint64(i)))
	if a.Pad > 0 {
		n := uint64(2*a.Pad + 1)
		oy = int(uniform(&src, n)) - a.Pad
		ox = int(uniform(&src, n)) - a.Pad
	}
	if a.Flip {
		flip = src.Uint64()>>63 == 1
	}
	return oy, ox, flip
}

// mix is SplitMix64's output function of the state x (Steele, Lea and
// Flood, "Fast splittable pseudorandom number generators", 2014), a
// bijection of the uint64 values.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// augmentPlane writes one h x w channel plane src, augmented, into dst
// through the table t of normalised pixel values: the crop at offset
// (oy, ox) of src zero-padded, mirrored left to right if flip, that is
// dst[y][x] = src[y+oy][x'+ox] with x' = w-1-x if flip and x otherwise,
// t[0] where that falls outside src.
func augmentPlane(dst []float32, src []uint8, h, w int, t *[256]float32, oy, ox int, flip bool) {
	for y := range h {
		row := dst[y*w : (y+1)*w]
		sy := y + oy
		if sy < 0 || sy >= h {
			for x := range row {
				row[x] = t[0]
			}
			continue
		}
		srow := src[sy*w : (sy+1)*w]
		for x := range row {
			sx := x
			if flip {
				sx = w - 1 - x
			}
			sx += ox
			if sx < 0 || sx >= w {
				row[x] = t[0]
			} else {
				row[x] = t[srow[sx]]
			}
		}
	}
}
