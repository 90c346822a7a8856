package qgemm

import (
	"fmt"
	"sync"
)

// Conv describes the A of GemmConv: the im2col matrix of a convolution,
// read from the convolution's (staged, padded) input rather than
// gathered into memory. A has OH*OW rows; row oy*OW + ox (oy < OH,
// ox < OW) is Segs segments of SegLen bytes each, segment s starting at
// byte oy*RowStep + ox*ColStep + s*SegStride of the source. For an NHWC
// input of C channels staged with rows of WP pixels, a k x k window at
// stride st: RowStep = st*WP*C, ColStep = st*C, SegStride = WP*C,
// Segs = k, and SegLen = k*C rounded up to a multiple of the weights'
// UnitK, the weights of the bytes past k*C zero (their A bytes, the next
// pixels' codes, then add nothing).
type Conv struct {
	OH, OW           int
	RowStep, ColStep int
	SegStride        int
	Segs, SegLen     int
}

// rows returns the number of rows of A.
func (g Conv) rows() int { return g.OH * g.OW }

// SrcLen returns the number of source bytes A reads: one past the last
// byte of the last segment of the last row, the least len(src) GemmConv
// takes.
func (g Conv) SrcLen() int {
	return (g.OH-1)*g.RowStep + (g.OW-1)*g.ColStep + (g.Segs-1)*g.SegStride + g.SegLen
}

// UnitK returns the granularity of K in the packed layout (4, 8 or 16
// values for 8, 4 or 2 bits): a Conv's SegLen must be a multiple of it.
func (p *Packed) UnitK() int { return p.unitK() }

// GemmConv writes C (OH*OW x N, row stride ldc >= N) = A times B, A the
// implicit matrix g describes over src (K = g.Segs*g.SegLen must be b's
// K), with the best kernel for this CPU: exactly what Gemm computes on A
// gathered row by row. Only those elements of c are written and only the
// bytes of src in A are read. The AVX-512 VNNI kernel reads A in place,
// the AVX2 and AVX-VNNI ones copy window rows of 16 codes or more
// straight into the buffer they copy A into anyway; otherwise (Generic,
// NEON, shorter window rows) blocks of A's rows are gathered into a
// pooled buffer first (see ConvDirect).
//
// GemmConv panics if g has a non-positive size or a negative step, if
// SegLen is not a multiple of b.UnitK(), K differs from b's, ldc < N, or
// src or c is too short: these are programming errors.
func GemmConv(c []int32, ldc int, src []uint8, g Conv, b *Packed) {
	gemmConv(selected, c, ldc, src, g, b)
}

// GemmConvWith is GemmConv with kernel k forced (tests, benchmarks). It
// panics if k is not available, and like GemmConv on bad arguments.
func GemmConvWith(k Kernel, c []int32, ldc int, src []uint8, g Conv, b *Packed) {
	if !available(k) {
		panic(fmt.Sprintf("qgemm: kernel %v not available", k))
	}
	gemmConv(k, c, ldc, src, g, b)
}

// ConvDirect reports whether GemmConv on g runs without gathering A's
// rows first: with the AVX-512 VNNI kernel (A read in place) always, with
// the AVX2 and AVX-VNNI ones when window rows hold 16 codes or more. A
// gathering GemmConv costs about what an im2col copy does, so a caller
// may prefer Gemm on its own im2col rows there (with K unpadded).
func ConvDirect(g Conv) bool { return convDirect(selected, g) }

func checkConv(c []int32, ldc int, src []uint8, g Conv, b *Packed) {
	switch {
	case b == nil:
		panic("qgemm: nil Packed")
	case g.OH < 1 || g.OW < 1 || g.Segs < 1 || g.SegLen < 1 || g.RowStep < 0 || g.ColStep < 0 || g.SegStride < 0:
		panic(fmt.Sprintf("qgemm: bad conv geometry %+v", g))
	case g.SegLen%b.unitK() != 0:
		panic(fmt.Sprintf("qgemm: conv SegLen %d not a multiple of %d", g.SegLen, b.unitK()))
	case g.Segs*g.SegLen != b.k:
		panic(fmt.Sprintf("qgemm: conv K = %d*%d, packed K = %d", g.Segs, g.SegLen, b.k))
	case ldc < b.n:
		panic(fmt.Sprintf("qgemm: ldc = %d < N = %d", ldc, b.n))
	case len(src) < g.SrcLen():
		panic(fmt.Sprintf("qgemm: len(src) = %d < %d bytes of A", len(src), g.SrcLen()))
	case len(c) < (g.rows()-1)*ldc+b.n:
		panic(fmt.Sprintf("qgemm: len(c) = %d < (rows-1)*ldc+N = %d", len(c), (g.rows()-1)*ldc+b.n))
	}
}

func gemmConv(k Kernel, c []int32, ldc int, src []uint8, g Conv, b *Packed) {
	checkConv(c, ldc, src, g, b)
	if convDirect(k, g) {
		gemmConvAsm(k, c, ldc, src, g, b)
		return
	}
	gemmConvGather(k, c, ldc, src, g, b)
}

// convGatherBytes is about how many bytes of A gemmConvGather gathers at
// a time.
const convGatherBytes = 32 << 10

// convPool holds gemmConvGather's buffers: taken for one call, put back
// when it returns, so concurrent calls use different buffers.
var convPool = sync.Pool{New: func() any { return new([]uint8) }}

// gemmConvGather is GemmConv for kernels that read A from memory laid out
// row after row: it gathers blocks of rows of A into a buffer and
// multiplies each block with kernel k.
func gemmConvGather(k Kernel, c []int32, ldc int, src []uint8, g Conv, b *Packed) {
	bp := convPool.Get().(*[]uint8)
	defer convPool.Put(bp)
	K, m := b.k, g.rows()
	mb := max(1, convGatherBytes/K)
	buf := uint8s(bp, min(mb, m)*K)
	for r0 := 0; r0 < m; r0 += mb {
		n := min(mb, m-r0)
		for i := range n {
			r := r0 + i
			at := r/g.OW*g.RowStep + r%g.OW*g.ColStep
			row := buf[i*K : (i+1)*K]
			for s := range g.Segs {
				copy(row[s*g.SegLen:(s+1)*g.SegLen], src[at+s*g.SegStride:])
			}
		}
		gemmKernel(k, c[r0*ldc:], ldc, buf[:n*K], K, n, b, 0, b.panels())
	}
}

// uint8s returns (*b)[:n], growing *b on demand.
func uint8s(b *[]uint8, n int) []uint8 {
	if cap(*b) < n {
		*b = make([]uint8, n)
	}
	return (*b)[:n]
}
