//go:build amd64 && !noasm

package qgemm

import "qat/internal/cpufeat"

//go:generate go run gen_kernel.go

// hasAVX2, hasAVXVNNI and hasVNNI report whether the assembly kernels
// can run: the CPU has the instructions, the OS saves the ymm (and zmm
// and mask) registers and QAT_CPU does not switch them off (cpufeat).
var (
	hasAVX2    = cpufeat.X86.AVX2
	hasAVXVNNI = cpufeat.X86.AVXVNNI
	hasVNNI    = cpufeat.X86.AVX512VNNI
)

// tileRows returns the rows of kernel k's micro-tile, the granularity of
// GemmParallel's row split. For AVX2 it is the VPMADDWD tile's (full
// range 8-bit codes); the VPMADDUBSW tile is one row taller.
func tileRows(k Kernel) int {
	switch k {
	case AVX512VNNI:
		return vnniMR
	case AVX2:
		return avx2MR
	case AVXVNNI:
		return avxvnniMR
	}
	return 4
}
