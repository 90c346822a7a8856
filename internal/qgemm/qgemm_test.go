package qgemm

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
)

// guard fills C around the m x n block; the kernels must leave it as is.
const guard = int32(-0x5a5a5a5b)

// refGemm is the plain triple loop the kernels are checked against: C[i][j]
// = sum_k a[i*lda+k] * w[j*k+kk], in int64, for w given as [n][k] (the
// layout Pack takes). It fails the test if a result does not fit in
// int32 (the tests must stay within the documented K limit).
func refGemm(t testing.TB, a []uint8, lda, m int, w []int8, n, k int) []int32 {
	c := make([]int32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s int64
			for kk := 0; kk < k; kk++ {
				s += int64(a[i*lda+kk]) * int64(w[j*k+kk])
			}
			if s != int64(int32(s)) {
				t.Fatalf("reference overflows int32: %d", s)
			}
			c[i*n+j] = int32(s)
		}
	}
	return c
}

// codeRange returns the smallest and largest code of bits.
func codeRange(bits int) (lo, hi int8) {
	return int8(-1 << (bits - 1)), int8(1<<(bits-1) - 1)
}

// fill kinds of test data.
const (
	fillRandom   = iota
	fillMaxPos   // A = 255, B = largest code
	fillMaxNeg   // A = 255, B = smallest code
	fillSmall    // random, 8-bit codes within [-64, 64] (VPMADDUBSW path)
	fillSmallPos // A = 255, B = 64 (8 bits; the largest code otherwise)
	fillSmallNeg // A = 255, B = -64 (8 bits; the smallest code otherwise)
)

// makeCase returns A (m rows of stride lda, the last row ending the slice
// exactly) and w (n x k codes of bits).
func makeCase(r *rand.Rand, m, n, k, lda, bits, kind int) ([]uint8, []int8) {
	a := make([]uint8, max(0, (m-1)*lda+k))
	w := make([]int8, n*k)
	lo, hi := codeRange(bits)
	if bits == 8 && kind >= fillSmall {
		lo, hi = -64, 64
	}
	for i := range a {
		switch kind {
		case fillRandom, fillSmall:
			a[i] = uint8(r.Intn(256))
		default:
			a[i] = 255
		}
	}
	for i := range w {
		switch kind {
		case fillRandom, fillSmall:
			w[i] = int8(int(lo) + r.Intn(int(hi)-int(lo)+1))
		case fillMaxPos, fillSmallPos:
			w[i] = hi
		case fillMaxNeg, fillSmallNeg:
			w[i] = lo
		}
	}
	return a, w
}

// runCase checks kernel kern on one product against refGemm, including
// that C outside the m x n block (between rows and after the last row) is
// not written.
func runCase(t testing.TB, kern Kernel, a []uint8, lda, m int, w []int8, n, k, bits, ldc int) {
	t.Helper()
	p, err := Pack(w, n, k, bits)
	if err != nil {
		t.Fatalf("Pack(n=%d, k=%d, bits=%d): %v", n, k, bits, err)
	}
	runPacked(t, kern, a, lda, m, p, w, ldc)
}

func runPacked(t testing.TB, kern Kernel, a []uint8, lda, m int, p *Packed, w []int8, ldc int) {
	t.Helper()
	n, k := p.N(), p.K()
	want := refGemm(t, a, lda, m, w, n, k)
	c := make([]int32, max(0, (m-1)*ldc+n)+7)
	for i := range c {
		c[i] = guard
	}
	GemmWith(kern, c, ldc, a, lda, m, p)
	for i := range c {
		r, j := i/ldc, i%ldc
		if r < m && j < n {
			if c[i] != want[r*n+j] {
				t.Fatalf("%v bits=%d m=%d n=%d k=%d lda=%d ldc=%d: C[%d][%d] = %d, want %d",
					kern, p.Bits(), m, n, k, lda, ldc, r, j, c[i], want[r*n+j])
			}
		} else if c[i] != guard {
			t.Fatalf("%v bits=%d m=%d n=%d k=%d lda=%d ldc=%d: c[%d] outside C written: %d",
				kern, p.Bits(), m, n, k, lda, ldc, i, c[i])
		}
	}
}

