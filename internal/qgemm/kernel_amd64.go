//go:build amd64 && !noasm

package qgemm

import "golang.org/x/sys/cpu"

//go:generate go run gen_kernel.go

// hasAVX2 and hasVNNI report whether the assembly kernels can run: the
// CPU has the instructions and the OS saves the ymm (and zmm and mask)
// registers, which golang.org/x/sys/cpu checks in XCR0.
var (
	hasAVX2 = cpu.X86.HasAVX2
	hasVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI
)

// tileRows returns the rows of kernel k's micro-tile, the granularity of
// GemmParallel's row split.
func tileRows(k Kernel) int {
	switch k {
	case AVX512VNNI:
		return vnniMR
	case AVX2:
		return avx2MR
	}
	return 4
}
