//go:build (!amd64 && !arm64) || noasm

package qgemm

// No assembly kernels on this architecture or with the noasm tag.
const (
	hasAVX2    = false
	hasAVXVNNI = false
	hasVNNI    = false
)

// gemmAsm is never called without assembly kernels.
func gemmAsm(k Kernel, c []int32, ldc int, a []uint8, lda, m int, b *Packed, p0, p1 int) {
	panic("qgemm: no assembly kernels in this build")
}

// tileRows returns the granularity of GemmParallel's row split.
func tileRows(k Kernel) int { return 4 }

// convDirect reports whether GemmConv runs without a separate gather:
// never in this build.
func convDirect(Kernel, Conv) bool { return false }

// gemmConvAsm is never called: no kernel of this build reads GemmConv's
// matrix in place.
func gemmConvAsm(k Kernel, c []int32, ldc int, src []uint8, g Conv, b *Packed) {
	panic("qgemm: no in-place conv kernel in this build")
}