var (
	testM = []int{0, 1, 2, 3, 5, 6, 7, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 100}
	testN = []int{1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 100}
	testK = []int{1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255}
)

type shape struct{ m, n, k int }

// tableShapes covers every value of testM, testN and testK against a few
// values of the other two (every height of the 8- and 4-row tiles, every
// width of the last 16- and 8-column vector, 1 to 7 panels), and products
// larger than one row block (256 rows), one k block (1024 values) and one
// column block (1 MiB of packed B).
func tableShapes() []shape {
	var s []shape
	for _, m := range testM {
		for _, n := range []int{1, 17, 48, 49, 100} {
			for _, k := range []int{1, 5, 64, 129} {
				s = append(s, shape{m, n, k})
			}
		}
	}
	for _, n := range testN {
		for _, m := range []int{1, 8, 9, 33} {
			for _, k := range []int{3, 16, 65} {
				s = append(s, shape{m, n, k})
			}
		}
	}
	for _, k := range testK {
		for _, m := range []int{3, 8, 17} {
			for _, n := range []int{16, 33, 64} {
				s = append(s, shape{m, n, k})
			}
		}
	}
	return append(s, shape{300, 50, 1100}, shape{9, 20, 2100}, shape{257, 3, 17}, shape{260, 130, 4100},
		shape{13, 256, 40}, shape{9, 2100, 1030})
}

// TestGemmTable checks every available kernel, for 8 bits (full range
// and codes within [-64, 64], which the AVX2 kernel multiplies with
// VPMADDUBSW), 4 and 2 bits, against refGemm on tableShapes with random
// data, with tight and padded strides.
func TestGemmTable(t *testing.T) {
	for _, kern := range Available() {
		t.Run(kern.String(), func(t *testing.T) {
			r := rand.New(rand.NewSource(1))
			for _, tc := range []struct{ bits, kind int }{{8, fillRandom}, {8, fillSmall}, {4, fillRandom}, {2, fillRandom}} {
				bits := tc.bits
				for i, s := range tableShapes() {
					if kern == Generic && s.m*s.n*s.k > 1<<22 && testing.Short() {
						continue
					}
					lda := s.k + []int{0, 3, 64, 1}[i%4]
					ldc := s.n + []int{0, 1, 16, 5}[(i/4)%4]
					a, w := makeCase(r, s.m, s.n, s.k, lda, bits, tc.kind)
					runCase(t, kern, a, lda, s.m, w, s.n, s.k, bits, ldc)
				}
			}
		})
	}
}

// TestGemmExtreme checks the largest products: A all 255 against B all
// at the smallest and at the largest code, which would saturate
// VPMADDUBSW's int16 sums, up to K = MaxK where C reaches -255*128*MaxK,
// and at 8 bits against B all -64 or 64, the bounds of the codes the
// AVX2 kernel multiplies with VPMADDUBSW (pair sums of -+32640).
func TestGemmExtreme(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	shapes := []shape{{9, 17, 255}, {17, 49, 1029}, {3, 33, 4099}}
	if !testing.Short() {
		shapes = append(shapes, shape{9, 17, MaxK})
	}
	for _, kern := range Available() {
		for _, bits := range []int{8, 4, 2} {
			for _, kind := range []int{fillMaxPos, fillMaxNeg, fillSmallPos, fillSmallNeg} {
				for _, s := range shapes {
					a, w := makeCase(r, s.m, s.n, s.k, s.k+1, bits, kind)
					runCase(t, kern, a, s.k+1, s.m, w, s.n, s.k, bits, s.n)
				}
			}
		}
	}
	// The extreme of the extreme: C = -255*128*MaxK, one entry.
	for _, kern := range Available() {
		a, w := makeCase(r, 1, 1, MaxK, MaxK, 8, fillMaxNeg)
		p, err := Pack(w, 1, MaxK, 8)
		if err != nil {
			t.Fatal(err)
		}
		c := []int32{0}
		GemmWith(kern, c, 1, a, MaxK, 1, p)
		if want := int32(-255 * 128 * MaxK); c[0] != want {
			t.Fatalf("%v: C = %d, want %d", kern, c[0], want)
		}
	}
}

