package gemm

import (
	"fmt"
	"math"
	"math/rand"
	"sync"
	"testing"
)

// naive computes C = alpha*op(A)*op(B) + beta*C in float64 with the same
// row-major storage conventions as Sgemm, and the error scale of every
// entry, |alpha|*sum_p |A(i,p)*B(p,j)| + |beta*C(i,j)|. beta == 0 does
// not read C.
func naive(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (out, scale []float64) {
	out = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
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
				sa += math.Abs(float64(av) * float64(bv))
			}
			out[i*n+j] = float64(alpha) * s
			scale[i*n+j] = math.Abs(float64(alpha)) * sa
			if beta != 0 {
				out[i*n+j] += float64(beta) * float64(c[i*ldc+j])
				scale[i*n+j] += math.Abs(float64(beta) * float64(c[i*ldc+j]))
			}
		}
	}
	return out, scale
}

// tolerance is the error bound every Sgemm entry must meet:
//
//	|got - want| <= 2*(k+4) * 2^-24 * (|alpha|*sum_p |A(i,p)*B(p,j)| + |beta*C(i,j)|)
//
// want being the float64 result. Summing k float32 products in any order
// (blocked, vectorized, fused or not) errs by at most about k units of
// float32 rounding (2^-24) times the sum of the magnitudes of the terms;
// alpha, beta and the splitting of k into blocks add a few more roundings.
// The factor 2 is a safety margin over that first-order bound. Results are
// not bit-equal to a sequential float32 loop, so no tighter check is made.
func tolerance(k int, scale float64) float64 {
	return 2 * float64(k+4) * 0x1p-24 * scale
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// sgemmWith calls Sgemm with the kernel set ks active. Every test that
// runs Sgemm's kernels loops over kernelSets, so each set this machine
// can run (AVX-512, AVX2, generic) is checked against the reference,
// whichever Sgemm would choose.
func sgemmWith(ks *kernelSet, c []float32, ldc int, tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32) {
	defer func(s *kernelSet) { active = s }(active)
	active = ks
	Sgemm(c, ldc, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta)
}

type gemmCase struct {
	tA, tB      bool
	m, n, k     int
	padA, padB  int // lda, ldb beyond the minimum
	padC        int // ldc - n
	alpha, beta float32
	nanC        bool       // fill C with NaN (with beta == 0)
	ks          *kernelSet // kernels to run (nil: those Sgemm chose)
	useRef      bool       // check sgemmRef instead of Sgemm
	seed        int64
}

func (tc gemmCase) String() string {
	name := "default"
	if tc.useRef {
		name = "ref"
	} else if tc.ks != nil {
		name = tc.ks.name
	}
	return fmt.Sprintf("%s/tA=%v/tB=%v/m=%d/n=%d/k=%d/pad=%d,%d,%d/alpha=%v/beta=%v/nan=%v",
		name, tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.padA, tc.padB, tc.padC, tc.alpha, tc.beta, tc.nanC)
}

// check runs one case and reports the first wrong entry. C is the first
// (m-1)*ldc+n elements of a larger array; the padding between rows and
// the elements past the end are filled with a sentinel that must survive.
func check(t *testing.T, tc gemmCase) {
	t.Helper()
	r := rand.New(rand.NewSource(tc.seed))
	m, n, k := tc.m, tc.n, tc.k
	ar, ac := m, k
	if tc.tA {
		ar, ac = k, m
	}
	br, bc := k, n
	if tc.tB {
		br, bc = n, k
	}
	lda, ldb, ldc := max(1, ac+tc.padA), max(1, bc+tc.padB), max(1, n+tc.padC)
	a := randSlice(r, max(0, (ar-1)*lda+ac))
	b := randSlice(r, max(0, (br-1)*ldb+bc))
	const tail = 37
	cLen := max(0, (m-1)*ldc+n)
	cAll := randSlice(r, cLen+tail)
	if tc.nanC {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				cAll[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	orig := append([]float32(nil), cAll...)
	want, scale := naive(tc.tA, tc.tB, m, n, k, tc.alpha, a, lda, b, ldb, tc.beta, orig, ldc)
	c := cAll[:cLen]
	if tc.useRef {
		sgemmRef(c, ldc, tc.tA, tc.tB, m, n, k, tc.alpha, a, lda, b, ldb, tc.beta)
	} else {
		ks := tc.ks
		if ks == nil {
			ks = active
		}
		sgemmWith(ks, c, ldc, tc.tA, tc.tB, m, n, k, tc.alpha, a, lda, b, ldb, tc.beta)
	}
	for i := 0; i < m; i++ {
		for j := 0; j < ldc && i*ldc+j < len(cAll); j++ {
			got := cAll[i*ldc+j]
			if j >= n {
				if math.Float32bits(got) != math.Float32bits(orig[i*ldc+j]) {
					t.Fatalf("%v: C padding [%d,%d] changed from %v to %v", tc, i, j, orig[i*ldc+j], got)
				}
				continue
			}
			w := want[i*n+j]
			if d := math.Abs(float64(got) - w); !(d <= tolerance(k, scale[i*n+j])) {
				t.Fatalf("%v: C[%d,%d] = %v, want %v (error %g, tolerance %g)", tc, i, j, got, w, d, tolerance(k, scale[i*n+j]))
			}
		}
	}
	for i := cLen; i < len(cAll); i++ {
		if math.Float32bits(cAll[i]) != math.Float32bits(orig[i]) {
			t.Fatalf("%v: C[%d] past the end changed", tc, i)
		}
	}
}

// Edge sizes around the register tiles (AVX-512: mr = 8 rows, nr = 48
// columns in vectors of 16; AVX2: 6 rows, 16 columns in vectors of 8;
// generic: 8×48) and odd depths, also past the unroll by 4 of the kernels
// and the 16×16 and 8×8 transposes of packing.
var (
	edgeM = []int{1, 2, 3, 5, 6, 7, 8, 9, 12, 13, 15, 16, 17, 25}
	edgeN = []int{1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 95, 96, 97}
	edgeK = []int{1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33}
)

// TestSgemmEdges compares Sgemm, through both micro-kernels, with a
// float64 triple loop for all transpose combinations and sizes around
// the tile edges, with padded leading dimensions and several alpha, beta.
func TestSgemmEdges(t *testing.T) {
	seed := int64(0)
	for _, ks := range kernelSets {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, m := range edgeM {
					for _, n := range edgeN {
						for _, k := range edgeK {
							seed++
							tc := gemmCase{tA: tA, tB: tB, m: m, n: n, k: k, ks: ks, seed: seed}
							switch seed % 4 {
							case 0:
								tc.alpha, tc.beta = 1, 0
							case 1:
								tc.alpha, tc.beta, tc.padA, tc.padB, tc.padC = 0.75, -0.5, 3, 5, 2
							case 2:
								tc.alpha, tc.beta, tc.nanC, tc.padC = -2, 0, true, 7
							case 3:
								tc.alpha, tc.beta, tc.padA, tc.padB, tc.padC = 1, 1, 1, 17, 16
							}
							check(t, tc)
						}
					}
				}
			}
		}
	}
}

// TestSgemmBlocks covers shapes larger than the cache blocks (kc = 256,
// nc = 480 or 240, mc = 960) and the packing choices: op(B) = B packed
// (generic; AVX2 with ldb a multiple of 128 floats) or read in place,
// op(A) = A^T packed (lda >= 512) or read in place.
func TestSgemmBlocks(t *testing.T) {
	shapes := []struct{ m, n, k, padA int }{
		{9, 1100, 300, 0},
		{40, 530, 270, 5},
		{100, 100, 520, 0},
		{17, 50, 20, 600},
		{970, 17, 30, 0},
		{24, 1031, 513, 0},
		{3, 7, 1025, 0},
		{40, 509, 70, 0}, // ldb = 512: op(B) = B packed by AVX2
	}
	seed := int64(1000)
	for _, ks := range kernelSets {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, s := range shapes {
					for _, beta := range []float32{0, 0.5} {
						seed++
						check(t, gemmCase{tA: tA, tB: tB, m: s.m, n: s.n, k: s.k, padA: s.padA, padB: 3, padC: 1,
							alpha: 1.5, beta: beta, nanC: beta == 0, ks: ks, seed: seed})
					}
				}
			}
		}
	}
}

