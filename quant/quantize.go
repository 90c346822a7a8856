package quant

import "fmt"

// magic is 1.5*2^23: for |r| < 2^22, float32(r+magic)-magic is r rounded
// half to even (the FPU's rounding of the sum). For larger |r| the result
// keeps a magnitude of at least 2^22-2, outside every code range, so range
// tests on it stay exact.
const magic = 1.5 * (1 << 23)

// Code returns the code of x for reciprocal scale inv (float32(1/scale)) and
// zero point zp, clamped to [qmin, qmax], and whether the unclamped code was
// inside the range, which is the straight-through estimator's mask. NaN
// gives zp and false.
func Code(x, inv float32, zp, qmin, qmax int32) (q int32, inRange bool) {
	// The conversion rounds the product, so it cannot fuse with the sum.
	r := float32(float32(x*inv)+magic) - magic
	switch {
	case r < float32(qmin-zp):
		return qmin, false
	case r > float32(qmax-zp):
		return qmax, false
	case r == r:
		return int32(r) + zp, true
	}
	return zp, false
}

// fake is FakeQuantize of one element, with lo = qmin-zp and hi = qmax-zp.
// It clamps x*inv to [lo, hi] before rounding, which gives the same result
// as rounding first (rounding is monotone and the bounds are integers), and
// then rounds half to even with magic: exact for the clamped magnitudes, at
// most 2^9. NaN passes through min, max and the rounding unchanged.
func fake(x, s, inv, lo, hi float32) float32 {
	t := min(max(float32(x*inv), lo), hi)
	return float32(float32(t+magic)-magic) * s
}

// Layout is how a per-channel tensor's elements map to channels: the flat
// row-major index i is in channel (i / Inner) % Channels. A per-tensor
// tensor has one channel and Inner equal to its length.
type Layout struct {
	Channels int // size of the channel axis
	Inner    int // elements after the channel axis, the run length of one channel
}

// LayoutOf returns the layout of a tensor of the given shape quantized with
// p. It panics if the shape holds a different number of elements than n, if
// p's axis is outside the shape, or if the channel count differs from the
// number of scales.
func LayoutOf(p Params, shape []int, n int) Layout {
	if p.PerTensor() {
		if shape != nil && numElements(shape) != n {
			panic(fmt.Sprintf("quant: shape %v does not hold %d elements", shape, n))
		}
		return Layout{Channels: 1, Inner: n}
	}
	if numElements(shape) != n {
		panic(fmt.Sprintf("quant: shape %v does not hold %d elements", shape, n))
	}
	if p.Axis >= len(shape) {
		panic(fmt.Sprintf("quant: channel axis %d outside shape %v", p.Axis, shape))
	}
	if shape[p.Axis] != len(p.Scale) {
		panic(fmt.Sprintf("quant: axis %d of shape %v has %d channels, params have %d", p.Axis, shape, shape[p.Axis], len(p.Scale)))
	}
	return Layout{Channels: shape[p.Axis], Inner: numElements(shape[p.Axis+1:])}
}

// ForEachRun calls f for each maximal run src[lo:hi] that lies in one
// channel c, in index order. It is how every per-channel loop in qat walks
// a tensor.
func (l Layout) ForEachRun(n int, f func(c, lo, hi int)) {
	if l.Inner == 0 {
		return
	}
	for lo, c := 0, 0; lo < n; lo += l.Inner {
		f(c, lo, lo+l.Inner)
		if c++; c == l.Channels {
			c = 0
		}
	}
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("quant: negative dimension in shape %v", shape))
		}
		n *= d
	}
	return n
}

func checkLen(dst, src int) {
	if dst != src {
		panic(fmt.Sprintf("quant: dst has %d elements, src %d", dst, src))
	}
}

// Quantize writes the clamped codes of src into dst. shape is src's
// row-major shape; it may be nil for per-tensor params. NaN becomes the zero
// point. It panics on the length and shape mismatches described in the
// package doc; p must be valid.
func Quantize(dst []int32, src []float32, shape []int, p Params) {
	checkLen(len(dst), len(src))
	LayoutOf(p, shape, len(src)).ForEachRun(len(src), func(c, lo, hi int) {
		inv, zp := 1/p.Scale[c], p.ZeroPoint[c]
		for i, x := range src[lo:hi] {
			dst[lo+i], _ = Code(x, inv, zp, p.QMin, p.QMax)
		}
	})
}

// Dequantize writes (q - zero point) * scale for each code of src into dst.
func Dequantize(dst []float32, src []int32, shape []int, p Params) {
	checkLen(len(dst), len(src))
	LayoutOf(p, shape, len(src)).ForEachRun(len(src), func(c, lo, hi int) {
		s, zp := p.Scale[c], p.ZeroPoint[c]
		for i, q := range src[lo:hi] {
			dst[lo+i] = float32(q-zp) * s
		}
	})
}

// FakeQuantize writes Dequantize(Quantize(src)) into dst without the
// integer buffer. dst may be src. NaN stays NaN.
func FakeQuantize(dst, src []float32, shape []int, p Params) {
	checkLen(len(dst), len(src))
	LayoutOf(p, shape, len(src)).ForEachRun(len(src), func(c, lo, hi int) {
		s, zp := p.Scale[c], p.ZeroPoint[c]
		inv, qlo, qhi := 1/s, float32(p.QMin-zp), float32(p.QMax-zp)
		d := dst[lo:hi]
		for i, x := range src[lo:hi] {
			d[i] = fake(x, s, inv, qlo, qhi)
		}
	})
}
