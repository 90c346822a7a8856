package ops

import (
	"math"
	"math/rand"
	"testing"
)

// specialFloats returns n values drawn mostly from a small set, so that
// ties, signed zeros, infinities and NaNs (both signs) are frequent.
func specialFloats(r *rand.Rand, n int) []float32 {
	set := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 2, 0.5, -0.5,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0xffc00000), math.Float32frombits(1), math.Float32frombits(0x80000001)}
	x := make([]float32, n)
	for i := range x {
		if r.Intn(3) == 0 {
			x[i] = float32(r.NormFloat64())
		} else {
			x[i] = set[r.Intn(len(set))]
		}
	}
	return x
}

// The 2×2 stride-2 max pooling kernel picks what maxIndex picks.
func TestMaxPool2x2MatchesMaxIndex(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for _, hw := range [][2]int{{2, 2}, {4, 6}, {5, 7}, {24, 24}, {9, 8}} {
		h, w := hw[0], hw[1]
		oh, ow := (h-2)/2+1, (w-2)/2+1
		for trial := 0; trial < 1000; trial++ {
			x := specialFloats(r, h*w)
			y := make([]float32, oh*ow)
			arg := make([]int32, oh*ow)
			maxPool2x2(y, arg, x, w, oh, ow)
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					want := maxIndex(x, w, 2*i, 2*j, 2, 2)
					if int(arg[i*ow+j]) != want || math.Float32bits(y[i*ow+j]) != math.Float32bits(x[want]) {
						t.Fatalf("%dx%d window (%d,%d): picked %d (%v), want %d (%v)", h, w, i, j, arg[i*ow+j], y[i*ow+j], want, x[want])
					}
				}
			}
		}
	}
}

// BenchmarkIm2col times im2col and col2im of one LeNet sample per conv.
func BenchmarkIm2col(b *testing.B) {
	for _, c := range []struct {
		name string
		g    geom
	}{
		{"conv1", geom{n: 1, c: 1, h: 28, w: 28, o: 16, kh: 5, kw: 5, s: 1, oh: 24, ow: 24}},
		{"conv2", geom{n: 1, c: 16, h: 12, w: 12, o: 32, kh: 5, kw: 5, s: 1, oh: 8, ow: 8}},
		{"resnet20-layer1", geom{n: 1, c: 16, h: 32, w: 32, o: 16, kh: 3, kw: 3, s: 1, p: 1, oh: 32, ow: 32, groups: 1}},
	} {
		x := make([]float32, c.g.inSize())
		col := make([]float32, c.g.ckk()*c.g.ohw())
		pad := make([]float32, c.g.padLen())
		b.Run(c.name+"/im2col", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				im2col(col, x, c.g, pad)
			}
		})
		b.Run(c.name+"/col2im", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				col2im(x, col, c.g, pad)
			}
		})
	}
}

// im2colRef is im2col by its definition, element by element.
func im2colRef(col, x []float32, g geom) {
	for c := 0; c < g.c; c++ {
		for kh := 0; kh < g.kh; kh++ {
			for kw := 0; kw < g.kw; kw++ {
				r := (c*g.kh+kh)*g.kw + kw
				for oh := 0; oh < g.oh; oh++ {
					for ow := 0; ow < g.ow; ow++ {
						ih, iw := oh*g.s+kh-g.p, ow*g.s+kw-g.p
						v := float32(0)
						if ih >= 0 && ih < g.h && iw >= 0 && iw < g.w {
							v = x[(c*g.h+ih)*g.w+iw]
						}
						col[r*g.ohw()+oh*g.ow+ow] = v
					}
				}
			}
		}
	}
}

// im2col and col2im (every fast path: stride 1 without padding at run
// widths below 8, 8 to 32 and above) agree with the definitions; col2im
// adds in the order of col's rows, so it matches the element-by-element
// adjoint bit for bit.
func TestIm2colPaths(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for trial := 0; trial < 300; trial++ {
		g := geom{n: 1, c: 1 + r.Intn(3), kh: 1 + r.Intn(5), kw: 1 + r.Intn(5), s: 1 + r.Intn(2)*r.Intn(3), p: r.Intn(2) * r.Intn(3)}
		if trial%2 == 0 {
			g.s, g.p = 1, 0
		}
		g.h = g.kh + r.Intn(40)
		g.w = g.kw + r.Intn(40)
		g.oh = (g.h+2*g.p-g.kh)/g.s + 1
		g.ow = (g.w+2*g.p-g.kw)/g.s + 1
		x := make([]float32, g.inSize())
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		n := g.ckk() * g.ohw()
		got, want := make([]float32, n+3), make([]float32, n+3)
		for i := range got {
			got[i] = float32(math.NaN()) // stale contents must be overwritten
		}
		got[n], got[n+1], got[n+2] = 7, 8, 9 // and nothing past the matrix
		want[n], want[n+1], want[n+2] = 7, 8, 9
		pad := make([]float32, g.padLen())
		for i := range pad {
			pad[i] = float32(math.NaN()) // stale padding must be overwritten too
		}
		im2col(got[:n], x, g, pad)
		im2colRef(want, x, g)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%+v: im2col element %d = %v, want %v", g, i, got[i], want[i])
			}
		}
		col := want[:n]
		dx, dref := make([]float32, len(x)), make([]float32, len(x))
		col2im(dx, col, g, pad)
		for rr := 0; rr < g.ckk(); rr++ {
			c, kh, kw := rr/(g.kh*g.kw), rr/g.kw%g.kh, rr%g.kw
			for oh := 0; oh < g.oh; oh++ {
				for ow := 0; ow < g.ow; ow++ {
					ih, iw := oh*g.s+kh-g.p, ow*g.s+kw-g.p
					if ih >= 0 && ih < g.h && iw >= 0 && iw < g.w {
						dref[(c*g.h+ih)*g.w+iw] += col[rr*g.ohw()+oh*g.ow+ow]
					}
				}
			}
		}
		for i := range dref {
			if math.Float32bits(dx[i]) != math.Float32bits(dref[i]) {
				t.Fatalf("%+v: col2im element %d = %v, want %v", g, i, dx[i], dref[i])
			}
		}
	}
}
