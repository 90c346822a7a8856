//go:build amd64 && !noasm

package gemm

import "qat/internal/cpufeat"

//go:generate go run gen_kernel.go

// hasAsm reports whether the AVX-512 micro-kernels can run: the CPU has
// AVX-512 with OS support and QAT_CPU does not switch it off (cpufeat).
var hasAsm = cpufeat.X86.AVX512

// kernelAsm is the microKernel of the AVX-512 kernels (kernel_amd64.s).
func kernelAsm(h, w, k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32) {
	vecs := (w + nv - 1) / nv
	mask := 1<<(w-(vecs-1)*nv) - 1
	loadc := 1
	if beta == 0 {
		loadc = 0
	}
	if csa == 1 {
		kernAsm(true, h, vecs, k, &a[0], rsa, &b[0], ldb, &c[0], ldc, alpha, beta, mask, loadc)
	} else {
		kernAsm(false, h, vecs, k, &a[0], csa, &b[0], ldb, &c[0], ldc, alpha, beta, mask, loadc)
	}
}
