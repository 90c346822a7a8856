package gemm

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// naive computes C = alpha*op(A)*op(B) + beta*C in float64 with the same
// row-major storage conventions as Sgemm.
func naive(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
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
				s += float64(av) * float64(bv)
			}
			out[i*n+j] = float64(alpha)*s + float64(beta)*float64(c[i*ldc+j])
		}
	}
	return out
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// TestSgemm compares Sgemm with a float64 triple loop for all transpose
// combinations, odd sizes and leading dimensions larger than the rows.
// Tolerance: |got-want| <= 1e-5*(1+sum|terms|), float32 rounding of a k-term
// dot product being well inside it for k <= 130.
func TestSgemm(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	sizes := []int{1, 3, 17, 65, 130}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, m := range sizes {
				for _, n := range sizes {
					for _, k := range sizes {
						for _, pad := range []int{0, 2} {
							name := fmt.Sprintf("tA=%v/tB=%v/m=%d/n=%d/k=%d/pad=%d", tA, tB, m, n, k, pad)
							checkOne(t, r, name, tA, tB, m, n, k, pad)
						}
					}
				}
			}
		}
	}
}

func checkOne(t *testing.T, r *rand.Rand, name string, tA, tB bool, m, n, k, pad int) {
	t.Helper()
	ar, ac := m, k
	if tA {
		ar, ac = k, m
	}
	br, bc := k, n
	if tB {
		br, bc = n, k
	}
	lda, ldb, ldc := ac+pad, bc+pad, n+pad
	a := randSlice(r, ar*lda)
	b := randSlice(r, br*ldb)
	c := randSlice(r, m*ldc)
	alpha, beta := float32(0.75), float32(-0.5)
	want := naive(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	// scale bounds the rounding error of each entry.
	abs := func(x []float32) []float32 {
		y := make([]float32, len(x))
		for i, v := range x {
			y[i] = float32(math.Abs(float64(v)))
		}
		return y
	}
	scale := naive(tA, tB, m, n, k, 1, abs(a), lda, abs(b), ldb, 1, abs(c), ldc)
	got := append([]float32(nil), c...)
	Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, got, ldc)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			g, w := float64(got[i*ldc+j]), want[i*n+j]
			if d := math.Abs(g - w); d > 1e-5*(1+scale[i*n+j]) {
				t.Fatalf("%s: C[%d,%d] = %v, want %v", name, i, j, g, w)
			}
		}
		// Padding columns of C must be untouched.
		for j := n; j < ldc; j++ {
			if got[i*ldc+j] != c[i*ldc+j] {
				t.Fatalf("%s: padding C[%d,%d] changed", name, i, j)
			}
		}
	}
}

// TestSgemmBetaZero checks that beta == 0 overwrites C without reading it.
func TestSgemmBetaZero(t *testing.T) {
	a := []float32{1, 2, 3, 4} // 2×2
	b := []float32{5, 6, 7, 8}
	nan := float32(math.NaN())
	c := []float32{nan, nan, nan, nan}
	Sgemm(false, false, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2)
	want := []float32{19, 22, 43, 50}
	for i := range want {
		if c[i] != want[i] {
			t.Fatalf("C = %v, want %v", c, want)
		}
	}
}
