package qvec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"qat/quant"
)

// refFixed is the definition: a loop over quant.RequantizeFixed.
func refFixed(acc, bias, m0, shift []int32, zp, lo, hi int32) []uint8 {
	n := len(bias)
	out := make([]uint8, len(acc))
	for i, a := range acc {
		out[i] = uint8(quant.RequantizeFixed(a+bias[i%n], m0[i%n], shift[i%n], zp, lo, hi))
	}
	return out
}

// checkFixed runs RequantFixed into a slice of a larger backing array and
// compares it with the reference and the guard bytes.
func checkFixed(t *testing.T, name string, acc, bias, m0, shift []int32, zp, lo, hi int32) {
	t.Helper()
	want := refFixed(acc, bias, m0, shift, zp, lo, hi)
	back := make([]uint8, len(acc)+80)
	for i := range back {
		back[i] = guard
	}
	dst := back[:len(acc)]
	RequantFixed(dst, acc, bias, m0, shift, zp, lo, hi)
	n := len(bias)
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("%s: element %d (row %d col %d): acc %d bias %d m0 %d shift %d zp %d lo %d hi %d: got %d want %d",
				name, i, i/n, i%n, acc[i], bias[i%n], m0[i%n], shift[i%n], zp, lo, hi, dst[i], want[i])
		}
	}
	for i := len(acc); i < len(back); i++ {
		if back[i] != guard {
			t.Fatalf("%s: byte %d past len(dst) %d overwritten: %d", name, i, len(acc), back[i])
		}
	}
}

// Edge values of the int32 inputs.
var (
	accEdges = []int32{math.MinInt32, math.MinInt32 + 1, -1 << 30, -1<<30 - 1, -1<<30 + 1, -65536, -3, -2, -1,
		0, 1, 2, 3, 65535, 1<<30 - 1, 1 << 30, 1<<30 + 1, math.MaxInt32 - 1, math.MaxInt32}
	m0Edges = []int32{math.MinInt32, math.MinInt32 + 1, -1 << 30, -1, 0, 1, 2, 1 << 30, 1<<30 + 1,
		1518500250, math.MaxInt32 - 1, math.MaxInt32}
	shiftEdges = []int32{-32, -31, -30, -17, -2, -1, 0, 1, 2, 15, 29, 30, 31, 32, 33, 47, 62, 63, 64, 100, math.MaxInt32}
)

// fixedParamSets adds to qparamSets the zero points at which the clamp
// bounds lo-zp and hi-zp leave the int32 range.
var fixedParamSets = append(append([]qparams(nil), qparamSets...),
	qparams{math.MinInt32, 0, 255}, qparams{math.MaxInt32, 0, 255}, qparams{math.MinInt32, 7, 9},
	qparams{7 - math.MaxInt32, 7, 9}, qparams{6 - math.MaxInt32, 7, 9}, qparams{8 - math.MaxInt32, 7, 9},
	qparams{9 - math.MaxInt32, 7, 9}, qparams{10 - math.MaxInt32, 7, 9}, qparams{-1 << 30, 0, 255},
	qparams{math.MaxInt32, 255, 255}, qparams{math.MinInt32, 0, 0})

// fixedGen draws one kind of input column: an accumulator and bias
// generator with the column's m0 and shift.
type fixedGen struct {
	name  string
	acc   func() int32
	bias  func() int32
	m0    func() int32
	shift func(j int) int32 // of column j
}

