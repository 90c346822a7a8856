//go:build (!amd64 && !arm64) || noasm

package gemm

// asmKernels returns no kernel sets: there is no assembly micro-kernel
// for this architecture or the noasm tag is set.
func asmKernels() []*kernelSet { return nil }

// transposeBlock is never called: no kernel set has vector transposes.
func transposeBlock(nv int, dst *float32, ldd int, rows *[16]*float32, kb int) {
	panic("gemm: no assembly")
}
