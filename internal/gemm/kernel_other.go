//go:build !amd64 || noasm

package gemm

// hasAsm is false: there is no assembly micro-kernel for this
// architecture or the noasm tag is set.
const hasAsm = false

// kernelAsm is never called without assembly kernels.
func kernelAsm(h, w, k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32) {
	kernelGeneric(h, w, k, a, rsa, csa, b, ldb, c, ldc, alpha, beta)
}

func transpose16(dst *float32, ldd int, rows *[16]*float32, k16 int) {
	panic("gemm: no assembly")
}
