package qvec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"qat/quant"
)

// refRequant is the definition: a loop over quant.RequantizeFloat.
func refRequant(acc, bias []int32, mult []float32, zp, lo, hi int32) []uint8 {
	n := len(bias)
	out := make([]uint8, len(acc))
	for i, a := range acc {
		out[i] = uint8(quant.RequantizeFloat(a+bias[i%n], mult[i%n], zp, lo, hi))
	}
	return out
}

// guard is the value of the bytes past len(dst) in the backing array.
const guard = 0xA5

// checkRequant runs RequantFloat into a slice of a larger backing array and
// compares it with the reference and the guard bytes.
func checkRequant(t *testing.T, name string, acc, bias []int32, mult []float32, zp, lo, hi int32) {
	t.Helper()
	want := refRequant(acc, bias, mult, zp, lo, hi)
	back := make([]uint8, len(acc)+80)
	for i := range back {
		back[i] = guard
	}
	dst := back[:len(acc)]
	RequantFloat(dst, acc, bias, mult, zp, lo, hi)
	n := len(bias)
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("%s: element %d (row %d col %d): acc %d bias %d mult %g zp %d lo %d hi %d: got %d want %d",
				name, i, i/n, i%n, acc[i], bias[i%n], mult[i%n], zp, lo, hi, dst[i], want[i])
		}
	}
	for i := len(acc); i < len(back); i++ {
		if back[i] != guard {
			t.Fatalf("%s: byte %d past len(dst) %d overwritten: %d", name, i, len(acc), back[i])
		}
	}
}

type qparams struct{ zp, lo, hi int32 }

var qparamSets = []qparams{
	{0, 0, 255}, {128, 0, 255}, {128, 128, 255}, // ReLU: lo = zp
	{3, 3, 200}, {255, 0, 255}, {17, 20, 30}, {0, 0, 0}, {255, 255, 255}, {-5, 0, 255}, {300, 0, 255},
}

func TestRequantFloat(t *testing.T) {
	t.Logf("AVX-512 assembly: %v", hasAVX512)
	rng := rand.New(rand.NewPCG(1, 2))
	ns := []int{1, 2, 3, 10, 15, 16, 17, 31, 32, 33, 64, 100, 128}
	rowss := []int{0, 1, 2, 5, 37}
	// acc generators: full int32 range (bias 0 so no overflow), small, and
	// odd values for exact .5 ties under mult 0.5.
	type gen struct {
		name string
		acc  func() int32
		bias func() int32
	}
	gens := []gen{
		{"full", func() int32 { return int32(rng.Uint32()) }, func() int32 { return 0 }},
		{"small", func() int32 { return rng.Int32N(2001) - 1000 }, func() int32 { return rng.Int32N(201) - 100 }},
		{"tiny", func() int32 { return rng.Int32N(21) - 10 }, func() int32 { return rng.Int32N(3) - 1 }},
		{"large", func() int32 { return rng.Int32N(1<<26) - 1<<25 }, func() int32 { return rng.Int32N(1<<20) - 1<<19 }},
	}
	type mgen struct {
		name string
		m    func() float32
	}
	mgens := []mgen{
		{"rand", func() float32 { return float32(math.Exp(rng.Float64()*20 - 15)) }},
		{"half", func() float32 { return 0.5 }},
		{"quarter", func() float32 { return 0.25 }},
		{"1e-9", func() float32 { return 1e-9 }},
		{"1e9", func() float32 { return 1e9 }},
		{"neg", func() float32 { return -float32(math.Exp(rng.Float64()*20 - 15)) }},
		{"mixed", func() float32 {
			return []float32{0, 1, -1, 0.5, -0.5, 1e-9, 1e9, -1e9, 3e38, -3e38, 1.5e-45, 0.0039}[rng.IntN(12)]
		}},
	}
	for _, n := range ns {
		for _, rows := range rowss {
			for _, g := range gens {
				for _, mg := range mgens {
					for _, p := range qparamSets {
						acc := make([]int32, rows*n)
						bias := make([]int32, n)
						mult := make([]float32, n)
						for i := range acc {
							acc[i] = g.acc()
						}
						for j := range bias {
							bias[j] = g.bias()
							mult[j] = mg.m()
						}
						checkRequant(t, fmt.Sprintf("n=%d rows=%d %s %s %+v", n, rows, g.name, mg.name, p), acc, bias, mult, p.zp, p.lo, p.hi)
					}
				}
			}
		}
	}
}

