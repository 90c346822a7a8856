package infer

import (
	"fmt"

	"qat/internal/qvec"
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
// [lo, hi]. dst, a and b have one length; dst may be a or b. The
// arithmetic is qvec.AddCodes' (which the runtime's add runs too): each
// dequantized value and their sum rounded to float32, never fused.
func Add(dst, a, b []uint8, qa, qb, out qmodel.Quant, lo, hi int32) {
	if len(a) != len(dst) || len(b) != len(dst) {
		panic(fmt.Sprintf("infer: Add of %d and %d codes into %d", len(a), len(b), len(dst)))
	}
	qvec.AddCodes(dst, a, b, addParams(qa, qb, out, lo, hi))
}

// addParams returns the qvec.AddCodes parameters of Add.
func addParams(qa, qb, out qmodel.Quant, lo, hi int32) qvec.AddParams {
	return qvec.AddParams{ZA: qa.ZeroPoint, ZB: qb.ZeroPoint, SA: qa.Scale, SB: qb.Scale,
		Inv: 1 / out.Scale, ZP: out.ZeroPoint, Lo: lo, Hi: hi}
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