// TestGemmParallel checks that GemmParallel equals Gemm for 1..4 threads
// on odd shapes, both splits (rows and columns).
func TestGemmParallel(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, s := range []shape{{1, 100, 33}, {3, 300, 65}, {7, 17, 129}, {33, 65, 31}, {101, 47, 255}, {260, 70, 77}} {
		for _, bits := range []int{8, 4, 2} {
			lda, ldc := s.k+3, s.n+2
			a, w := makeCase(r, s.m, s.n, s.k, lda, bits, fillRandom)
			p, err := Pack(w, s.n, s.k, bits)
			if err != nil {
				t.Fatal(err)
			}
			guarded := func() []int32 {
				c := make([]int32, (s.m-1)*ldc+s.n)
				for i := range c {
					c[i] = guard
				}
				return c
			}
			want := guarded()
			Gemm(want, ldc, a, lda, s.m, p)
			for threads := 0; threads <= 4; threads++ {
				c := guarded()
				GemmParallel(c, ldc, a, lda, s.m, p, threads)
				if !slices.Equal(c, want) {
					t.Fatalf("bits=%d %v threads=%d: GemmParallel differs from Gemm", bits, s, threads)
				}
			}
		}
	}
}

// TestGemmConcurrent runs every kernel from several goroutines at once on
// one fresh Packed per width (the AVX2 kernel's int16 copy may be built
// by the first of them, and its A buffers come from a shared pool): run
// with -race, and every result must equal refGemm.
func TestGemmConcurrent(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	const m, n, k = 37, 70, 300
	for _, kern := range Available() {
		for _, tc := range []struct{ bits, kind int }{{8, fillRandom}, {8, fillSmall}, {4, fillRandom}, {2, fillRandom}} {
			a, w := makeCase(r, m, n, k, k, tc.bits, tc.kind)
			p, err := Pack(w, n, k, tc.bits)
			if err != nil {
				t.Fatal(err)
			}
			want := refGemm(t, a, k, m, w, n, k)
			var wg sync.WaitGroup
			errs := make([]string, 4)
			for g := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := make([]int32, m*n)
					GemmWith(kern, c, n, a, k, m, p)
					if !slices.Equal(c, want) {
						errs[g] = fmt.Sprintf("%v bits=%d kind=%d goroutine %d: wrong result", kern, tc.bits, tc.kind, g)
					}
				}()
			}
			wg.Wait()
			for _, e := range errs {
				if e != "" {
					t.Error(e)
				}
			}
		}
	}
}

// TestGemmNoAlloc checks that Gemm allocates nothing in steady state with
// any kernel (the AVX2 kernel's A buffers come from a pool).
func TestGemmNoAlloc(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	const m, n, k = 70, 40, 1100
	for _, kern := range Available() {
		for _, tc := range []struct{ bits, kind int }{{8, fillRandom}, {8, fillSmall}, {4, fillRandom}, {2, fillRandom}} {
			a, w := makeCase(r, m, n, k, k, tc.bits, tc.kind)
			p, err := Pack(w, n, k, tc.bits)
			if err != nil {
				t.Fatal(err)
			}
			c := make([]int32, m*n)
			if allocs := testing.AllocsPerRun(20, func() { GemmWith(kern, c, n, a, k, m, p) }); allocs != 0 {
				t.Errorf("%v bits=%d kind=%d: %v allocations per Gemm", kern, tc.bits, tc.kind, allocs)
			}
		}
	}
}

