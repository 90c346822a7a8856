// Package qvec holds the vector kernels of the int8 runtime's epilogues:
// requantization of int32 accumulators to uint8 codes, with a float32 or
// an integer-only multiplier, and byte-wise maxima for max pooling.
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
// RequantFixed is exactly equal, element for element, to a loop over
// quant.RequantizeFixed, gemmlowp's integer-only requantization:
//
//	dst[r*n+j] = uint8(quant.RequantizeFixed(acc[r*n+j]+bias[j], m0[j], shift[j], zp, lo, hi))
//
// that is, with a = acc+bias (wrapping), x = a << -shift[j] saturated to
// int32 when shift[j] < 0 (else x = a), h = SaturatingRoundingDoublingHighMul(x, m0[j])
// (the high half of 2*x*m0 rounded to nearest, ties toward +Inf, the one
// overflow MinInt32*MinInt32 saturating to MaxInt32), v = h / 2^shift[j]
// rounded half away from zero when shift[j] > 0 (else v = h), and
// clamp(v + zp, lo, hi) computed without overflow. Every m0[j] and zp may
// be any int32; 0 <= lo <= hi <= 255 and every shift[j] >= MinShift = -32
// (quant.FixedMultiplier and qmodel produce [-31, 62]; a shift above 31
// gives 0 or -1 as the reference does). The vector version is exact
// because it computes the same integers: the product in 64 bits
// (VPMULDQ), the nudged truncating division as one 64-bit floor shift
// (for either sign of the product, (p + nudge) / 2^31 truncated equals
// floor((p + 2^30) / 2^31)), and the clamp bounds lo-zp and hi-zp in
// int64 before they are narrowed (see requantFixed).
//
// MaxBytes writes dst[i] = max(a[i], b[i]); dst may alias a or b.
// MaxWindows writes the maxima of windows of k chunks of c bytes, chunk
// kx of window i at src[i*step+kx*c:], into dst[i*c:(i+1)*c]: the column
// pass of a channels-last max pool; dst must not overlap src.
// MaxWindowsInt32 is MaxWindows on int32 values (c and step in elements):
// with n = 1 window of k chunks of a whole row it is also a pool's row
// pass; infer uses it to max-pool a conv's accumulators before they are
// requantized.
//
// The functions write only dst, keep none of their arguments and allocate
// nothing.
//
// # Dispatch
//
// On amd64 the functions use assembly when the CPU has it, as
// qat/internal/cpufeat reports (through golang.org/x/sys/cpu, which also
// checks that the OS saves the vector registers, and minus what QAT_CPU
// switches off): RequantFloat runs an AVX-512F kernel (16 lanes a zmm
// register, the n%16 tail under a K mask) or an AVX2 one (8 lanes a ymm
// register); RequantFixed runs an AVX2 kernel; MaxBytes and MaxWindows
// need AVX2 (32 bytes a ymm register, then a 16- and an 8-byte step and a
// byte loop, per window for MaxWindows; MaxWindowsInt32 16 int32 lanes
// of VPMAXSD at a time with AVX-512F, the last c%16 under a K mask, or 8
// with AVX2, the last c%8 under a VPMASKMOVD mask). The AVX2 requantization kernels work on one block of 8 columns at a
// time, over every row, so that the block's per-column constants stay in
// registers or the frame; the last n%8 columns are loaded under a
// VPMASKMOVD mask and stored a byte at a time, so nothing outside the
// slices is read or written. On arm64, RequantFloat and MaxBytes have
// NEON kernels (qvec_arm64.go). Otherwise, on other architectures, or
// when built with the noasm tag, the functions run their pure-Go versions
// (for the requantizations, loops over the quant functions), which give
// identical results: QAT_CPU=asm tests them on any machine. The float assembly relies on Go's default MXCSR (round
// to nearest even, exceptions masked). There is no AVX-512 RequantFixed:
// AVX-512 machines run the AVX2 kernel.
package qvec
