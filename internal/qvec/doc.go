// Package qvec holds the vector kernels of the int8 runtime's epilogues:
// requantization of int32 accumulators to uint8 codes and the byte-wise
// maximum.
//
// # Semantics
//
// RequantFloat is exactly equal, element for element, to a loop over
// quant.RequantizeFloat:
//
//	dst[r*n+j] = uint8(quant.RequantizeFloat(acc[r*n+j]+bias[j], mult[j], zp, lo, hi))
//
// that is clamp(roundHalfEven(float32(acc+bias) * mult[j]) + zp, lo, hi).
// The int32 addition wraps (callers keep it from overflowing), the
// conversion float32(int32) rounds half to even, the product is one
// float32 multiply (never fused with anything) and the clamp to
// [lo-zp, hi-zp] happens in float32 before rounding to an integer, half to
// even. Clamping first is what makes the vector version exact: rounding is
// monotone and the bounds are integers, so the clamped value rounds to a
// code in [lo, hi] and the conversion never overflows. The preconditions
// are those of quant.RequantizeFloat: 0 <= lo <= hi <= 255, |lo-zp| and
// |hi-zp| below 2^22 and every mult[j] finite.
//
// MaxBytes writes dst[i] = max(a[i], b[i]); dst may alias a or b.
//
// # Dispatch
//
// On amd64 the functions use assembly when the CPU has it (checked once,
// through golang.org/x/sys/cpu, which also checks that the OS saves the
// vector registers): RequantFloat needs AVX-512F (16 lanes a zmm register,
// the n%16 tail under a K mask, so nothing outside the slices is read or
// written), MaxBytes needs AVX2 (32 bytes a ymm register, then a byte
// loop). Otherwise, on other architectures, or when built with the noasm
// tag, they run the pure-Go versions, which give identical results. The
// assembly relies on Go's default MXCSR (round to nearest even, exceptions
// masked).
package qvec
