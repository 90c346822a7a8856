package quant

import (
	"fmt"
	"math"
)

// RequantizeFloat maps an int32 accumulator (bias already added) to an
// output code the way onnxruntime's MLAS does on x86:
//
//	q = clamp(roundHalfEven(float32(acc) * m) + zp, lo, hi)
//
// The conversion float32(acc) rounds half to even (exact for |acc| <= 2^24)
// and the product is rounded to float32 before rounding to an integer.
// lo <= hi are the clamp bounds in the code domain (a fused ReLU raises lo
// to zp). m must be finite.
func RequantizeFloat(acc int32, m float32, zp, lo, hi int32) int32 {
	// Clamping before rounding gives the same result as after (the bounds
	// are integers and rounding is monotone) and keeps the magic-number
	// rounding exact.
	t := min(max(float32(float32(acc)*m), float32(lo-zp)), float32(hi-zp))
	return int32(float32(t+magic)-magic) + zp
}

// FixedMultiplier returns the gemmlowp/TFLite representation of a positive
// real multiplier m: a Q31 multiplier m0 in [2^30, 2^31) and a right shift
// with m ≈ m0 * 2^-(31+shift) (a negative shift is a left shift). It
// returns an error when m is not a finite positive number or its shift is
// outside [-31, 62].
func FixedMultiplier(m float64) (m0 int32, shift int32, err error) {
	if !(m > 0) || math.IsInf(m, 0) {
		return 0, 0, fmt.Errorf("requantization multiplier %g is not a finite positive number", m)
	}
	frac, exp := math.Frexp(m) // m = frac * 2^exp, frac in [0.5, 1)
	q := math.RoundToEven(frac * (1 << 31))
	if q == 1<<31 {
		q /= 2
		exp++
	}
	shift = int32(-exp)
	if shift < -31 || shift > 62 {
		return 0, 0, fmt.Errorf("requantization multiplier %g needs a shift of %d, outside [-31, 62]", m, shift)
	}
	return int32(q), shift, nil
}

// RequantizeFixed maps an int32 accumulator to an output code with
// integer arithmetic only, as gemmlowp and TFLite do:
//
//	v = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc << max(-shift, 0), m0), max(shift, 0))
//	q = clamp(v + zp, lo, hi)
//
// SaturatingRoundingDoublingHighMul rounds to nearest with ties toward
// +Inf (gemmlowp's nudge followed by C's truncating division);
// RoundingDivideByPOT rounds half away from zero; a left shift saturates
// to the int32 range (TFLite leaves that overflow undefined). The
// result is within one code of RequantizeFloat with the multiplier m0
// represents.
func RequantizeFixed(acc, m0, shift, zp, lo, hi int32) int32 {
	x := int64(acc)
	if shift < 0 {
		x <<= uint(-shift)
		x = min(max(x, math.MinInt32), math.MaxInt32)
	}
	v := int64(srdhm(int32(x), m0))
	if shift > 0 {
		v = roundingDivideByPOT(v, uint(shift))
	}
	return int32(min(max(v+int64(zp), int64(lo)), int64(hi)))
}

// srdhm is gemmlowp's SaturatingRoundingDoublingHighMul: the high 32 bits
// of 2*a*b, rounded to nearest with ties toward +Inf, saturating the one overflowing
// case (a = b = MinInt32).
func srdhm(a, b int32) int32 {
	if a == math.MinInt32 && b == math.MinInt32 {
		return math.MaxInt32
	}
	ab := int64(a) * int64(b)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - (1 << 30)
	}
	return int32((ab + nudge) / (1 << 31)) // Go's division truncates, as C's
}

// roundingDivideByPOT is gemmlowp's RoundingDivideByPOT: x / 2^e rounded
// half away from zero.
func roundingDivideByPOT(x int64, e uint) int64 {
	if e >= 63 {
		return 0
	}
	mask := int64(1)<<e - 1
	rem := x & mask
	threshold := mask >> 1
	if x < 0 {
		threshold++
	}
	v := x >> e
	if rem > threshold {
		v++
	}
	return v
}
