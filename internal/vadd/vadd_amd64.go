//go:build amd64 && !noasm

package vadd

import "qat/internal/cpufeat"

// hasAVX512 and hasAVX2 report whether the kernels can run: the CPU has
// the instructions, the OS saves the registers and QAT_CPU does not
// switch them off (cpufeat).
var (
	hasAVX512 = cpufeat.X86.AVX512
	hasAVX2   = cpufeat.X86.AVX2
)

func rowsAdd(dst []float32, dstStride int, src []float32, srcStride, rows, n int) {
	switch {
	case hasAVX512:
		rowsAVX512(&dst[0], dstStride, &src[0], srcStride, rows, n)
	case hasAVX2:
		rowsAVX2(&dst[0], dstStride, &src[0], srcStride, rows, n)
	default:
		rowsGo(dst, dstStride, src, srcStride, rows, n)
	}
}

// rowsAVX512 is Rows on checked arguments, rows, n >= 1.
//
//go:noescape
func rowsAVX512(dst *float32, ds int, src *float32, ss int, rows, n int)

// rowsAVX2 is rowsAVX512 for AVX2.
//
//go:noescape
func rowsAVX2(dst *float32, ds int, src *float32, ss int, rows, n int)
