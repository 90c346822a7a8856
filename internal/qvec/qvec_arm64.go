//go:build arm64 && !noasm

package qvec

import (
	"qat/internal/cpufeat"
	"qat/quant"
)

// No x86 assembly on arm64.
const (
	hasAVX512 = false
	hasAVX2   = false
)

// hasNEON reports whether the NEON assembly can run: the CPU has NEON and
// QAT_CPU does not switch it off (cpufeat).
var hasNEON = cpufeat.ARM64.ASIMD

// requantFloat does the columns of each row up to the last multiple of 4
// with NEON and the remaining (at most 3) in Go.
func requantFloat(dst []uint8, acc, bias []int32, mult []float32, rows, n int, zp, lo, hi int32) {
	n4 := n &^ 3
	if !hasNEON || n4 == 0 {
		requantFloatGo(dst, acc, bias, mult, rows, n, zp, lo, hi)
		return
	}
	requantFloatNEON(&dst[0], &acc[0], &bias[0], &mult[0], rows, n, n4, float32(lo-zp), float32(hi-zp), zp)
	for r := range rows {
		for j := n4; j < n; j++ {
			dst[r*n+j] = uint8(quant.RequantizeFloat(acc[r*n+j]+bias[j], mult[j], zp, lo, hi))
		}
	}
}

func requantFixed(dst []uint8, acc, bias, m0, shift []int32, rows, n int, zp, lo, hi int32) {
	requantFixedGo(dst, acc, bias, m0, shift, rows, n, zp, lo, hi)
}

// maxBytes does the bytes up to the last multiple of 16 with NEON and the
// rest in Go.
func maxBytes(dst, a, b []uint8) {
	n16 := len(dst) &^ 15
	if !hasNEON || n16 == 0 {
		maxBytesGo(dst, a, b)
		return
	}
	maxBytesNEON(&dst[0], &a[0], &b[0], n16)
	maxBytesGo(dst[n16:], a[n16:], b[n16:])
}

// requantFloatNEON is RequantFloat on columns 0..n4-1 (n4 a positive
// multiple of 4, at most n) of rows >= 1 contiguous rows of n columns,
// with the clamp bounds lo-zp and hi-zp already converted to float32
// (exactly as quant.RequantizeFloat converts them). It follows
// RequantizeFloat operation by operation, 4 lanes at a time: SCVTF and
// FMUL round to nearest even (as Go's float32 conversion and product),
// FMAX and FMIN clamp (no NaN can occur: m is finite), FADD and FSUB of
// 1.5*2^23 round to an integer, FCVTZS saturates as Go's int32
// conversion does on arm64, and the int32 addition of zp wraps; the
// stored byte is the low byte of the result (UZP1), as uint8() takes it.
//
//go:noescape
func requantFloatNEON(dst *uint8, acc, bias *int32, mult *float32, rows, n, n4 int, flo, fhi float32, zp int32)

// maxBytesNEON is MaxBytes on n bytes, n a positive multiple of 16 (UMAX).
//
//go:noescape
func maxBytesNEON(dst, a, b *uint8, n int)

func addCodes(dst, a, b []uint8, p AddParams) { addCodesGo(dst, a, b, p) }
