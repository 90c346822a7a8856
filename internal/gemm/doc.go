// Package gemm is the one matrix-multiply entry point of qat's layers:
// Sgemm, a float32 row-major general matrix multiply with BLAS semantics.
//
// # Semantics
//
// Arguments follow the reference BLAS sgemm with row-major storage and the
// destination first in the name only: C = alpha*op(A)*op(B) + beta*C, where
// op(X) is X or its transpose, op(A) is m×k, op(B) is k×n and C is m×n. A
// matrix with r rows and s columns as stored (before op) occupies
// x[i*ldx+j] for i < r, j < s, so ldx >= max(1, s). beta == 0 overwrites C
// without reading it (NaN in C does not propagate); alpha == 0 or k == 0
// only scales C by beta. Elements of C outside the m×n window (between
// rows, past the end) are never written. Invalid dimensions or slices too
// short for them panic, as in gonum; they are programming errors, not
// run-time conditions.
//
// # Algorithm
//
// Sgemm is a cache-blocked GEMM in the style of BLIS/GotoBLAS around a
// register-tiled micro-kernel, run on the calling goroutine only: no
// goroutines are started, so results and timings do not depend on
// GOMAXPROCS or on other work.
//
// A micro-kernel computes an mr×nr tile of C: mr rows of op(A)
// (broadcast one value at a time) times nr columns of op(B) (nr/nv
// vectors of nv float32), the accumulators staying in registers for the
// whole depth of the call; it then stores alpha*acc + beta*C. Tiles at the
// edges are computed exactly, not padded: there is a kernel for every
// height 1..mr and every number of vectors, and the last vector of a row
// is read and written under a mask of its valid columns (nothing past the
// matrices is read or written). The loops around it are, outermost first:
//
//	ic: rows of op(A) in blocks of mc = 960 (only matters when A^T is packed)
//	pc: k in blocks of at most kc = 256 (equal sizes); beta applies to the
//	    first block, later ones accumulate into C
//	jc: columns of op(B) in blocks of nc, kc×nc floats of op(B) that stay
//	    in L2 while
//	ir: each micro-panel of mr rows of op(A) (in L1) sweeps
//	jr: the nr-column micro-panels of the op(B) block.
//
// Packing (copying an operand into the kernel's layout) is done only where
// it pays, as each kernel set's packAT and packBN decide (see packA and
// packB): op(A) = A is read in place (row pointers), op(A) = A^T in place
// unless lda >= 512, op(B) = B in place or in panels depending on the set
// (and for AVX2 on ldb), op(B) = B^T is transposed into nr-column panels
// (nv×nv register transposes where the set has them). The four transpose
// combinations thus reach the same two kernel layouts (A by rows or by
// columns, B by rows).
//
// # Kernels, dispatch and build tags
//
// A kernel set (kernelSet) is a micro-kernel with its tile, blocking and
// packing rules; Sgemm uses the first one the CPU can run, and Kernel
// names it (for qat bench gemm and qat version). On amd64 they are:
//
//	AVX512    mr×nr = 8×48, 24 zmm accumulators (3 vectors of 16), masks
//	          in K registers; nc = 480; op(B) = B always in place.
//	AVX2+FMA  6×16, 12 ymm accumulators (2 vectors of 8), the tile of the
//	          BLIS/OpenBLAS Haswell kernels, VFMADD231PS; the last vector
//	          of a row is moved with VMASKMOVPS where the tile's width is
//	          not a multiple of 8 (separate kernels, so full tiles use
//	          plain loads); nc = 240 for a 512 KiB L2; op(B) = B packed
//	          when ldb is a multiple of 128 floats (cache aliasing).
//	Generic   pure Go (kernelGeneric), 8×48, op(B) = B always packed,
//	          about 20 times slower than AVX2.
//
// Both amd64 assembly sets are generated Go assembly (kernel_amd64.s by
// gen_kernel.go, kernel_avx2_amd64.s by gen_kernel_avx2.go: go generate)
// and come in two families for the layouts of A. The choice follows
// qat/internal/cpufeat: AVX512 where cpufeat.X86.AVX512, else AVX2+FMA
// where cpufeat.X86.AVX2, else Generic; so QAT_CPU=avx512 runs the AVX2
// kernels on an AVX-512 machine, and QAT_CPU=avx2 or asm the pure-Go one.
// Each architecture with assembly kernels lists its sets in asmKernels
// (kernel_amd64.go, kernel_arm64.go); elsewhere, or built with the tag
// noasm, only Generic exists (kernel_other.go). The choice is made once at
// initialisation and Sgemm's arguments never change it; the tests run
// every set the machine has (forcing each in turn) against the same
// float64 reference. sgemmRef, a plain triple loop, serves products of at
// most 16 multiply-adds and the tests.
//
// # Buffers
//
// Packing buffers belong to one Sgemm call while it runs and wait on a
// mutex-guarded free list between calls (up to 8 sets, as many as calls
// ran concurrently), so steady-state calls do not allocate and concurrent
// calls from several goroutines are safe. A set is at most kc×nc floats
// for op(B) and mc×kc for op(A) (at most about 0.5 and 1 MiB); it is kept
// for the life of the process. Kernels only read A and B and write the
// m×n window of C, which stay the caller's.
//
// # Accuracy
//
// Results are not bit-identical to gonum's Sgemm or to a sequential
// float32 loop: products are fused (FMA) and summed in a different order
// (per k block, in registers). Every entry of C is within
//
//	2*(k+4) * 2^-24 * (|alpha| * sum_p |op(A)[i,p]*op(B)[p,j]| + |beta*C[i,j]|)
//
// of the product computed in float64, twice the first-order worst-case
// bound of float32 summation in any order; the tests check exactly this.
// This holds for every kernel set (the tests check each one). For a given
// build, kernel set and arguments the result is deterministic; different
// kernel sets (e.g. with and without QAT_CPU=avx512) may differ in the last
// bits, as the tiles and hence the k blocks and orders differ.
package gemm
