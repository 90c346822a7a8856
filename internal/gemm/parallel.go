package gemm

import "sync"

// Splitting a product across goroutines.
//
// SgemmParallel cuts C into blocks of whole rows or whole columns, never
// the k dimension, and runs Sgemm on each block (op(A), op(B) and C
// offset to it) on its own goroutine. Each entry of C is then computed by
// one Sgemm call with the same k, alpha and beta as the unsplit call, so
// by the same operations in the same order:
//
//   - Sgemm splits k into blocks that depend on k alone, and in each k
//     block an entry is one micro-kernel's sum of its products followed by
//     alpha*sum + beta*C (beta 1 after the first block);
//   - the kernels compute each row and each column lane of a tile with the
//     same instructions whatever the tile's other rows and columns, and
//     packing only copies values;
//   - a block starts at a multiple of BlockAlign rows or columns, a
//     multiple of every kernel set's mr and nr, and Sgemm's own m and n
//     blocks are multiples of mr and nr: every entry even falls in a tile
//     of the same shape, at the same position in its panel, as in the
//     unsplit call, so a kernel whose arithmetic depended on the tile
//     shape would still agree.
//
// The result is thus bit-identical to Sgemm's for every thread count
// (TestSgemmParallelBitIdentical checks every kernel set, transpose and
// odd shapes). With the kernels of this writing (AVX2, generic) the test
// passes with blocks of any size, the tile shape does not matter; the
// alignment keeps that from being a requirement on new kernels.

// BlockAlign is the granule of SgemmParallel's blocks, a multiple of the
// mr (6, 8) and nr (12, 16, 48) of every kernel set: Sgemm run on the
// rows, or the columns, of C from a multiple of BlockAlign (op(A), op(B)
// and C offset accordingly) computes those entries exactly as Sgemm on
// the whole product does, for callers that split a loop of products
// themselves.
const BlockAlign = 48

// minSplitWork is the fewest multiply-adds worth a goroutine of their
// own, some 30 µs of the AVX2 kernels: waking an idle core costs tens of
// microseconds on a VM (measured: 32×400×64, 0.8M multiply-adds, took
// 43 µs on one goroutine and 63 µs split in two).
const minSplitWork = 1 << 20

// SgemmParallel computes exactly what Sgemm computes, bit for bit, on up
// to threads goroutines (the calling one included): C is split into
// blocks of whole rows, or of whole columns when that cuts it finer,
// each a multiple of 48 rows or columns long (the last one shorter).
// Products too small to give every goroutine minSplitWork multiply-adds
// use fewer goroutines, down to a plain Sgemm call; threads <= 1 is
// Sgemm. Arguments are Sgemm's followed by threads; panics are Sgemm's,
// and happen on the calling goroutine, before any goroutine starts.
// Concurrent calls are safe.
func SgemmParallel(c []float32, ldc int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, threads int) {
	if threads <= 1 || m <= 0 || n <= 0 || k <= 0 || alpha == 0 {
		Sgemm(c, ldc, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta)
		return
	}
	// alpha 0 and beta 1 make Sgemm check every argument and leave C
	// alone: an invalid call panics here, not in a goroutine.
	Sgemm(c, ldc, transA, transB, m, n, k, 0, a, lda, b, ldb, 1)
	byRows, per := parallelSplit(threads, m, n, k)
	if per == 0 {
		Sgemm(c, ldc, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta)
		return
	}
	block := func(lo int) {
		if byRows {
			hi := min(lo+per, m)
			ao := lo * lda // op(A) rows lo..hi: rows of A, or columns of A^T
			if transA {
				ao = lo
			}
			Sgemm(c[lo*ldc:], ldc, transA, transB, hi-lo, n, k, alpha, a[ao:], lda, b, ldb, beta)
			return
		}
		hi := min(lo+per, n)
		bo := lo // op(B) columns lo..hi: columns of B, or rows of B^T
		if transB {
			bo = lo * ldb
		}
		Sgemm(c[lo:], ldc, transA, transB, m, hi-lo, k, alpha, a, lda, b[bo:], ldb, beta)
	}
	size := n
	if byRows {
		size = m
	}
	var wg sync.WaitGroup
	for lo := per; lo < size; lo += per {
		wg.Go(func() { block(lo) })
	}
	block(0)
	wg.Wait()
}

// parallelSplit returns how SgemmParallel cuts an m×n×k product (m, n,
// k > 0) for threads goroutines: into blocks of per rows (byRows) or
// columns, per a multiple of BlockAlign; per == 0 means not at all.
func parallelSplit(threads, m, n, k int) (byRows bool, per int) {
	threads = min(threads, m*n*k/minSplitWork)
	rowUnits, colUnits := (m+BlockAlign-1)/BlockAlign, (n+BlockAlign-1)/BlockAlign
	byRows = rowUnits >= colUnits
	units, line := colUnits, m*k // line: the multiply-adds of one column
	if byRows {
		units, line = rowUnits, n*k
	}
	// A block of a few multiply-adds would take Sgemm's scalar path
	// (sgemmRef), where the whole product does not.
	if threads <= 1 || units < 2 || line <= tiny {
		return byRows, 0
	}
	nb := min(threads, units)
	return byRows, (units + nb - 1) / nb * BlockAlign
}
