//go:build amd64 && !noasm

package qvec

import (
	"math"

	"qat/internal/cpufeat"
)

// hasAVX512 and hasAVX2 report whether the assembly can run: the CPU has
// the instructions, the OS saves the registers and QAT_CPU does not
// switch them off (cpufeat).
var (
	hasAVX512 = cpufeat.X86.AVX512
	hasAVX2   = cpufeat.X86.AVX2
)

func requantFloat(dst []uint8, acc, bias []int32, mult []float32, rows, n int, zp, lo, hi int32) {
	switch {
	case hasAVX512:
		requantFloatAVX512(&dst[0], &acc[0], &bias[0], &mult[0], rows, n,
			float32(lo-zp), float32(hi-zp), zp)
	case hasAVX2:
		requantFloatAVX2(&dst[0], &acc[0], &bias[0], &mult[0], rows, n,
			float32(lo-zp), float32(hi-zp), zp)
	default:
		requantFloatGo(dst, acc, bias, mult, rows, n, zp, lo, hi)
	}
}

func requantFixed(dst []uint8, acc, bias, m0, shift []int32, rows, n int, zp, lo, hi int32) {
	if !hasAVX2 {
		requantFixedGo(dst, acc, bias, m0, shift, rows, n, zp, lo, hi)
		return
	}
	// clamp(v+zp, lo, hi) = clamp(v, lo-zp, hi-zp) + zp, with the bounds
	// computed in int64: lo-zp >= 1-2^31 as lo >= 0, and hi-zp above
	// MaxInt32 clamps nothing an int32 v can reach. When even lo-zp is
	// above MaxInt32, every code is lo: clamp(v, 0, 0) + lo.
	vlo, vhi := int64(lo)-int64(zp), min(int64(hi)-int64(zp), math.MaxInt32)
	if vlo > math.MaxInt32 {
		zp, vlo, vhi = lo, 0, 0
	}
	requantFixedAVX2(&dst[0], &acc[0], &bias[0], &m0[0], &shift[0], rows, n, zp, int32(vlo), int32(vhi))
}

func maxBytes(dst, a, b []uint8) {
	if hasAVX2 {
		maxBytesAVX2(&dst[0], &a[0], &b[0], len(dst))
		return
	}
	maxBytesGo(dst, a, b)
}

func maxWindows(dst, src []uint8, c, k, step int) {
	if hasAVX2 {
		maxWindowsAVX2(&dst[0], &src[0], len(dst)/c, c, k, step)
		return
	}
	maxWindowsGo(dst, src, c, k, step)
}

// addConsts are the vector kernels' constants of an AddCodes: the
// AddParams with the clamp bounds in the domain of the rounded product,
// as float32 (Lo-ZP and Hi-ZP, exact as quant.Code converts them).
type addConsts struct {
	za, zb      int32
	sa, sb, inv float32
	flo, fhi    float32
	zp          int32
}

// addCodes runs the whole blocks of 16 (AVX-512) or 8 (AVX2) codes in
// assembly, the rest in Go.
func addCodes(dst, a, b []uint8, p AddParams) {
	k := addConsts{p.ZA, p.ZB, p.SA, p.SB, p.Inv, float32(p.Lo - p.ZP), float32(p.Hi - p.ZP), p.ZP}
	n, done := len(dst), 0
	switch {
	case hasAVX512 && n >= 16:
		done = n &^ 15
		addCodesAVX512(&dst[0], &a[0], &b[0], done, &k)
	case hasAVX2 && n >= 8:
		done = n &^ 7
		addCodesAVX2(&dst[0], &a[0], &b[0], done, &k)
	}
	if done < n {
		addCodesGo(dst[done:], a[done:], b[done:], p)
	}
}

func maxWindowsInt32(dst, src []int32, c, k, step int) {
	if hasAVX512 {
		maxWindowsInt32AVX512(&dst[0], &src[0], len(dst)/c, c, k, step)
		return
	}
	if hasAVX2 {
		maxWindowsInt32AVX2(&dst[0], &src[0], len(dst)/c, c, k, step)
		return
	}
	maxWindowsInt32Go(dst, src, c, k, step)
}

// requantFloatAVX512 is RequantFloat on rows >= 1 contiguous rows of
// n >= 1 columns, with the clamp bounds lo-zp and hi-zp already converted
// to float32 (exactly as quant.RequantizeFloat converts them).
//
//go:noescape
func requantFloatAVX512(dst *uint8, acc, bias *int32, mult *float32, rows, n int, flo, fhi float32, zp int32)

// requantFloatAVX2 is requantFloatAVX512 for AVX2, 8 lanes a ymm register.
//
//go:noescape
func requantFloatAVX2(dst *uint8, acc, bias *int32, mult *float32, rows, n int, flo, fhi float32, zp int32)

// requantFixedAVX2 is RequantFixed on rows >= 1 contiguous rows of n >= 1
// columns, every shift >= -32, with the output clamp given in the domain
// of the rounded product: q = clamp(v, vlo, vhi) + zp, where the caller
// guarantees that this is clamp(v+zp, lo, hi) for every int32 v and
// vlo <= vhi.
//
//go:noescape
func requantFixedAVX2(dst *uint8, acc, bias, m0, shift *int32, rows, n int, zp, vlo, vhi int32)

// maxBytesAVX2 is MaxBytes on n >= 1 bytes.
//
//go:noescape
func maxBytesAVX2(dst, a, b *uint8, n int)

// maxWindowsAVX2 is MaxWindows on n >= 1 windows.
//
//go:noescape
func maxWindowsAVX2(dst, src *uint8, n, c, k, step int)

// maxWindowsInt32AVX2 is MaxWindowsInt32 on n >= 1 windows.
//
//go:noescape
func maxWindowsInt32AVX2(dst, src *int32, n, c, k, step int)

// maxWindowsInt32AVX512 is maxWindowsInt32AVX2 for AVX-512, 16 lanes a
// zmm register.
//
//go:noescape
func maxWindowsInt32AVX512(dst, src *int32, n, c, k, step int)

// addCodesAVX512 is AddCodes on n > 0 codes, n a multiple of 16, whose
// arithmetic cannot produce a NaN.
//
//go:noescape
func addCodesAVX512(dst, a, b *uint8, n int, k *addConsts)

// addCodesAVX2 is addCodesAVX512 with AVX2, n a multiple of 8.
//
//go:noescape
func addCodesAVX2(dst, a, b *uint8, n int, k *addConsts)
