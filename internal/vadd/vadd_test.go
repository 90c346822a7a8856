package vadd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRows checks Rows against one addition per element (the definition)
// for row lengths 1 to 40 (the 16- and 8-lane blocks and their tails),
// strides equal to and above the length, values of every magnitude with
// infinities, NaNs, signed zeros and ties of rounding; the values between
// and after the rows must survive. Each implementation is run on its own
// where the CPU has it.
func TestRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1, 0x1p-24, 16777216, math.MaxFloat32, -math.MaxFloat32, 0x1p-149}
	value := func() float32 {
		if rng.IntN(5) == 0 {
			return special[rng.IntN(len(special))]
		}
		return float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(9)-4)))
	}
	for n := 1; n <= 40; n++ {
		for _, pad := range []int{0, 3} {
			for _, rows := range []int{1, 2, 5} {
				ds, ss := n+pad, n+2*pad
				src := make([]float32, (rows-1)*ss+n)
				dst0 := make([]float32, (rows-1)*ds+n+7)
				for i := range src {
					src[i] = value()
				}
				for i := range dst0 {
					dst0[i] = value()
				}
				want := append([]float32(nil), dst0...)
				for r := range rows {
					for j := range n {
						want[r*ds+j] += src[r*ss+j]
					}
				}
				for _, im := range impls() {
					dst := append([]float32(nil), dst0...)
					im.rows(dst[:(rows-1)*ds+n], ds, src, ss, rows, n)
					for i := range want {
						if math.Float32bits(dst[i]) != math.Float32bits(want[i]) && !(want[i] != want[i] && dst[i] != dst[i]) {
							t.Fatalf("%s n=%d rows=%d strides %d %d: dst[%d] = %g, want %g", im.name, n, rows, ds, ss, i, dst[i], want[i])
						}
					}
				}
			}
		}
	}
}

func TestRowsPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"rows":   func() { Rows(make([]float32, 4), 2, make([]float32, 4), 2, -1, 2) },
		"stride": func() { Rows(make([]float32, 4), 1, make([]float32, 4), 2, 2, 2) },
		"dst":    func() { Rows(make([]float32, 3), 2, make([]float32, 4), 2, 2, 2) },
		"src":    func() { Rows(make([]float32, 4), 2, make([]float32, 3), 2, 2, 2) },
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

type impl struct {
	name string
	rows func(dst []float32, ds int, src []float32, ss, rows, n int)
}
