//go:build amd64 && !noasm

package dwconv

import "qat/internal/cpufeat"

// hasAVX512 and hasAVX2 report whether the kernels can run: the CPU has
// the instructions, the OS saves the registers and QAT_CPU does not
// switch them off (cpufeat).
var (
	hasAVX512 = cpufeat.X86.AVX512
	hasAVX2   = cpufeat.X86.AVX2
)

func row(acc, x, w []int32, off []int, c, ow, colStep int) {
	switch {
	case hasAVX512:
		rowAVX512(&acc[0], &x[0], &w[0], &off[0], len(off), c, ow, colStep)
	case hasAVX2:
		// Whole blocks of 8 channels in assembly, the c%8 left in Go.
		if c >= 8 {
			rowAVX2(&acc[0], &x[0], &w[0], &off[0], len(off), c, ow, colStep)
		}
		if c0 := c &^ 7; c0 < c {
			rowGoChannels(acc, x, w, off, c, c0, ow, colStep)
		}
	default:
		rowGo(acc, x, w, off, c, ow, colStep)
	}
}

// rowAVX512 is Row on checked arguments with AVX-512 F and BW.
//
//go:noescape
func rowAVX512(acc, x, w *int32, off *int, taps, c, ow, colStep int)

// rowAVX2 is Row on checked arguments with AVX2, for channels below
// c&^7 (c >= 8).
//
//go:noescape
func rowAVX2(acc, x, w *int32, off *int, taps, c, ow, colStep int)

func center(dst []int32, src []uint8, z int32) {
	n := len(src)
	done := 0
	switch {
	case hasAVX512 && n >= 16:
		done = n &^ 15
		centerAVX512(&dst[0], &src[0], done, z)
	case hasAVX2 && n >= 8:
		done = n &^ 7
		centerAVX2(&dst[0], &src[0], done, z)
	}
	centerGo(dst[done:], src[done:], z)
}

// centerAVX512 is Center on n > 0 codes, n a multiple of 16.
//
//go:noescape
func centerAVX512(dst *int32, src *uint8, n int, z int32)

// centerAVX2 is Center on n > 0 codes, n a multiple of 8.
//
//go:noescape
func centerAVX2(dst *int32, src *uint8, n int, z int32)