// TestPackErrors checks Pack's errors and that they wrap the exported
// sentinels.
func TestPackErrors(t *testing.T) {
	ok := make([]int8, 6)
	tests := []struct {
		name       string
		w          []int8
		n, k, bits int
		want       error
		text       string
	}{
		{"bits 3", ok, 2, 3, 3, ErrBits, "3"},
		{"bits 0", ok, 2, 3, 0, ErrBits, ""},
		{"bits 16", ok, 2, 3, 16, ErrBits, ""},
		{"n 0", nil, 0, 3, 8, ErrShape, "n=0"},
		{"k 0", nil, 2, 0, 8, ErrShape, "k=0"},
		{"n negative", ok, -2, -3, 8, ErrShape, ""},
		{"k negative", ok, 2, -3, 8, ErrShape, ""},
		{"short w", ok[:5], 2, 3, 8, ErrShape, "len(w)=5"},
		{"long w", make([]int8, 7), 2, 3, 8, ErrShape, "len(w)=7"},
		{"k too large", make([]int8, MaxK+1), 1, MaxK + 1, 8, ErrShape, "65793"},
		{"4 bits high", []int8{0, 7, 0, 0, 8, 0}, 2, 3, 4, ErrCode, "w[4] (row 1, column 1) = 8"},
		{"4 bits low", []int8{0, 0, -9, 0, 0, 0}, 2, 3, 4, ErrCode, "w[2] (row 0, column 2) = -9"},
		{"2 bits high", []int8{1, 1, 2, -2, 0, 0}, 2, 3, 2, ErrCode, "w[2] (row 0, column 2) = 2"},
		{"2 bits low", []int8{-2, -2, -2, -3, 0, 0}, 2, 3, 2, ErrCode, "w[3] (row 1, column 0) = -3"},
		{"2 bits 127", []int8{127, 0, 0, 0, 0, 0}, 3, 2, 2, ErrCode, "w[0]"},
	}
	for _, tc := range tests {
		p, err := Pack(tc.w, tc.n, tc.k, tc.bits)
		if err == nil || p != nil {
			t.Errorf("%s: Pack returned %v, %v; want error", tc.name, p, err)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %q does not wrap %q", tc.name, err, tc.want)
		}
		if !strings.Contains(err.Error(), tc.text) || !strings.HasPrefix(err.Error(), "qgemm: ") {
			t.Errorf("%s: error %q, want it to contain %q", tc.name, err, tc.text)
		}
	}
	// The extremes of each width are accepted, MaxK too.
	for _, bits := range []int{8, 4, 2} {
		lo, hi := codeRange(bits)
		if _, err := Pack([]int8{lo, hi}, 1, 2, bits); err != nil {
			t.Errorf("bits=%d: %v", bits, err)
		}
	}
	if _, err := Pack(make([]int8, MaxK), 1, MaxK, 2); err != nil {
		t.Error(err)
	}
}

// TestPacked checks the accessors: sizes, column sums and that sub-byte
// codes stay packed (Bytes is bits/8 bytes per padded code).
func TestPacked(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for _, bits := range []int{8, 4, 2} {
		n, k := 37, 100
		_, w := makeCase(r, 0, n, k, k, bits, fillRandom)
		p, err := Pack(w, n, k, bits)
		if err != nil {
			t.Fatal(err)
		}
		if p.N() != n || p.K() != k || p.Bits() != bits {
			t.Fatalf("N, K, Bits = %d, %d, %d", p.N(), p.K(), p.Bits())
		}
		uk := 32 / bits
		kp := (k + uk - 1) / uk * uk
		want := 48 * kp * bits / 8
		if bits == 8 && !p.small && Selected() == AVX2 {
			want *= 3 // the int16 copy of the AVX2 kernel
		}
		if p.Bytes() != want {
			t.Errorf("bits=%d: Bytes = %d, want %d", bits, p.Bytes(), want)
		}
		sums := p.ColSums()
		for j := 0; j < n; j++ {
			var s int32
			for kk := 0; kk < k; kk++ {
				s += int32(w[j*k+kk])
			}
			if sums[j] != s {
				t.Fatalf("bits=%d: ColSums[%d] = %d, want %d", bits, j, sums[j], s)
			}
		}
	}
}

