package gradcheck

import (
	"math"
	"strings"
	"testing"
)

func TestPartials(t *testing.T) {
	// loss = x0^2 * y0 + 3*x1: exact gradients 2*x0*y0, 3, x0^2.
	x, y := []float64{1.5, -2}, []float64{0.25}
	loss := func() float64 { return x[0]*x[0]*y[0] + 3*x[1] }
	g := Partials(loss, 1e-3, x, y)
	want := [][]float64{{2 * 1.5 * 0.25, 3}, {1.5 * 1.5}}
	for i := range want {
		for j := range want[i] {
			if err := Close(g[i][j], want[i][j], 1e-9); err != nil {
				t.Errorf("d/dp[%d][%d]: %v", i, j, err)
			}
		}
	}
	if x[0] != 1.5 || x[1] != -2 || y[0] != 0.25 {
		t.Errorf("inputs not restored: %v %v", x, y)
	}
	if d := Central(math.Sin, 0, 1e-4); math.Abs(d-1) > 1e-8 {
		t.Errorf("Central(sin, 0) = %v, want 1", d)
	}
}

func TestTolerances(t *testing.T) {
	if err := Close(1.00001, 1, 1e-4); err != nil {
		t.Error(err)
	}
	if err := Close(200.1, 200, 1e-4); err == nil || !strings.Contains(err.Error(), "200.1, want 200") {
		t.Errorf("relative miss: %v", err)
	}
	if err := Close(math.NaN(), 0, 1); err == nil {
		t.Error("NaN is close")
	}
	want := []float64{100, 0.5, math.Inf(1), math.NaN()}
	if err := Normwise([]float32{100, 0.55, float32(math.Inf(1)), float32(math.NaN())}, want, 1e-3); err != nil {
		t.Errorf("within the normwise bound: %v", err)
	}
	if err := Normwise([]float32{100, 0.7, float32(math.Inf(1)), 0}, want, 1e-3); err == nil || !strings.Contains(err.Error(), "element 1") {
		t.Errorf("outside the bound: %v", err)
	}
	if err := Normwise([]float32{100, 0.5, 1, 0}, want, 1); err == nil || !strings.Contains(err.Error(), "element 2") {
		t.Errorf("Inf not matched: %v", err)
	}
	if err := Normwise([]float32{1}, want, 1); err == nil {
		t.Error("lengths differ: no error")
	}
}
