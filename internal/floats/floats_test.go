package floats

import (
	"math"
	"testing"
)

func TestFinite(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	for _, c := range []struct {
		x    float64
		want bool
	}{
		{0, true}, {math.Copysign(0, -1), true}, {1, true}, {-1e300, true},
		{math.MaxFloat64, true}, {math.SmallestNonzeroFloat64, true},
		{inf, false}, {-inf, false}, {nan, false},
	} {
		if got := Finite(c.x); got != c.want {
			t.Errorf("Finite(float64 %v) = %v, want %v", c.x, got, c.want)
		}
	}
	for _, c := range []struct {
		x    float32
		want bool
	}{
		{0, true}, {1, true}, {math.MaxFloat32, true}, {-math.MaxFloat32, true},
		{math.SmallestNonzeroFloat32, true},
		{float32(inf), false}, {float32(-inf), false}, {float32(nan), false},
		// NaN payloads other than the default one
		{math.Float32frombits(0x7f800001), false}, {math.Float32frombits(0xffc00123), false},
	} {
		if got := Finite(c.x); got != c.want {
			t.Errorf("Finite(float32 %v) = %v, want %v", c.x, got, c.want)
		}
	}
	type named float32 // ~float32
	if Finite(named(inf)) || !Finite(named(2)) {
		t.Error("Finite on a named float32 type")
	}
}