// TestSmallCodes checks which 8-bit Packed the AVX2 kernel multiplies
// with VPMADDUBSW: exactly those whose codes all lie within [-64, 64].
func TestSmallCodes(t *testing.T) {
	for _, tc := range []struct {
		w    []int8
		want bool
	}{
		{[]int8{-64, 64, 0, 1}, true},
		{[]int8{-64, 65, 0, 1}, false},
		{[]int8{-65, 64, 0, 1}, false},
		{[]int8{127, 0, 0, 0}, false},
		{[]int8{-128, 0, 0, 0}, false},
	} {
		p, err := Pack(tc.w, 2, 2, 8)
		if err != nil {
			t.Fatal(err)
		}
		if p.small != tc.want {
			t.Errorf("Pack(%v).small = %v, want %v", tc.w, p.small, tc.want)
		}
	}
}

// TestKernels checks Kernel's names, Available and Selected.
func TestKernels(t *testing.T) {
	ks := Available()
	if len(ks) == 0 || ks[0] != Generic {
		t.Fatalf("Available() = %v, want Generic first", ks)
	}
	if Selected() != ks[len(ks)-1] {
		t.Errorf("Selected() = %v, want %v", Selected(), ks[len(ks)-1])
	}
	for k, s := range map[Kernel]string{Generic: "Generic", AVX2: "AVX2", AVX512VNNI: "AVX512VNNI", AVXVNNI: "AVXVNNI", 7: "Kernel(7)"} {
		if k.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(k), k.String(), s)
		}
	}
	t.Logf("available: %v, selected: %v", ks, Selected())
}

// TestPanics checks that bad Gemm arguments panic.
func TestPanics(t *testing.T) {
	p, err := Pack(make([]int8, 6*5), 6, 5, 8)
	if err != nil {
		t.Fatal(err)
	}
	a := make([]uint8, 2*5)
	c := make([]int32, 2*6)
	cases := []struct {
		name string
		f    func()
	}{
		{"nil b", func() { Gemm(c, 6, a, 5, 2, nil) }},
		{"m < 0", func() { Gemm(c, 6, a, 5, -1, p) }},
		{"lda < K", func() { Gemm(c, 6, a, 4, 2, p) }},
		{"ldc < N", func() { Gemm(c, 5, a, 5, 2, p) }},
		{"short a", func() { Gemm(c, 6, a[:9], 5, 2, p) }},
		{"short c", func() { Gemm(c[:11], 6, a, 5, 2, p) }},
		{"short a parallel", func() { GemmParallel(c, 6, a[:9], 5, 2, p, 2) }},
		{"unavailable kernel", func() { GemmWith(Kernel(7), c, 6, a, 5, 2, p) }},
	}
	for _, tc := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.f()
		}()
	}
	// m == 0 accepts empty slices.
	Gemm(nil, 6, nil, 5, 0, p)
}