func fixedGens(rng *rand.Rand) []fixedGen {
	pick := func(v []int32) func() int32 { return func() int32 { return v[rng.IntN(len(v))] } }
	anyCol := func(f func() int32) func(int) int32 { return func(int) int32 { return f() } }
	full := func() int32 { return int32(rng.Uint32()) }
	zero := func() int32 { return 0 }
	small := func() int32 { return rng.Int32N(2001) - 1000 }
	q31 := func() int32 { return 1<<30 + rng.Int32N(1<<30) } // quant.FixedMultiplier's range
	model := func() int32 { return rng.Int32N(94) - 31 }     // qmodel's [-31, 62]
	mixed := func() int32 {
		if rng.IntN(2) == 0 {
			return pick(accEdges)()
		}
		return full()
	}
	return []fixedGen{
		{"model", func() int32 { return rng.Int32N(1<<22) - 1<<21 }, small, q31, anyCol(func() int32 { return rng.Int32N(16) })},
		{"model-shifts", full, zero, q31, anyCol(model)},
		{"left", func() int32 { return rng.Int32N(1<<12) - 1<<11 }, small, q31, anyCol(func() int32 { return -rng.Int32N(33) })},
		{"edges", pick(accEdges), pick(accEdges), pick(m0Edges), anyCol(pick(shiftEdges))},
		{"mixed", mixed, mixed, func() int32 {
			if rng.IntN(2) == 0 {
				return pick(m0Edges)()
			}
			return full()
		}, anyCol(func() int32 { return rng.Int32N(140) - 32 })},
		{"any", full, full, full, anyCol(func() int32 { return MinShift + rng.Int32N(math.MaxInt32) })},
		// Blocks of 8 columns alternately without and with left shifts:
		// the kernel skips the left shift in blocks that have none.
		{"blocks", full, small, q31, func(j int) int32 {
			if j/8%2 == 0 || rng.IntN(3) != 0 {
				return rng.Int32N(63)
			}
			return -rng.Int32N(33)
		}},
	}
}

// TestRequantFixed covers every width from 1 to 70 (all the n%8 tails,
// several blocks) with a few row counts, each input generator and zero
// point and clamp.
func TestRequantFixed(t *testing.T) {
	t.Logf("AVX2 assembly: %v", hasAVX2)
	rng := rand.New(rand.NewPCG(9, 10))
	gens := fixedGens(rng)
	for n := 1; n <= 70; n++ {
		for _, rows := range []int{0, 1, 2, 5} {
			for _, g := range gens {
				for _, p := range fixedParamSets {
					acc := make([]int32, rows*n)
					bias, m0, shift := make([]int32, n), make([]int32, n), make([]int32, n)
					for i := range acc {
						acc[i] = g.acc()
					}
					for j := range bias {
						bias[j], m0[j], shift[j] = g.bias(), g.m0(), g.shift(j)
					}
					checkFixed(t, fmt.Sprintf("n=%d rows=%d %s %+v", n, rows, g.name, p), acc, bias, m0, shift, p.zp, p.lo, p.hi)
				}
			}
		}
	}
}

// TestRequantFixedEdges crosses every edge accumulator with every edge
// multiplier and shift, in one column each.
func TestRequantFixedEdges(t *testing.T) {
	var bias, m0, shift []int32
	for _, m := range m0Edges {
		for _, s := range shiftEdges {
			bias, m0, shift = append(bias, 0), append(m0, m), append(shift, s)
		}
	}
	acc := make([]int32, 0, len(accEdges)*len(bias))
	for _, a := range accEdges {
		for range bias {
			acc = append(acc, a)
		}
	}
	for _, p := range fixedParamSets {
		checkFixed(t, fmt.Sprintf("edges %+v", p), acc, bias, m0, shift, p.zp, p.lo, p.hi)
	}
}

// TestRequantFixedTies checks the two roundings on exact ties: srdhm by
// m0 = 2^30 halves x with ties toward +Inf, and RoundingDivideByPOT by
// 2^shift with m0 = MaxInt32 (almost 1) rounds ties away from zero.
func TestRequantFixedTies(t *testing.T) {
	acc := make([]int32, 0, 1024)
	for v := int32(-511); len(acc) < cap(acc); v++ {
		acc = append(acc, v)
	}
	for _, n := range []int{1, 8, 9, 31} {
		a := acc[:len(acc)/n*n]
		bias, m0, shift := make([]int32, n), make([]int32, n), make([]int32, n)
		for j := range n {
			bias[j] = int32(j)
			m0[j], shift[j] = 1<<30, int32(j%3)
			if j%2 == 1 {
				m0[j] = math.MaxInt32
			}
		}
		for _, p := range qparamSets {
			checkFixed(t, fmt.Sprintf("ties n=%d %+v", n, p), a, bias, m0, shift, p.zp, p.lo, p.hi)
		}
	}
	// Spot values with zp 10: srdhm(5, 2^30) = 3 (2.5 toward +Inf),
	// srdhm(-5, 2^30) = -2; 2^31-1 ~ 1 then shift 1: 5 -> 3 (2.5 away from
	// zero), -5 -> -3.
	dst := make([]uint8, 4)
	RequantFixed(dst, []int32{5, 5, -5, -5}, []int32{0, 0}, []int32{1 << 30, math.MaxInt32}, []int32{0, 1}, 10, 0, 255)
	if fmt.Sprint(dst) != "[13 13 8 7]" {
		t.Fatalf("ties: got %v want [13 13 8 7]", dst)
	}
}