// TestSgemmLegacy is the original test of this package: odd sizes, all
// transposes, leading dimensions larger than the rows.
func TestSgemmLegacy(t *testing.T) {
	sizes := []int{1, 3, 17, 65, 130}
	seed := int64(5000)
	for _, ks := range kernelSets {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, m := range sizes {
					for _, n := range sizes {
						for _, k := range sizes {
							for _, pad := range []int{0, 2} {
								seed++
								check(t, gemmCase{tA: tA, tB: tB, m: m, n: n, k: k, padA: pad, padB: pad, padC: pad,
									alpha: 0.75, beta: -0.5, ks: ks, seed: seed})
							}
						}
					}
				}
			}
		}
	}
}

// TestSgemmRef checks the plain triple loop against the float64 one.
func TestSgemmRef(t *testing.T) {
	for i, s := range []struct{ m, n, k int }{{1, 1, 1}, {5, 7, 3}, {17, 33, 65}} {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				check(t, gemmCase{tA: tA, tB: tB, m: s.m, n: s.n, k: s.k, padA: 1, padB: 2, padC: 3,
					alpha: 0.5, beta: 2, useRef: true, seed: int64(i)})
				check(t, gemmCase{tA: tA, tB: tB, m: s.m, n: s.n, k: s.k,
					alpha: 0.5, beta: 0, nanC: true, useRef: true, seed: int64(i)})
			}
		}
	}
}

