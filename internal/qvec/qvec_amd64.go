//go:build amd64 && !noasm

package qvec

import "qat/internal/cpufeat"

// hasAVX512 and hasAVX2 report whether the assembly can run: the CPU has
// the instructions, the OS saves the registers and QAT_CPU does not
// switch them off (cpufeat).
var (
	hasAVX512 = cpufeat.X86.AVX512
	hasAVX2   = cpufeat.X86.AVX2
)

func requantFloat(dst []uint8, acc, bias []int32, mult []float32, rows, n int, zp, lo, hi int32) {
	if hasAVX512 {
		requantFloatAVX512(&dst[0], &acc[0], &bias[0], &mult[0], rows, n,
			float32(lo-zp), float32(hi-zp), zp)
		return
	}
	requantFloatGo(dst, acc, bias, mult, rows, n, zp, lo, hi)
}

func maxBytes(dst, a, b []uint8) {
	if hasAVX2 {
		maxBytesAVX2(&dst[0], &a[0], &b[0], len(dst))
		return
	}
	maxBytesGo(dst, a, b)
}

// requantFloatAVX512 is RequantFloat on rows >= 1 contiguous rows of
// n >= 1 columns, with the clamp bounds lo-zp and hi-zp already converted
// to float32 (exactly as quant.RequantizeFloat converts them).
//
//go:noescape
func requantFloatAVX512(dst *uint8, acc, bias *int32, mult *float32, rows, n int, flo, fhi float32, zp int32)

// maxBytesAVX2 is MaxBytes on n >= 1 bytes.
//
//go:noescape
func maxBytesAVX2(dst, a, b *uint8, n int)
