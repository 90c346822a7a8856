package gemm

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// TestSgemmParallelBitIdentical checks that SgemmParallel stores exactly
// Sgemm's bits, and nothing outside C's window, for 1 to 5 and 7 threads,
// every transpose combination, beta 0 and not, odd shapes split by rows
// and by columns (k above kc included), with every kernel set.
func TestSgemmParallelBitIdentical(t *testing.T) {
	shapes := [][3]int{ // m, n, k
		{97, 29, 800},   // rows, k over several k blocks
		{5, 301, 1500},  // columns
		{150, 64, 230},  // rows
		{32, 400, 170},  // columns
		{191, 193, 61},  // both odd, rows
		{49, 50, 900},   // two units of rows and of columns
		{130000, 1, 17}, // rows of 17 multiply-adds
		{2, 130000, 9},  // columns of 18 multiply-adds
	}
	for _, s := range shapes {
		if _, per := parallelSplit(2, s[0], s[1], s[2]); per == 0 {
			t.Fatalf("%v is not split: the test would not test", s)
		}
	}
	defer func(s *kernelSet) { active = s }(active)
	for _, ks := range kernelSets {
		active = ks
		for si, s := range shapes {
			for combo := range 4 {
				tA, tB := combo&1 != 0, combo&2 != 0
				for _, beta := range []float32{0, 0.75} {
					name := fmt.Sprintf("%s/m=%d/n=%d/k=%d/tA=%v/tB=%v/beta=%v", ks.name, s[0], s[1], s[2], tA, tB, beta)
					checkParallel(t, name, int64(si*8+combo), tA, tB, s[0], s[1], s[2], beta)
				}
			}
		}
	}
}

func checkParallel(t *testing.T, name string, seed int64, tA, tB bool, m, n, k int, beta float32) {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	ar, ac := m, k
	if tA {
		ar, ac = k, m
	}
	br, bc := k, n
	if tB {
		br, bc = n, k
	}
	lda, ldb, ldc := ac+3, bc+1, n+2
	a, b := randSlice(r, lda*ar), randSlice(r, ldb*br)
	c0 := randSlice(r, ldc*m)
	for i := range m { // the padding must survive
		for j := n; j < ldc; j++ {
			c0[i*ldc+j] = float32(math.Inf(1))
		}
	}
	want := append([]float32(nil), c0...)
	Sgemm(want, ldc, tA, tB, m, n, k, 1.25, a, lda, b, ldb, beta)
	for _, threads := range []int{1, 2, 3, 4, 5, 7} {
		got := append([]float32(nil), c0...)
		SgemmParallel(got, ldc, tA, tB, m, n, k, 1.25, a, lda, b, ldb, beta, threads)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s/threads=%d: C[%d] = %v (%#x), Sgemm %v (%#x)", name, threads, i, got[i],
					math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
}

// TestSgemmParallelSplit checks the blocks SgemmParallel cuts: whole
// multiples of BlockAlign along the dimension with more of them, no more
// than threads, and none for small products.
func TestSgemmParallelSplit(t *testing.T) {
	for _, tc := range []struct {
		threads, m, n, k int
		byRows           bool
		per              int
	}{
		{2, 400, 64, 128, true, 240},   // 9 units of 48 rows: 5 + 4
		{3, 400, 64, 128, true, 144},   // 3 + 3 + 3
		{16, 400, 64, 512, true, 48},   // 9 blocks
		{2, 32, 400, 256, false, 240},  // by columns
		{2, 128, 128, 128, true, 96},   // 96 + 32
		{8, 100, 100, 300, true, 96},   // 3M multiply-adds: 2 goroutines' worth
		{8, 32, 400, 64, false, 0},     // 0.8M multiply-adds: too little work
		{8, 40, 40, 4000, true, 0},     // one unit either way
		{8, 1000000, 2, 4, true, 0},    // 8 multiply-adds a row
		{1, 1000, 1000, 1000, true, 0}, // one thread
	} {
		byRows, per := parallelSplit(tc.threads, tc.m, tc.n, tc.k)
		if per != tc.per || (per != 0 && byRows != tc.byRows) {
			t.Errorf("parallelSplit(%d, %d, %d, %d) = %v, %d; want %v, %d", tc.threads, tc.m, tc.n, tc.k, byRows, per, tc.byRows, tc.per)
		}
	}
}

// TestSgemmParallelPanics checks that invalid arguments panic on the
// calling goroutine, as Sgemm's do.
func TestSgemmParallelPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || fmt.Sprint(r) != "gemm: short C" {
			t.Errorf("recover() = %v, want gemm: short C", r)
		}
	}()
	m, n, k := 200, 200, 200
	SgemmParallel(make([]float32, m*n-1), n, false, false, m, n, k, 1, make([]float32, m*k), k, make([]float32, k*n), n, 0, 4)
}