// TestSgemmScaleOnly covers alpha == 0 and k == 0: C = beta*C, with
// beta == 0 writing zeros over NaN.
func TestSgemmScaleOnly(t *testing.T) {
	for _, s := range []struct {
		k     int
		alpha float32
	}{{0, 1}, {5, 0}} {
		for _, beta := range []float32{0, 1, -3} {
			check(t, gemmCase{m: 3, n: 5, k: s.k, padC: 2, alpha: s.alpha, beta: beta, nanC: beta == 0, seed: 1})
			check(t, gemmCase{tA: true, tB: true, m: 4, n: 17, k: s.k, padA: 1, alpha: s.alpha, beta: beta, seed: 2})
		}
	}
	// Empty C: nothing to do, nil slices accepted.
	Sgemm(nil, 5, false, false, 0, 5, 3, 1, nil, 3, make([]float32, 15), 5, 0)
	Sgemm(nil, 1, false, false, 4, 0, 3, 1, make([]float32, 12), 3, nil, 1, 0)
}

// TestSgemmBetaZero checks that beta == 0 overwrites C without reading it.
func TestSgemmBetaZero(t *testing.T) {
	for _, ks := range kernelSets {
		a := []float32{1, 2, 3, 4} // 2×2
		b := []float32{5, 6, 7, 8}
		nan := float32(math.NaN())
		c := []float32{nan, nan, nan, nan}
		sgemmWith(ks, c, 2, false, false, 2, 2, 2, 1, a, 2, b, 2, 0)
		want := []float32{19, 22, 43, 50}
		for i := range want {
			if c[i] != want[i] {
				t.Fatalf("%s: C = %v, want %v", ks.name, c, want)
			}
		}
	}
}

// TestSgemmPanics checks that invalid arguments panic.
func TestSgemmPanics(t *testing.T) {
	s := make([]float32, 100)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"m<0", func() { Sgemm(s, 2, false, false, -1, 2, 2, 1, s, 2, s, 2, 0) }},
		{"n<0", func() { Sgemm(s, 2, false, false, 2, -1, 2, 1, s, 2, s, 2, 0) }},
		{"k<0", func() { Sgemm(s, 2, false, false, 2, 2, -1, 1, s, 2, s, 2, 0) }},
		{"lda", func() { Sgemm(s, 2, false, false, 2, 2, 3, 1, s, 2, s, 2, 0) }},
		{"ldaT", func() { Sgemm(s, 2, true, false, 3, 2, 2, 1, s, 2, s, 2, 0) }},
		{"ldb", func() { Sgemm(s, 3, false, false, 2, 3, 2, 1, s, 2, s, 2, 0) }},
		{"ldbT", func() { Sgemm(s, 2, false, true, 2, 2, 3, 1, s, 3, s, 2, 0) }},
		{"ldc", func() { Sgemm(s, 2, false, false, 2, 3, 2, 1, s, 2, s, 3, 0) }},
		{"lda0", func() { Sgemm(s, 2, false, false, 2, 2, 0, 1, s, 0, s, 2, 0) }},
		{"shortA", func() { Sgemm(s, 2, false, false, 10, 2, 10, 1, s[:99], 10, s, 2, 0) }},
		{"shortB", func() { Sgemm(s, 10, false, false, 2, 10, 10, 1, s, 10, s[:99], 10, 0) }},
		{"shortC", func() { Sgemm(s[:99], 10, false, false, 10, 10, 2, 1, s, 2, s, 10, 0) }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.f()
		}()
	}
}

