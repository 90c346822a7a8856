package qgemm

import (
	"fmt"
	"math/rand"
	"testing"
)

// convCase is a convolution over one NHWC sample of h x w pixels of c
// channels (already padded: the conv itself has no padding), k x k at
// stride st, as GemmConv sees it, with the window rows padded to SegLen.
type convCase struct{ h, w, c, k, st int }

func (cc convCase) String() string {
	return fmt.Sprintf("%dx%dx%d k%d s%d", cc.h, cc.w, cc.c, cc.k, cc.st)
}

// geometry returns the Conv of cc for weights of bits.
func (cc convCase) geometry(bits int) Conv {
	uk := 32 / bits
	return Conv{
		OH: (cc.h-cc.k)/cc.st + 1, OW: (cc.w-cc.k)/cc.st + 1,
		RowStep: cc.st * cc.w * cc.c, ColStep: cc.st * cc.c, SegStride: cc.w * cc.c,
		Segs: cc.k, SegLen: (cc.k*cc.c + uk - 1) / uk * uk,
	}
}

// convRef returns what GemmConv must compute, from first principles: the
// im2col rows of the window (ky, kx, ch order, k*c codes, not padded) and
// refGemm with the n x k*k*c weights w; and the packed weights of
// GemmConv, each window row padded with zero codes to SegLen.
func convRef(t testing.TB, src []uint8, cc convCase, g Conv, w []int8, n, bits int) ([]int32, *Packed) {
	t.Helper()
	kc := cc.k * cc.c
	kd := cc.k * kc
	m := g.OH * g.OW
	col := make([]uint8, m*kd)
	for oy := range g.OH {
		for ox := range g.OW {
			row := col[(oy*g.OW+ox)*kd:]
			for ky := range cc.k {
				at := (oy*cc.st+ky)*cc.w*cc.c + ox*cc.st*cc.c
				copy(row[ky*kc:(ky+1)*kc], src[at:at+kc])
			}
		}
	}
	want := refGemm(t, col, kd, m, w, n, kd)
	padded := make([]int8, n*cc.k*g.SegLen)
	for j := range n {
		for ky := range cc.k {
			copy(padded[(j*cc.k+ky)*g.SegLen:], w[j*kd+ky*kc:j*kd+(ky+1)*kc])
		}
	}
	p, err := Pack(padded, n, cc.k*g.SegLen, bits)
	if err != nil {
		t.Fatal(err)
	}
	return want, p
}

// checkConvCase runs GemmConv with kernel kern on src and compares it
// with want, C guarded past each row's n columns (row stride ldc).
func checkConvCase(t testing.TB, kern Kernel, src []uint8, g Conv, p *Packed, want []int32, ldc int, what string) {
	t.Helper()
	n, m := p.N(), g.OH*g.OW
	c := make([]int32, (m-1)*ldc+n+5)
	for i := range c {
		c[i] = guard
	}
	GemmConvWith(kern, c, ldc, src, g, p)
	for i := range c {
		r, j := i/ldc, i%ldc
		switch {
		case r < m && j < n:
			if c[i] != want[r*n+j] {
				t.Fatalf("%v %s: C[%d][%d] = %d, want %d", kern, what, r, j, c[i], want[r*n+j])
			}
		case c[i] != guard:
			t.Fatalf("%v %s: c[%d] outside C written: %d", kern, what, i, c[i])
		}
	}
}

// convSource returns random codes (or 255 everywhere when extreme) for
// the h x w x c sample of cc plus the SegLen - k*c bytes the last window
// row reads past it, and weights of bits (random, or every code the
// largest or smallest when extreme).
func convSource(r *rand.Rand, cc convCase, g Conv, n, bits int, fill int) ([]uint8, []int8) {
	src := make([]uint8, max(cc.h*cc.w*cc.c, g.SrcLen()))
	for i := range src {
		src[i] = uint8(r.Intn(256))
		if fill != fillRandom {
			src[i] = 255
		}
	}
	lo, hi := codeRange(bits)
	w := make([]int8, n*cc.k*cc.k*cc.c)
	for i := range w {
		switch fill {
		case fillRandom:
			w[i] = int8(int(lo) + r.Intn(int(hi)-int(lo)+1))
		case fillMaxPos:
			w[i] = hi
		default:
			w[i] = lo
		}
	}
	return src, w
}

