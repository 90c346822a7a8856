package gemm

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, the destination C (m×n, ldc >= n) first: op(A) = A (m×k,
// lda >= k) or, with transA, A^T where A is k×m (lda >= m); op(B) = B
// (k×n, ldb >= n) or, with transB, B^T where B is n×k (ldb >= k). See the
// package doc for the argument order and semantics.
//
// Sgemm panics if a dimension is negative, a leading dimension is too
// small or a slice is too short for its matrix: these are programming
// errors, not run-time conditions.
func Sgemm(c []float32, ldc int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32) {
	ar, ac := m, k // A as stored
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n // B as stored
	if transB {
		br, bc = n, k
	}
	switch {
	case m < 0:
		panic("gemm: m < 0")
	case n < 0:
		panic("gemm: n < 0")
	case k < 0:
		panic("gemm: k < 0")
	case lda < max(1, ac):
		panic("gemm: bad lda")
	case ldb < max(1, bc):
		panic("gemm: bad ldb")
	case ldc < max(1, n):
		panic("gemm: bad ldc")
	}
	if m == 0 || n == 0 {
		return
	}
	// For an empty A or B (k == 0) the length checks pass trivially.
	switch {
	case len(a) < lda*(ar-1)+ac:
		panic("gemm: short A")
	case len(b) < ldb*(br-1)+bc:
		panic("gemm: short B")
	case len(c) < ldc*(m-1)+n:
		panic("gemm: short C")
	}
	if alpha == 0 || k == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	if m*n <= tiny && k <= tiny && m*n*k <= tiny {
		// A few multiply-adds: cheaper than setting up the kernels.
		sgemmRef(c, ldc, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta)
		return
	}
	sgemmBlocked(c, ldc, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, active)
}

// tiny is the largest m*n*k done by sgemmRef.
const tiny = 16

// scaleC sets C = beta*C; beta == 0 stores zeros without reading C.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// sgemmRef is the plain triple loop Sgemm is checked against (with
// float32 accumulation, in the order p = 0..k-1). It does no argument
// checking; beta == 0 does not read C.
func sgemmRef(c []float32, ldc int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}
