package quant

import (
	"math"
	"math/rand"
	"testing"
)

// extremaRef is the plain scan extrema must agree with bit for bit: the
// first element strictly below (above) everything before it.
func extremaRef(x []float32) (lo, hi float32, bad bool) {
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
		bad = bad || v != v || math.IsInf(float64(v), 0)
	}
	return lo, hi, bad
}

func TestExtremaMatchesScan(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	negZero := float32(math.Copysign(0, -1))
	set := []float32{0, negZero, 1, -1, 0.25, -3, math.Float32frombits(1), math.Float32frombits(0x80000001),
		math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0xffc00001)}
	for trial := 0; trial < 20000; trial++ {
		n := r.Intn(9)
		if trial%100 == 0 {
			n = r.Intn(2000)
		}
		x := make([]float32, n)
		special := r.Intn(4)
		for i := range x {
			switch {
			case special == 0:
				x[i] = float32(r.NormFloat64())
			case special == 1 && r.Intn(20) != 0:
				x[i] = set[r.Intn(10)] // finite only
			default:
				x[i] = set[r.Intn(len(set))]
			}
		}
		lo, hi, err := extrema(x)
		wlo, whi, bad := extremaRef(x)
		if bad != (err != nil) {
			t.Fatalf("%v: error %v, want non-finite %t", x, err, bad)
		}
		if bad {
			continue
		}
		if math.Float32bits(lo) != math.Float32bits(wlo) || math.Float32bits(hi) != math.Float32bits(whi) {
			t.Fatalf("%v: extrema %v %v, want %v %v", x, lo, hi, wlo, whi)
		}
	}
}