// convCases are the lenet and ResNet shapes, odd widths (tiles of 1 to 8
// output columns), 1 and several segments per k block, segments longer
// than one k block (1024 values), strides 1 to 3 and channel counts
// whose window rows need padding to SegLen.
var convCases = []convCase{
	{28, 28, 1, 5, 1}, {12, 12, 16, 5, 1}, {34, 34, 16, 3, 1}, {18, 18, 32, 3, 2},
	{5, 5, 1, 5, 1}, {7, 9, 3, 3, 1}, {11, 13, 3, 3, 2}, {10, 23, 2, 3, 3},
	{6, 6, 7, 1, 1}, {9, 9, 5, 2, 2}, {4, 20, 120, 3, 1}, {3, 3, 700, 3, 1},
	{12, 12, 16, 5, 1},
}

// TestGemmConvTable checks every kernel's GemmConv against im2col rows
// multiplied by the int64 triple loop (refGemm), for every conv case,
// bit width and a few output widths (every width of the last 16-column
// vector, 1 to 4 panels, and one past a 3-panel VNNI tile).
func TestGemmConvTable(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	for _, cc := range convCases {
		for _, bits := range []int{8, 4, 2} {
			g := cc.geometry(bits)
			for _, n := range []int{1, 16, 17, 32, 49, 64} {
				for _, fill := range []int{fillRandom, fillMaxPos, fillMaxNeg} {
					src, w := convSource(r, cc, g, n, bits, fill)
					want, p := convRef(t, src, cc, g, w, n, bits)
					for _, kern := range Available() {
						for _, pad := range []int{0, 3} {
							checkConvCase(t, kern, src, g, p, want, n+pad, fmt.Sprintf("%v bits=%d n=%d fill=%d ldc=%d", cc, bits, n, fill, n+pad))
						}
					}
				}
			}
		}
	}
}

// TestGemmConvPanics checks the documented programming errors.
func TestGemmConvPanics(t *testing.T) {
	p, err := Pack(make([]int8, 2*8), 2, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	ok := Conv{OH: 2, OW: 2, RowStep: 8, ColStep: 4, SegStride: 8, Segs: 2, SegLen: 4}
	src := make([]uint8, ok.SrcLen())
	c := make([]int32, 8)
	for name, f := range map[string]func(){
		"geometry": func() { g := ok; g.OW = 0; GemmConv(c, 2, src, g, p) },
		"step":     func() { g := ok; g.ColStep = -1; GemmConv(c, 2, src, g, p) },
		"unit":     func() { g := ok; g.SegLen, g.Segs = 2, 4; GemmConv(c, 2, src, g, p) },
		"K":        func() { g := ok; g.Segs = 1; GemmConv(c, 2, src, g, p) },
		"ldc":      func() { GemmConv(c, 1, src, ok, p) },
		"src":      func() { GemmConv(c, 2, src[:len(src)-1], ok, p) },
		"c":        func() { GemmConv(c[:7], 2, src, ok, p) },
		"nil":      func() { GemmConv(c, 2, src, ok, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	GemmConv(c, 2, src, ok, p) // the valid call itself does not panic
}

// FuzzGemmConv checks every kernel's GemmConv against the reference on
// fuzzed geometry, bit widths, output widths and codes.
func FuzzGemmConv(f *testing.F) {
	for _, cc := range convCases[:10] {
		f.Add(uint8(cc.h), uint8(cc.w), uint8(cc.c), uint8(cc.k), uint8(cc.st), uint8(0), uint8(17), int64(1))
	}
	f.Fuzz(func(t *testing.T, h, w, c, k, st, bitsSel, n uint8, seed int64) {
		cc := convCase{h: 1 + int(h)%20, w: 1 + int(w)%20, c: 1 + int(c)%40, k: 1 + int(k)%5, st: 1 + int(st)%3}
		if cc.k > cc.h || cc.k > cc.w {
			return
		}
		bits := []int{8, 4, 2}[int(bitsSel)%3]
		nn := 1 + int(n)%70
		r := rand.New(rand.NewSource(seed))
		g := cc.geometry(bits)
		src, wt := convSource(r, cc, g, nn, bits, int(bitsSel/3)%3)
		want, p := convRef(t, src, cc, g, wt, nn, bits)
		for _, kern := range Available() {
			checkConvCase(t, kern, src, g, p, want, nn, fmt.Sprintf("%v bits=%d n=%d", cc, bits, nn))
		}
	})
}