func TestRequantFixedPanics(t *testing.T) {
	u, i := func(n int) []uint8 { return make([]uint8, n) }, func(n int) []int32 { return make([]int32, n) }
	cases := []struct {
		name string
		f    func()
	}{
		{"m0", func() { RequantFixed(u(4), i(4), i(2), i(3), i(2), 0, 0, 255) }},
		{"shift", func() { RequantFixed(u(4), i(4), i(2), i(2), i(1), 0, 0, 255) }},
		{"dst", func() { RequantFixed(u(3), i(4), i(2), i(2), i(2), 0, 0, 255) }},
		{"rows", func() { RequantFixed(u(5), i(5), i(2), i(2), i(2), 0, 0, 255) }},
		{"n0", func() { RequantFixed(u(1), i(1), nil, nil, nil, 0, 0, 255) }},
		{"minshift", func() { RequantFixed(u(2), i(2), i(2), i(2), []int32{0, MinShift - 1}, 0, 0, 255) }},
	}
	for _, c := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", c.name)
				}
			}()
			c.f()
		}()
	}
	RequantFixed(nil, nil, nil, nil, nil, 0, 0, 255)
	RequantFixed(nil, nil, i(1), i(1), i(1), 0, 0, 255)
}

func FuzzRequantFixed(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint8(3), int32(1<<30+12345), int32(7), int32(128), uint8(128), uint8(255))
	f.Add([]byte{0, 0, 0, 128, 255, 255, 255, 127}, uint8(1), int32(math.MinInt32), int32(-32), int32(0), uint8(0), uint8(255))
	f.Add(make([]byte, 200), uint8(17), int32(math.MaxInt32), int32(62), int32(-7), uint8(5), uint8(250))
	f.Fuzz(func(t *testing.T, data []byte, nb uint8, m int32, s int32, zp int32, lo, hi uint8) {
		n := int(nb%40) + 1
		if lo > hi {
			lo, hi = hi, lo
		}
		vals := make([]int32, len(data)/4)
		for i := range vals {
			vals[i] = int32(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
		}
		rows := len(vals) / n
		acc := vals[:rows*n]
		bias, m0, shift := make([]int32, n), make([]int32, n), make([]int32, n)
		for j := range n {
			bias[j] = int32(j*7919%2001 - 1000)
			m0[j] = m - int32(j*104729)
			shift[j] = max(s+int32(j%5)-2, MinShift)
		}
		checkFixed(t, "fuzz", acc, bias, m0, shift, zp, int32(lo), int32(hi))
	})
}

// TestRequantFloatWidths covers every width from 1 to 70 with a few row
// counts and a mixture of extreme accumulators and multipliers.
func TestRequantFloatWidths(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	ms := []float32{0, 1, -1, 0.5, -0.5, 1e-9, 1e9, -1e9, 3e38, -3e38, 1.5e-45, 0.0039, math.MaxFloat32, -math.MaxFloat32}
	for n := 1; n <= 70; n++ {
		for _, rows := range []int{0, 1, 2, 5} {
			for _, p := range qparamSets {
				acc := make([]int32, rows*n)
				bias, mult := make([]int32, n), make([]float32, n)
				for i := range acc {
					if rng.IntN(2) == 0 {
						acc[i] = accEdges[rng.IntN(len(accEdges))]
					} else {
						acc[i] = rng.Int32N(1<<21) - 1<<20
					}
				}
				for j := range bias {
					bias[j] = rng.Int32N(3) - 1
					if rng.IntN(2) == 0 {
						mult[j] = ms[rng.IntN(len(ms))]
					} else {
						mult[j] = float32(math.Exp(rng.Float64()*20-15)) * float32(rng.IntN(3)-1)
					}
				}
				checkRequant(t, fmt.Sprintf("n=%d rows=%d %+v", n, rows, p), acc, bias, mult, p.zp, p.lo, p.hi)
			}
		}
	}
}

