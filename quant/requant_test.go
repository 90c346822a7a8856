package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Expected values of the fixed-point path come from gemmlowp's reference
// definitions (fixedpoint.h), worked by hand; the float path's from the
// definition in RequantizeFloat's doc.
func TestRequantizeFloat(t *testing.T) {
	for _, c := range []struct {
		acc              int32
		m                float32
		zp, lo, hi, want int32
	}{
		{0, 0.5, 10, 0, 255, 10},
		{5, 0.5, 0, 0, 255, 2},     // 2.5 -> 2 (half to even)
		{7, 0.5, 0, 0, 255, 4},     // 3.5 -> 4
		{-5, 0.5, 100, 0, 255, 98}, // -2.5 -> -2
		{-3, 0.5, 100, 0, 255, 98}, // -1.5 -> -2
		{1000, 1, 0, 0, 255, 255},
		{-1000, 1, 3, 0, 255, 0},
		{-10, 1, 3, 3, 255, 3}, // fused ReLU: lo = zp
		{math.MaxInt32, 1e-9, 0, 0, 255, 2},
		{1 << 24, 1.0 / (1 << 20), 0, 0, 255, 16},
		{(1 << 24) + 1, 1, -128, -128, 127, 127},
	} {
		if got := RequantizeFloat(c.acc, c.m, c.zp, c.lo, c.hi); got != c.want {
			t.Errorf("RequantizeFloat(%d, %g, %d, %d, %d) = %d, want %d", c.acc, c.m, c.zp, c.lo, c.hi, got, c.want)
		}
	}
}

func TestFixedMultiplier(t *testing.T) {
	for _, c := range []struct {
		m         float64
		m0, shift int32
	}{
		{0.5, 1 << 30, 0},
		{0.25, 1 << 30, 1},
		{1, 1 << 30, -1},
		{0.75, 3 << 29, 0},
		{1 - 1e-12, 1 << 30, -1}, // rounds up to 2^31: renormalised
	} {
		m0, shift, err := FixedMultiplier(c.m)
		if err != nil || m0 != c.m0 || shift != c.shift {
			t.Errorf("FixedMultiplier(%g) = %d, %d, %v; want %d, %d", c.m, m0, shift, err, c.m0, c.shift)
		}
	}
	for _, m := range []float64{0, -1, math.NaN(), math.Inf(1), 1e-30, 1e20} {
		if _, _, err := FixedMultiplier(m); err == nil {
			t.Errorf("FixedMultiplier(%g): no error", m)
		}
	}
}

func TestRequantizeFixedRounding(t *testing.T) {
	m0, shift, _ := FixedMultiplier(0.5)
	for _, c := range []struct{ acc, want int32 }{
		// Ties go toward +Inf in SaturatingRoundingDoublingHighMul.
		{5, 3}, {-5, -2}, {7, 4}, {-7, -3}, {4, 2}, {1, 1}, {-1, 0}, {-3, -1}, {0, 0},
	} {
		if got := RequantizeFixed(c.acc, m0, shift, 0, -1000, 1000); got != c.want {
			t.Errorf("RequantizeFixed(%d, m=0.5) = %d, want %d", c.acc, got, c.want)
		}
	}
	// Ties away from zero in RoundingDivideByPOT: m = 0.25 is m0 = 2^30
	// with a right shift of 1 after a tie-free high multiply.
	m0, shift, _ = FixedMultiplier(0.25)
	for _, c := range []struct{ acc, want int32 }{{6, 2}, {-6, -2}, {2, 1}, {-2, -1}, {10, 3}, {-10, -3}} {
		if got := RequantizeFixed(c.acc, m0, shift, 0, -1000, 1000); got != c.want {
			t.Errorf("RequantizeFixed(%d, m=0.25) = %d, want %d", c.acc, got, c.want)
		}
	}
	// m = 4 is m0 = 2^30 (0.5) with a left shift of 3: acc << 3 saturates
	// at MaxInt32, then halves.
	m0, shift, _ = FixedMultiplier(4)
	if got := RequantizeFixed(math.MaxInt32/2, m0, shift, 0, math.MinInt32, math.MaxInt32); got != 1<<30 {
		t.Errorf("saturating left shift: got %d", got)
	}
	if got := srdhm(math.MinInt32, math.MinInt32); got != math.MaxInt32 {
		t.Errorf("srdhm(min, min) = %d", got)
	}
}

// TestRequantizeFixedWithinOne checks the bound the int8 runtime promises:
// for the same multiplier, fixed-point requantization is within one code
// of the float path.
func TestRequantizeFixedWithinOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		m := float32(math.Ldexp(0.5+rng.Float64()/2, -rng.IntN(20)))
		acc := int32(rng.Int64N(1<<24) - 1<<23)
		if i%3 == 0 {
			acc = int32(rng.IntN(4096) - 2048)
		}
		m0, shift, err := FixedMultiplier(float64(m))
		if err != nil {
			t.Fatal(err)
		}
		f := RequantizeFloat(acc, m, 0, -1<<30, 1<<30)
		x := RequantizeFixed(acc, m0, shift, 0, -1<<30, 1<<30)
		if d := f - x; d < -1 || d > 1 {
			t.Fatalf("acc %d m %g: float %d fixed %d", acc, m, f, x)
		}
	}
}
