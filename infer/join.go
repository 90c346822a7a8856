package infer

import (
	"fmt"

	"qat/qmodel"
	"qat/quant"
)

// The element rules of add and concat, shared by the runtime's ops and by
// the exact evaluation graphs (package deploy), so that both compute the
// same codes. They are the fake-quant graph's float32 arithmetic on codes:
// each input code q of quantization in is dequantized to
// float32(q - in.ZeroPoint) * in.Scale, as FakeQuantize outputs it; an add
// sums the two values in float32; and the result is quantized with the
// output quantization by quant.Code (x * float32(1/Scale), rounded half
// to even, plus the zero point), clamped to [lo, hi], the bounds of the
// node's activation (export.Clamp). A ReLU or ReLU6 after the sum is that
// clamp: quantization is monotone and maps 0 to the zero point.

// Add writes into dst the codes of a + b, element by element, for codes
// a quantized with qa and b with qb, requantized to out and clamped to
// [lo, hi]. dst, a and b have one length; dst may be a or b.
func Add(dst, a, b []uint8, qa, qb, out qmodel.Quant, lo, hi int32) {
	if len(a) != len(dst) || len(b) != len(dst) {
		panic(fmt.Sprintf("infer: Add of %d and %d codes into %d", len(a), len(b), len(dst)))
	}
	inv := 1 / out.Scale
	for i := range dst {
		x := float32(int32(a[i])-qa.ZeroPoint)*qa.Scale + float32(int32(b[i])-qb.ZeroPoint)*qb.Scale
		q, _ := quant.Code(x, inv, out.ZeroPoint, lo, hi)
		dst[i] = uint8(q)
	}
}

// AddTable returns Add's codes for every pair of input codes: entry
// a<<8|b is the code of a + b. It is Add itself applied to the 65536
// pairs, so a lookup in it gives Add's codes bit for bit; the runtime
// adds through it.
func AddTable(qa, qb, out qmodel.Quant, lo, hi int32) []uint8 {
	a, b, t := make([]uint8, 1<<16), make([]uint8, 1<<16), make([]uint8, 1<<16)
	for i := range t {
		a[i], b[i] = uint8(i>>8), uint8(i)
	}
	Add(t, a, b, qa, qb, out, lo, hi)
	return t
}

// RequantizeTable returns Requantize's code for every input code, by
// Requantize itself.
func RequantizeTable(in, out qmodel.Quant, lo, hi int32) *[256]uint8 {
	var src, t [256]uint8
	for i := range src {
		src[i] = uint8(i)
	}
	Requantize(t[:], src[:], in, out, lo, hi)
	return &t
}

// Requantize writes into dst the codes of src, quantized with in,
// requantized to out and clamped to [lo, hi] (concat's rule for each of
// its inputs). dst and src have one length and may be the same.
func Requantize(dst, src []uint8, in, out qmodel.Quant, lo, hi int32) {
	if len(src) != len(dst) {
		panic(fmt.Sprintf("infer: Requantize of %d codes into %d", len(src), len(dst)))
	}
	inv := 1 / out.Scale
	for i, c := range src {
		q, _ := quant.Code(float32(int32(c)-in.ZeroPoint)*in.Scale, inv, out.ZeroPoint, lo, hi)
		dst[i] = uint8(q)
	}
}
