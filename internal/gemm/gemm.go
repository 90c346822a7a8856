package gemm

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

var impl gonum.Implementation

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices: op(A) = A (m×k, lda >= k) or, with transA, A^T where A is k×m
// (lda >= m); op(B) = B (k×n, ldb >= n) or, with transB, B^T where B is
// n×k (ldb >= k); C is m×n with ldc >= n. See the package doc.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	impl.Sgemm(trans(transA), trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}