// FuzzGemm derives a product (m, n, k, bits, strides, data) from the fuzz
// input and compares every available kernel with refGemm. data[4] picks
// the bits and, for 8 bits, codes of the full range or within [-64, 64].
func FuzzGemm(f *testing.F) {
	seed := func(m, n, k, bits, padA, padC int, fill byte) {
		f.Add([]byte{byte(m), byte(n), byte(k), byte(k >> 8), byte(bits), byte(padA), byte(padC), fill, 1, 2, 3, 4, 5, 6, 7})
	}
	for _, bits := range []int{0, 1, 2, 3} { // 3: 8 bits within [-64, 64]
		seed(0, 1, 1, bits, 0, 0, 0)
		seed(1, 1, 1, bits, 0, 0, 0)
		seed(7, 15, 3, bits, 1, 1, 0)
		seed(8, 16, 4, bits, 0, 0, 1)
		seed(9, 17, 5, bits, 3, 2, 2)
		seed(15, 47, 15, bits, 0, 3, 0)
		seed(16, 48, 16, bits, 2, 0, 1)
		seed(17, 49, 17, bits, 1, 1, 2)
		seed(33, 64, 63, bits, 0, 0, 0)
		seed(64, 65, 129, bits, 4, 4, 0)
		seed(65, 100, 255, bits, 1, 0, 1)
		seed(5, 3, 1030, bits, 0, 0, 2)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 8 {
			return
		}
		m := int(data[0]) % 80
		n := 1 + int(data[1])%120
		k := 1 + (int(data[2])|int(data[3])<<8)%1100
		bits := []int{8, 4, 2}[int(data[4])%3]
		small := bits == 8 && data[4]/3%2 == 1 // codes within [-64, 64]
		lda := k + int(data[5])%17
		ldc := n + int(data[6])%17
		fill := int(data[7]) % 3
		// Data: the remaining input, repeated, or extreme values.
		rest := data[8:]
		if len(rest) == 0 {
			rest = []byte{0}
		}
		a := make([]uint8, max(0, (m-1)*lda+k))
		w := make([]int8, n*k)
		lo, hi := codeRange(bits)
		if small {
			lo, hi = -64, 64
		}
		span := int(hi) - int(lo) + 1
		for i := range a {
			a[i] = rest[i%len(rest)] * byte(i/len(rest)+1)
			if fill != 0 {
				a[i] = 255
			}
		}
		for i := range w {
			switch fill {
			case 0:
				w[i] = int8(int(lo) + (int(rest[(i*7+3)%len(rest)])+i/len(rest))%span)
			case 1:
				w[i] = hi
			case 2:
				w[i] = lo
			}
		}
		p, err := Pack(w, n, k, bits)
		if err != nil {
			t.Fatal(err)
		}
		for _, kern := range Available() {
			runPacked(t, kern, a, lda, m, p, w, ldc)
		}
	})
}

// TestNoOverflowBound documents the arithmetic behind MaxK.
func TestNoOverflowBound(t *testing.T) {
	if 255*128*MaxK > math.MaxInt32 {
		t.Fatalf("255*128*MaxK = %d exceeds int32", 255*128*MaxK)
	}
}

// TestGemmSinglePanel covers the AVX2 driver's path for 1 or 2 panels,
// where the kernel loops over a row block's whole tiles itself, and its
// larger row blocks for short rows: N <= 32, m from one tile to several
// enlarged row blocks with a partial last tile, K from 1 to several k
// blocks (later blocks add to C), tight and padded strides, every kind
// of codes.
func TestGemmSinglePanel(t *testing.T) {
	for _, kern := range Available() {
		r := rand.New(rand.NewSource(5))
		for _, tc := range []struct{ bits, kind int }{{8, fillRandom}, {8, fillSmall}, {4, fillRandom}, {2, fillRandom}} {
			i := 0
			for _, m := range []int{5, 6, 59, 60, 61, 479, 480, 481, 1021, 1729} {
				for _, n := range []int{1, 7, 8, 9, 16, 17, 32} {
					for _, k := range []int{1, 17, 25, 64, 400, 2100} {
						if m*k > 1<<17 || (kern == Generic && m*k > 1<<14) {
							continue // enough of the large ones
						}
						i++
						lda, ldc := k+[]int{0, 3}[i%2], n+[]int{0, 5}[(i/2)%2]
						a, w := makeCase(r, m, n, k, lda, tc.bits, tc.kind)
						runCase(t, kern, a, lda, m, w, n, k, tc.bits, ldc)
					}
				}
			}
		}
	}
}
