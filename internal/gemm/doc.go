// Package gemm is the one matrix-multiply entry point of qat's layers:
// Sgemm, a float32 row-major general matrix multiply with BLAS semantics.
//
// For now Sgemm delegates to gonum.org/v1/gonum/blas/gonum's Sgemm, pure Go
// and parallel over goroutines (up to GOMAXPROCS). Every caller goes
// through this one function so that a faster kernel (packed, SIMD, single
// threaded for predictable benchmarks) can replace gonum's later without
// touching the layers.
//
// Arguments follow the reference BLAS sgemm with row-major storage and the
// destination first in the name only: C = alpha*op(A)*op(B) + beta*C, where
// op(X) is X or its transpose, op(A) is m×k, op(B) is k×n and C is m×n. A
// matrix with r rows and s columns as stored (before op) occupies
// x[i*ldx+j] for i < r, j < s, so ldx >= max(1, s). beta == 0 overwrites C
// without reading it (NaN in C does not propagate). Invalid dimensions or
// slices too short for them panic, as in gonum; they are programming
// errors, not run-time conditions.
package gemm