func BenchmarkRequantFixed(b *testing.B) {
	for _, sz := range []struct{ rows, n int }{{576, 16}, {1728, 16}, {2048, 32}, {250, 128}, {250, 10}} {
		rng := rand.New(rand.NewPCG(5, 6))
		acc := make([]int32, sz.rows*sz.n)
		bias, m0, shift := make([]int32, sz.n), make([]int32, sz.n), make([]int32, sz.n)
		for i := range acc {
			acc[i] = rng.Int32N(1<<20) - 1<<19
		}
		for j := range bias {
			bias[j] = rng.Int32N(2001) - 1000
			m0[j], shift[j] = 1<<30+rng.Int32N(1<<30), 8+rng.Int32N(4)
		}
		dst := make([]uint8, len(acc))
		run := func(name string, f func()) {
			b.Run(fmt.Sprintf("rows=%d/n=%d/%s", sz.rows, sz.n, name), func(b *testing.B) {
				b.SetBytes(int64(len(acc) * 4))
				for b.Loop() {
					f()
				}
				b.ReportMetric(float64(len(acc))*float64(b.N)/b.Elapsed().Seconds(), "elem/s")
			})
		}
		run("dispatch", func() { RequantFixed(dst, acc, bias, m0, shift, 128, 0, 255) })
		run("go", func() { requantFixedGo(dst, acc, bias, m0, shift, sz.rows, sz.n, 128, 0, 255) })
	}
}

// refMaxWindows is MaxWindows' definition, one byte at a time.
func refMaxWindows(src []uint8, n, c, k, step int) []uint8 {
	out := make([]uint8, n*c)
	for i := range n {
		for ch := range c {
			for kx := range k {
				out[i*c+ch] = max(out[i*c+ch], src[i*step+kx*c+ch])
			}
		}
	}
	return out
}

func checkMaxWindows(t *testing.T, src []uint8, n, c, k, step int) {
	t.Helper()
	want := refMaxWindows(src, n, c, k, step)
	back := make([]uint8, n*c+40)
	for i := range back {
		back[i] = guard
	}
	dst := back[:n*c]
	// src ends exactly where the last window does, so that a read past it
	// would read another allocation (and the race detector's checks).
	MaxWindows(dst, src[:len(src):len(src)], c, k, step)
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("n=%d c=%d k=%d step=%d: byte %d got %d want %d", n, c, k, step, i, dst[i], want[i])
		}
	}
	for i := n * c; i < len(back); i++ {
		if back[i] != guard {
			t.Fatalf("n=%d c=%d k=%d step=%d: byte %d past the end overwritten", n, c, k, step, i)
		}
	}
}

// TestMaxWindows covers every chunk width from 1 to 70 (the 32-, 16- and
// 8-byte steps and the byte loop) with windows that overlap, touch and
// leave gaps.
func TestMaxWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for c := 1; c <= 70; c++ {
		for _, k := range []int{1, 2, 3, 5} {
			for _, stride := range []int{1, 2, 3} {
				for _, n := range []int{0, 1, 2, 7} {
					step := stride * c
					if stride == 3 {
						step = 2*c + 1 // not a multiple of c
					}
					size := 0
					if n > 0 {
						size = (n-1)*step + k*c
					}
					src := make([]uint8, size)
					for i := range src {
						src[i] = uint8(rng.Uint32())
						if rng.IntN(8) == 0 {
							src[i] = 255
						}
					}
					checkMaxWindows(t, src, n, c, k, step)
				}
			}
		}
	}
	for _, f := range []func(){
		func() { MaxWindows(make([]uint8, 4), make([]uint8, 8), 0, 2, 2) },
		func() { MaxWindows(make([]uint8, 4), make([]uint8, 8), 2, 0, 2) },
		func() { MaxWindows(make([]uint8, 4), make([]uint8, 8), 2, 2, -1) },
		func() { MaxWindows(make([]uint8, 3), make([]uint8, 8), 2, 2, 2) },
		func() { MaxWindows(make([]uint8, 4), make([]uint8, 5), 2, 2, 2) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("MaxWindows: no panic")
				}
			}()
			f()
		}()
	}
	MaxWindows(nil, nil, 3, 2, 6)
}

