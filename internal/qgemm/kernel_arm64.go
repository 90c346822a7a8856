//go:build arm64 && !noasm

package qgemm

import "qat/internal/cpufeat"

//go:generate env -u GOARCH go run gen_kernel_arm64.go

// No x86 kernels on arm64.
const (
	hasAVX2    = false
	hasAVXVNNI = false
	hasVNNI    = false
)

// hasNEON and hasNEONDot report whether the NEON kernels can run: the
// CPU has NEON (and the dot-product instructions SDOT/UDOT) and QAT_CPU
// does not switch them off (cpufeat).
var (
	hasNEON    = cpufeat.ARM64.ASIMD
	hasNEONDot = cpufeat.ARM64.ASIMDDP
)

// tileRows returns the rows of kernel k's micro-tile, the granularity of
// GemmParallel's row split.
func tileRows(k Kernel) int {
	switch k {
	case NEONDot:
		return dotMR
	case NEON:
		return wideMR
	}
	return 4
}

// convDirect reports whether GemmConv runs without a separate gather:
// never in this build.
func convDirect(Kernel, Conv) bool { return false }

// gemmConvAsm is never called: no kernel of this build reads GemmConv's
// matrix in place.
func gemmConvAsm(k Kernel, c []int32, ldc int, src []uint8, g Conv, b *Packed) {
	panic("qgemm: no in-place conv kernel in this build")
}
