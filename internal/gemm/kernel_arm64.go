//go:build arm64 && !noasm

package gemm

import "qat/internal/cpufeat"

//go:generate env -u GOARCH go run gen_kernel_arm64.go

// asmKernels returns the NEON kernel set when cpufeat reports NEON (not
// switched off by QAT_CPU=asimd or asm).
func asmKernels() []*kernelSet {
	if cpufeat.ARM64.ASIMD {
		return []*kernelSet{neonKernels}
	}
	return nil
}

// neonKernels are the 8×12 NEON kernels (kernel_arm64.s, FMLA on 4
// float32 lanes). op(B) is always packed, so that the kernels may read
// whole vectors of a panel's last, padded columns; op(A) = A^T is packed
// under the same rule as the other sets (untuned on arm64 hardware).
var neonKernels = &kernelSet{
	name: "NEON", mr: neonMR, nr: neonNR, nv: 4, kc: 256, mc: 960, nc: 480,
	kern:   kernelNEON,
	packBN: func(m, ldb int) bool { return true },
	packAT: func(lda int) bool { return lda >= 512 },
}

// transposeBlock is never called: the NEON set has no vector transposes.
func transposeBlock(nv int, dst *float32, ldd int, rows *[16]*float32, kb int) {
	panic("gemm: no NEON transposes")
}

// kernelNEON is the microKernel of the NEON set. The assembly computes
// the raw sums of a whole 8-row tile, rows past h repeating row h-1, over
// the ceil(w/4) vectors of b's packed panel (ldb a multiple of 4, the
// padding readable); alpha, beta and the h×w part of C are applied here.
func kernelNEON(h, w, k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32) {
	var rows [neonMR]*float32
	for i := range rows {
		rows[i] = &a[min(i, h-1)*rsa]
	}
	var acc [neonMR * neonNR]float32
	switch (w + 3) / 4 {
	case 1:
		neonKern1(&rows, csa, k, &b[0], ldb, &acc)
	case 2:
		neonKern2(&rows, csa, k, &b[0], ldb, &acc)
	default:
		neonKern3(&rows, csa, k, &b[0], ldb, &acc)
	}
	storeTile(c, ldc, acc[:], neonNR, h, w, alpha, beta)
}