// TestSgemmAllocs checks that steady-state calls do not allocate: the
// packing buffers are reused.
func TestSgemmAllocs(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	a := randSlice(r, 1<<19)
	b := randSlice(r, 1<<16)
	c := randSlice(r, 1<<16)
	for _, ks := range kernelSets {
		for _, s := range []struct {
			tA, tB  bool
			m, n, k int
		}{
			{false, false, 16, 576, 25},
			{false, true, 16, 25, 576},
			{true, false, 64, 64, 64},
			{true, false, 40, 100, 600},
			{false, false, 128, 256, 200},
		} {
			lda, ldb := s.k, s.n
			if s.tA {
				lda = s.m
				if s.k*s.m < 1<<15 {
					lda = 600 // packed A^T
				}
			}
			if s.tB {
				ldb = s.k
			}
			allocs := testing.AllocsPerRun(20, func() {
				sgemmWith(ks, c, s.n, s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, b, ldb, 0.5)
			})
			if allocs != 0 {
				t.Errorf("%s %+v: %v allocations per call", ks.name, s, allocs)
			}
		}
	}
}

// TestSgemmConcurrent runs packing calls from several goroutines at once:
// each must get its own buffers and the deterministic result.
func TestSgemmConcurrent(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	const m, n, k = 40, 100, 600
	a := randSlice(r, m*k)
	b := randSlice(r, n*k)
	want := make([]float32, m*n)
	Sgemm(want, n, false, true, m, n, k, 1, a, k, b, k, 0)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := make([]float32, m*n)
			for it := 0; it < 20; it++ {
				Sgemm(c, n, false, true, m, n, k, 1, a, k, b, k, 0)
				for i := range c {
					if c[i] != want[i] {
						errs <- fmt.Sprintf("C[%d] = %v, want %v", i, c[i], want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// FuzzSgemm compares Sgemm, through both micro-kernels, and sgemmRef with
// the float64 triple loop on random shapes, transposes and paddings.
func FuzzSgemm(f *testing.F) {
	f.Add(uint8(16), uint8(100), uint16(25), uint8(0), uint8(0), int64(1))
	f.Add(uint8(9), uint8(49), uint16(300), uint8(3), uint8(1), int64(2))
	f.Add(uint8(33), uint8(17), uint16(17), uint8(1), uint8(2), int64(3))
	f.Add(uint8(1), uint8(1), uint16(1), uint8(2), uint8(3), int64(4))
	f.Add(uint8(45), uint8(37), uint16(40), uint8(128), uint8(0), int64(5))
	f.Fuzz(func(t *testing.T, m8, n8 uint8, k16 uint16, flags, pads uint8, seed int64) {
		m, n, k := int(m8)%80, int(n8)%150, int(k16)%600
		tA, tB := flags&1 != 0, flags&2 != 0
		alphas := []float32{1, -0.5, 2, 0}
		betas := []float32{0, 1, 0.25, -1}
		alpha, beta := alphas[flags>>2&3], betas[flags>>4&3]
		tc := gemmCase{tA: tA, tB: tB, m: m, n: n, k: k,
			padA: int(pads & 3), padB: int(pads >> 2 & 7), padC: int(pads >> 5),
			alpha: alpha, beta: beta, nanC: beta == 0 && flags&64 != 0, seed: seed}
		if flags&128 != 0 && tA {
			tc.padA += 520 // packed A^T
		}
		if flags&128 != 0 && !tB {
			tc.padB = 640 - n // ldb = 640: op(B) = B packed by AVX2 for m >= 32
		}
		for _, ks := range kernelSets {
			tc.ks = ks
			check(t, tc)
		}
		if m*n*k <= 1<<16 {
			tc.useRef = true
			check(t, tc)
		}
	})
}

// TestKernelSets checks that Sgemm uses the first of the kernel sets, the
// pure-Go one comes last and every set's tile fits its blocks. Which sets
// a CPU gets is checked per architecture (kernel_amd64_test.go).
func TestKernelSets(t *testing.T) {
	if got := Kernel(); got != kernelSets[0].name {
		t.Errorf("Kernel() = %q, want %q", got, kernelSets[0].name)
	}
	if last := kernelSets[len(kernelSets)-1]; last != genericKernels {
		t.Errorf("last kernel set is %s, want Generic", last.name)
	}
	for _, ks := range kernelSets {
		t.Logf("kernel set %s: %d×%d tile, vectors of %d, kc = %d, mc = %d, nc = %d", ks.name, ks.mr, ks.nr, ks.nv, ks.kc, ks.mc, ks.nc)
		if ks.nr%ks.nv != 0 || ks.mc%ks.mr != 0 || ks.nc%ks.nr != 0 || ks.nv > 16 {
			t.Errorf("%s: tile %d×%d (vectors of %d) does not fit blocks mc = %d, nc = %d", ks.name, ks.mr, ks.nr, ks.nv, ks.mc, ks.nc)
		}
	}
}
