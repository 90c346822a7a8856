package dwconv

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// impl is one implementation of Row on checked arguments.
type impl struct {
	name string
	row  func(acc, x, w []int32, off []int, c, ow, colStep int)
}

// refRow is Row from its definition, in int64, failing the test if a sum
// does not fit in int32.
func refRow(t testing.TB, x []int32, w []int8, off []int, c, ow, colStep int) []int32 {
	acc := make([]int32, ow*c)
	for ox := range ow {
		for ch := range c {
			var s int64
			for tap, o := range off {
				s += int64(x[o+ox*colStep+ch]) * int64(w[tap*c+ch])
			}
			if s != int64(int32(s)) {
				t.Fatalf("reference sum %d overflows int32", s)
			}
			acc[ox*c+ch] = int32(s)
		}
	}
	return acc
}

// dwCase is a k x k depthwise window at stride st over a staged row of
// wp pixels of c channels, ow output columns.
type dwCase struct{ c, k, st, ow int }

// data returns staged values (random in [-255, 255], or all 255 or -255),
// int8 weights (random, or all 127 or -128) and the taps' offsets of tc.
func (tc dwCase) data(rng *rand.Rand, fill int) (x []int32, w []int8, off []int, colStep int) {
	wp := (tc.ow-1)*tc.st + tc.k
	rs := wp * tc.c
	x = make([]int32, tc.k*rs)
	for i := range x {
		switch fill {
		case 0:
			x[i] = int32(rng.IntN(511)) - 255
		case 1:
			x[i] = 255
		default:
			x[i] = -255
		}
	}
	w = make([]int8, tc.k*tc.k*tc.c)
	for i := range w {
		switch fill {
		case 0:
			w[i] = int8(rng.IntN(256) - 128)
		case 1:
			w[i] = -128
		default:
			w[i] = 127
		}
	}
	for ky := range tc.k {
		for kx := range tc.k {
			off = append(off, ky*rs+kx*tc.c)
		}
	}
	return x, w, off, tc.st * tc.c
}

// check runs every implementation on tc's data and compares it with
// refRow; the guard values past acc's ow*c must survive.
func check(t testing.TB, tc dwCase, x []int32, w []int8, off []int, colStep int) {
	t.Helper()
	want := refRow(t, x, w, off, tc.c, tc.ow, colStep)
	lanes := Weights(w)
	const guard = int32(-0x5a5a5a5b)
	for _, im := range impls() {
		acc := make([]int32, tc.ow*tc.c+20)
		for i := range acc {
			acc[i] = guard
		}
		im.row(acc, x[:len(x):len(x)], lanes[:len(lanes):len(lanes)], off, tc.c, tc.ow, colStep)
		for i, v := range acc {
			switch {
			case i < len(want) && v != want[i]:
				t.Fatalf("%s %+v: acc[%d] = %d, want %d", im.name, tc, i, v, want[i])
			case i >= len(want) && v != guard:
				t.Fatalf("%s %+v: acc[%d] past the row written", im.name, tc, i)
			}
		}
	}
	got := make([]int32, tc.ow*tc.c)
	Row(got, x, lanes, off, tc.c, tc.ow, colStep)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Row %+v differs from the reference", tc)
	}
}

// TestRow checks every implementation against the definition for channel
// counts around the 8- and 16-lane blocks (MobileNetV2's among them),
// 1x1 to 5x5 windows, strides 1 to 3, 1 to 9 columns and extreme values.
func TestRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cs := []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 40, 96, 144}
	for _, c := range cs {
		for _, k := range []int{1, 2, 3, 5} {
			for _, st := range []int{1, 2, 3} {
				for _, ow := range []int{1, 2, 5, 9} {
					for fill := range 3 {
						tc := dwCase{c, k, st, ow}
						x, w, off, colStep := tc.data(rng, fill)
						check(t, tc, x, w, off, colStep)
					}
				}
			}
		}
	}
}

func TestRowPanics(t *testing.T) {
	x, w, off := make([]int32, 100), Weights(make([]int8, 18)), []int{0, 2}
	acc := make([]int32, 20)
	for name, f := range map[string]func(){
		"channels": func() { Row(acc, x, w, off, 0, 2, 9) },
		"columns":  func() { Row(acc, x, w, off, 9, 0, 9) },
		"taps":     func() { Row(acc, x, w, nil, 9, 2, 9) },
		"step":     func() { Row(acc, x, w, off, 9, 2, -1) },
		"acc":      func() { Row(acc[:17], x, w, off, 9, 2, 9) },
		"weights":  func() { Row(acc, x, w[:17], off, 9, 2, 9) },
		"offset":   func() { Row(acc, x, w, []int{0, -1}, 9, 2, 9) },
		"x":        func() { Row(acc, x[:19], w, off, 9, 2, 9) },
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
}

// FuzzRow checks every implementation against the definition on fuzzed
// shapes and values.
func FuzzRow(f *testing.F) {
	f.Add(uint8(16), uint8(3), uint8(1), uint8(4), uint8(0), uint64(1))
	f.Add(uint8(17), uint8(5), uint8(2), uint8(3), uint8(1), uint64(2))
	f.Add(uint8(3), uint8(1), uint8(3), uint8(9), uint8(2), uint64(3))
	f.Fuzz(func(t *testing.T, c, k, st, ow, fill uint8, seed uint64) {
		tc := dwCase{c: 1 + int(c)%70, k: 1 + int(k)%5, st: 1 + int(st)%3, ow: 1 + int(ow)%12}
		x, w, off, colStep := tc.data(rand.New(rand.NewPCG(seed, 7)), int(fill)%3)
		check(t, tc, x, w, off, colStep)
	})
}

// TestCenter checks Center against its definition for every length up to
// 70 (the 16- and 8-code blocks and the Go tail), every code and zero
// points 0, 128 and 255; the values past len(src) must survive.
func TestCenter(t *testing.T) {
	for _, z := range []uint8{0, 128, 255} {
		for n := range 71 {
			src := make([]uint8, n)
			for i := range src {
				src[i] = uint8(i * 37)
			}
			dst := make([]int32, n+5)
			for i := range dst {
				dst[i] = -7
			}
			Center(dst, src, z)
			for i, v := range dst {
				want := int32(-7)
				if i < n {
					want = int32(src[i]) - int32(z)
				}
				if v != want {
					t.Fatalf("z=%d n=%d: dst[%d] = %d, want %d", z, n, i, v, want)
				}
			}
		}
	}
}