// TestRequantFloatTies checks exact .5 ties round half to even: odd
// acc+bias times 0.5, over every small value.
func TestRequantFloatTies(t *testing.T) {
	for _, n := range []int{1, 16, 17, 33} {
		acc := make([]int32, 0, 1024)
		for v := int32(-511); len(acc) < cap(acc); v++ {
			acc = append(acc, v)
		}
		acc = acc[:len(acc)/n*n]
		bias := make([]int32, n)
		mult := make([]float32, n)
		for j := range mult {
			mult[j] = 0.5
			bias[j] = int32(2*j + 1) // odd: acc+bias alternates parity
		}
		for _, p := range qparamSets {
			checkRequant(t, fmt.Sprintf("ties n=%d %+v", n, p), acc, bias, mult, p.zp, p.lo, p.hi)
		}
	}
	// Spot values: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2.
	dst := make([]uint8, 3)
	RequantFloat(dst, []int32{5, 7, -5}, []int32{0}, []float32{0.5}, 10, 0, 255)
	if dst[0] != 12 || dst[1] != 14 || dst[2] != 8 {
		t.Fatalf("ties: got %v want [12 14 8]", dst)
	}
}

func TestRequantFloatPanics(t *testing.T) {
	cases := []struct {
		name string
		f    func()
	}{
		{"mult", func() {
			RequantFloat(make([]uint8, 4), make([]int32, 4), make([]int32, 2), make([]float32, 3), 0, 0, 255)
		}},
		{"dst", func() {
			RequantFloat(make([]uint8, 3), make([]int32, 4), make([]int32, 2), make([]float32, 2), 0, 0, 255)
		}},
		{"rows", func() {
			RequantFloat(make([]uint8, 5), make([]int32, 5), make([]int32, 2), make([]float32, 2), 0, 0, 255)
		}},
		{"n0", func() { RequantFloat(make([]uint8, 1), make([]int32, 1), nil, nil, 0, 0, 255) }},
		{"max", func() { MaxBytes(make([]uint8, 3), make([]uint8, 3), make([]uint8, 2)) }},
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
	RequantFloat(nil, nil, nil, nil, 0, 0, 255)                 // n = 0, rows = 0: fine
	RequantFloat(nil, nil, []int32{1}, []float32{1}, 0, 0, 255) // rows = 0
	MaxBytes(nil, nil, nil)
}

func refMax(a, b []uint8) []uint8 {
	out := make([]uint8, len(a))
	for i := range a {
		out[i] = max(a[i], b[i])
	}
	return out
}

func TestMaxBytes(t *testing.T) {
	t.Logf("AVX2 assembly: %v", hasAVX2)
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n <= 130; n++ {
		for _, alias := range []string{"none", "a", "b", "ab"} {
			a := make([]uint8, n)
			b := make([]uint8, n)
			for i := range a {
				a[i], b[i] = uint8(rng.Uint32()), uint8(rng.Uint32())
				if rng.IntN(8) == 0 {
					b[i] = a[i]
				}
			}
			if n > 0 {
				a[0], b[n-1] = 255, 0
			}
			if alias == "ab" {
				b = a
			}
			want := refMax(a, b)
			back := make([]uint8, n+40)
			for i := range back {
				back[i] = guard
			}
			dst := back[:n]
			switch alias {
			case "a", "ab":
				copy(back, a)
				a = dst
				if alias == "ab" {
					b = dst
				}
			case "b":
				copy(back, b)
				b = dst
			}
			MaxBytes(dst, a, b)
			for i := range want {
				if dst[i] != want[i] {
					t.Fatalf("n=%d alias=%s: byte %d got %d want %d", n, alias, i, dst[i], want[i])
				}
			}
			for i := n; i < len(back); i++ {
				if back[i] != guard {
					t.Fatalf("n=%d alias=%s: byte %d past the end overwritten", n, alias, i)
				}
			}
		}
	}
}

func FuzzRequantFloat(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint8(3), float32(0.5), int32(128), uint8(128), uint8(255))
	f.Add([]byte{255, 255, 255, 127, 0, 0, 0, 128}, uint8(1), float32(1e-9), int32(0), uint8(0), uint8(255))
	f.Add(make([]byte, 200), uint8(17), float32(1e9), int32(10), uint8(5), uint8(250))
	f.Fuzz(func(t *testing.T, data []byte, nb uint8, m float32, zp int32, lo, hi uint8) {
		n := int(nb%40) + 1
		if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
			return
		}
		zp %= 1024
		if lo > hi {
			lo, hi = hi, lo
		}
		vals := make([]int32, len(data)/4)
		for i := range vals {
			vals[i] = int32(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
		}
		rows := len(vals) / n
		acc := vals[:rows*n]
		bias := make([]int32, n)
		mult := make([]float32, n)
		for j := range bias {
			bias[j] = int32(j*7919%2001 - 1000)
			mult[j] = m * float32(j%5+1) / 3
			if j%3 == 1 {
				mult[j] = -mult[j]
			}
		}
		// Keep acc+bias from overflowing (callers guarantee it).
		for i := range acc {
			acc[i] = min(max(acc[i], math.MinInt32+1000), math.MaxInt32-1000)
		}
		checkRequant(t, "fuzz", acc, bias, mult, zp, int32(lo), int32(hi))
	})
}

