//go:build amd64 && !noasm

package gemm

import "qat/internal/cpufeat"

//go:generate go run gen_kernel.go
//go:generate go run gen_kernel_avx2.go

// asmKernels returns the assembly kernel sets the CPU can run, fastest
// first: AVX-512 and AVX2+FMA as cpufeat reports them (so QAT_CPU=avx512
// leaves AVX2, QAT_CPU=avx2 or asm none).
func asmKernels() []*kernelSet {
	var ks []*kernelSet
	if cpufeat.X86.AVX512 {
		ks = append(ks, avx512Kernels)
	}
	if cpufeat.X86.AVX2 {
		ks = append(ks, avx2Kernels)
	}
	return ks
}

// avx512Kernels are the 8×48 zmm kernels (kernel_amd64.s). op(B) = B is
// read in place: the hardware prefetchers keep up with rows of 48 floats
// and copying was slower on every shape measured, 1024³ included.
var avx512Kernels = &kernelSet{
	name: "AVX512", mr: 8, nr: 48, nv: 16, kc: 256, mc: 960, nc: 480,
	kern: kernelAVX512, transposes: true,
	packBN: func(int, int) bool { return false },
	packAT: func(lda int) bool { return lda >= 512 },
}

// avx2Kernels are the 6×16 ymm kernels (kernel_avx2_amd64.s), tuned on
// Zen 3 (512 KiB L2 per core): nc = 240 keeps the kc×nc block of op(B)
// (240 KiB) in half of L2. op(B) = B is read in place, rows of 16 floats
// at stride ldb, except where that stride aliases in the caches: with
// ldb a multiple of 128 floats (512 bytes) the kc rows of a micro-panel
// fall into at most 8 of the 64 sets of L1, evicting the A micro-panel,
// and into few sets of L2 (at ldb = 1024, 16 of 1024: 16 lines each for
// 8 ways); reading in place then ran at 50-65% of the packed speed
// (1024³, 128×1024×256, 768³). Elsewhere packing cost 5-35% (128×784×256,
// 256³, the convolutions) and is not done; nor for fewer than 32 rows of
// op(A), too few to amortise it.
var avx2Kernels = &kernelSet{
	name: "AVX2+FMA", mr: 6, nr: 16, nv: 8, kc: 256, mc: 960, nc: 240,
	kern: kernelAVX2, transposes: true,
	packBN: func(m, ldb int) bool { return ldb >= 512 && ldb%128 == 0 && m >= 32 },
	packAT: func(lda int) bool { return lda >= 512 },
}

// transposeBlock stores the nv×nv*kb block rows[r][p] (r < nv, p <
// nv*kb) at dst[p*ldd+r] with the vector transposes of the kernel set of
// width nv (16: AVX-512, 8: AVX2); only rows[:nv] are used.
func transposeBlock(nv int, dst *float32, ldd int, rows *[16]*float32, kb int) {
	switch nv {
	case 16:
		transpose16(dst, ldd, rows, kb)
	case 8:
		avx2Transpose8(dst, ldd, (*[8]*float32)(rows[:8]), kb)
	default:
		panic("gemm: no transpose of this width")
	}
}

// kernelAVX512 is the microKernel of the AVX-512 kernels.
func kernelAVX512(h, w, k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32) {
	const nv = 16
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

// avx2Masks[8-r:16-r] is the VMASKMOVPS mask of the first r lanes.
var avx2Masks = [16]int32{-1, -1, -1, -1, -1, -1, -1, -1}

// kernelAVX2 is the microKernel of the AVX2 kernels: w%8 != 0 selects the
// kernels that mask the last vector of each row.
func kernelAVX2(h, w, k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32) {
	const nv = 8
	vecs := (w + nv - 1) / nv
	r := w - (vecs-1)*nv
	loadc := 1
	if beta == 0 {
		loadc = 0
	}
	mask := &avx2Masks[nv-r]
	if csa == 1 {
		avx2Kern(true, r != nv, h, vecs, k, &a[0], rsa, &b[0], ldb, &c[0], ldc, alpha, beta, mask, loadc)
	} else {
		avx2Kern(false, r != nv, h, vecs, k, &a[0], csa, &b[0], ldb, &c[0], ldc, alpha, beta, mask, loadc)
	}
}