func FuzzMaxWindows(f *testing.F) {
	f.Add([]byte{1, 2, 3, 250, 0, 9, 7, 7}, uint8(2), uint8(2), uint8(2))
	f.Add(make([]byte, 300), uint8(33), uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, cb, kb, sb uint8) {
		c, k := int(cb%70)+1, int(kb%5)+1
		step := int(sb%3)*c + int(sb/3%3)
		if len(data) < k*c {
			return
		}
		n := (len(data)-k*c)/max(step, 1) + 1
		if step == 0 {
			n = 1
		}
		checkMaxWindows(t, data[:(n-1)*step+k*c], n, c, k, step)
	})
}

// TestMaxWindowsInt32 compares MaxWindowsInt32 with its definition for
// every chunk width from 1 to 40 (the 8-lane blocks and the masked tail),
// windows that overlap, touch and leave gaps, values over the whole int32
// range (MinInt32 and MaxInt32 included) and many ties; the guard values
// past dst must survive.
func TestMaxWindowsInt32(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	const guard32 = int32(-0x5a5a5a5a)
	for c := 1; c <= 40; c++ {
		for _, k := range []int{1, 2, 3, 5} {
			for _, stride := range []int{0, 1, 2, 3} {
				for _, n := range []int{0, 1, 2, 7} {
					step := stride * c
					if stride == 3 {
						step = 2*c + 1
					}
					size := 0
					if n > 0 {
						size = (n-1)*step + k*c
					}
					src := make([]int32, size)
					for i := range src {
						switch rng.IntN(6) {
						case 0:
							src[i] = math.MinInt32
						case 1:
							src[i] = math.MaxInt32
						case 2:
							src[i] = int32(rng.IntN(3)) - 1
						default:
							src[i] = int32(rng.Uint32())
						}
					}
					want := make([]int32, n*c)
					for i := range n {
						for ch := range c {
							m := src[i*step+ch]
							for kx := 1; kx < k; kx++ {
								m = max(m, src[i*step+kx*c+ch])
							}
							want[i*c+ch] = m
						}
					}
					back := make([]int32, n*c+12)
					for i := range back {
						back[i] = guard32
					}
					MaxWindowsInt32(back[:n*c], src[:len(src):len(src)], c, k, step)
					for i := range want {
						if back[i] != want[i] {
							t.Fatalf("n=%d c=%d k=%d step=%d: value %d got %d want %d", n, c, k, step, i, back[i], want[i])
						}
					}
					for i := n * c; i < len(back); i++ {
						if back[i] != guard32 {
							t.Fatalf("n=%d c=%d k=%d step=%d: value %d past the end overwritten", n, c, k, step, i)
						}
					}
				}
			}
		}
	}
	for _, f := range []func(){
		func() { MaxWindowsInt32(make([]int32, 4), make([]int32, 8), 0, 2, 2) },
		func() { MaxWindowsInt32(make([]int32, 4), make([]int32, 8), 2, 0, 2) },
		func() { MaxWindowsInt32(make([]int32, 4), make([]int32, 8), 2, 2, -1) },
		func() { MaxWindowsInt32(make([]int32, 3), make([]int32, 8), 2, 2, 2) },
		func() { MaxWindowsInt32(make([]int32, 4), make([]int32, 5), 2, 2, 2) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("MaxWindowsInt32 did not panic on bad arguments")
				}
			}()
			f()
		}()
	}
}