func FuzzMaxBytes(f *testing.F) {
	f.Add([]byte{1, 2, 3, 250, 0, 9}, uint8(0))
	f.Add(make([]byte, 100), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, alias uint8) {
		n := len(data) / 2
		a := append([]uint8(nil), data[:n]...)
		b := append([]uint8(nil), data[n:2*n]...)
		want := refMax(a, b)
		dst := make([]uint8, n)
		switch alias % 3 {
		case 1:
			dst = a
		case 2:
			dst = b
		}
		MaxBytes(dst, a, b)
		for i := range want {
			if dst[i] != want[i] {
				t.Fatalf("n=%d alias=%d: byte %d got %d want %d", n, alias%3, i, dst[i], want[i])
			}
		}
	})
}

func BenchmarkRequantFloat(b *testing.B) {
	for _, sz := range []struct{ rows, n int }{{576, 16}, {1728, 16}, {2048, 32}, {250, 128}} {
		rng := rand.New(rand.NewPCG(5, 6))
		acc := make([]int32, sz.rows*sz.n)
		bias := make([]int32, sz.n)
		mult := make([]float32, sz.n)
		for i := range acc {
			acc[i] = rng.Int32N(1<<20) - 1<<19
		}
		for j := range bias {
			bias[j] = rng.Int32N(2001) - 1000
			mult[j] = float32(rng.Float64() * 1e-3)
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
		run("dispatch", func() { RequantFloat(dst, acc, bias, mult, 128, 0, 255) })
		run("go", func() { requantFloatGo(dst, acc, bias, mult, sz.rows, sz.n, 128, 0, 255) })
	}
}

func BenchmarkMaxBytes(b *testing.B) {
	x := make([]uint8, 4096)
	y := make([]uint8, 4096)
	for i := range x {
		x[i], y[i] = uint8(i*7), uint8(i*13)
	}
	b.Run("dispatch", func(b *testing.B) {
		b.SetBytes(int64(len(x)))
		for b.Loop() {
			MaxBytes(x, x, y)
		}
	})
	b.Run("go", func(b *testing.B) {
		b.SetBytes(int64(len(x)))
		for b.Loop() {
			maxBytesGo(x, x, y)
		}
	})
}
