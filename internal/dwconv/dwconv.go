package dwconv

import "fmt"

// MaxTaps is the most taps Row accepts: 255*128*MaxTaps < 2^31, so the
// int32 sums are exact.
const MaxTaps = 65792

// Weights returns the int8 codes w widened for Row: each code's int16 in
// the low 16 bits of an int32 lane, zero high bits.
func Weights(w []int8) []int32 {
	lanes := make([]int32, len(w))
	for i, v := range w {
		lanes[i] = int32(uint16(int16(v)))
	}
	return lanes
}

// Row writes the accumulators of one output row of a depthwise
// convolution with c channels and ow output columns into acc[:ow*c]:
//
//	acc[ox*c+ch] = sum over t < len(off) of x[off[t] + ox*colStep + ch] * w[t*c+ch]
//
// with x the staged codes minus the input zero point (|x| <= 255) and w
// from Weights, one row of c lanes per tap. off holds the taps' offsets
// in x (for a k x k window over a staged row stride rs: ky*rs + kx*c,
// tap t = ky*k + kx) and colStep the offset between output columns
// (stride * c).
//
// Row panics if c, ow or len(off) is below 1, len(off) > MaxTaps, an
// offset or colStep is negative, or acc, x or w is too short: these are
// programming errors.
func Row(acc, x, w []int32, off []int, c, ow, colStep int) {
	if c < 1 || ow < 1 || len(off) < 1 || len(off) > MaxTaps || colStep < 0 || len(acc) < ow*c || len(w) < len(off)*c {
		panic(fmt.Sprintf("dwconv: Row of %d channels, %d columns, %d taps, column step %d, %d accumulators, %d weights",
			c, ow, len(off), colStep, len(acc), len(w)))
	}
	for _, o := range off {
		if o < 0 || o+(ow-1)*colStep+c > len(x) {
			panic(fmt.Sprintf("dwconv: tap offset %d reads past %d staged values", o, len(x)))
		}
	}
	row(acc, x, w, off, c, ow, colStep)
}

// Center writes the codes src minus the zero point z into dst as int32,
// the staged values of Row: dst[i] = int32(src[i]) - z. It panics if dst
// is shorter than src.
func Center(dst []int32, src []uint8, z uint8) {
	if len(dst) < len(src) {
		panic(fmt.Sprintf("dwconv: Center of %d codes into %d values", len(src), len(dst)))
	}
	if len(src) > 0 {
		center(dst, src, int32(z))
	}
}

// centerGo is the pure-Go Center on checked arguments.
func centerGo(dst []int32, src []uint8, z int32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = int32(v) - z
	}
}

// rowGo is the pure-Go Row on checked arguments.
func rowGo(acc, x, w []int32, off []int, c, ow, colStep int) {
	rowGoChannels(acc, x, w, off, c, 0, ow, colStep)
}

// rowGoChannels is rowGo for channels c0 <= ch < c only.
func rowGoChannels(acc, x, w []int32, off []int, c, c0, ow, colStep int) {
	for ox := range ow {
		clear(acc[ox*c+c0 : (ox+1)*c])
	}
	for t, o := range off {
		wt := w[t*c+c0 : (t+1)*c]
		for ox := range ow {
			a := acc[ox*c+c0 : (ox+1)*c]
			xs := x[o+ox*colStep+c0:][:len(a)]
			for ch, v := range wt {
				a[ch] += xs[ch] * int32(int16(v))
			}
		}
	}
}
