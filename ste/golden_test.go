package ste_test

import (
	"testing"

	"qat/internal/golden"
	"qat/ste"
)

// TestGolden checks the gradients of every conformance vector that has them
// (PyTorch 1.13, see internal/golden/testdata): grad_x exactly, grad_scale
// and grad_zero_point within relative 1e-5 of the bound of their sums
// (golden.CheckSums, fakequant's rule too). Observer cases carry no
// gradients; their arithmetic is checked by package quant's TestGolden.
func TestGolden(t *testing.T) {
	for _, set := range golden.Sets(t) {
		for _, c := range set.Cases {
			t.Run(c.ID(), func(t *testing.T) {
				switch c.Op {
				case "fake_quant_per_tensor", "fake_quant_per_channel":
					if c.GradY == nil {
						return // a forward-only case
					}
					gx := make([]float32, len(c.X))
					ste.Clipped(gx, c.GradY, c.X, c.Shape, c.Params())
					exact(t, "grad_x", gx, c.GradX)
				case "learnable_fake_quant_per_tensor", "learnable_fake_quant_per_channel":
					p := c.LearnedParams()
					gx := make([]float32, len(c.X))
					gs := make([]float32, len(p.Scale))
					gz := make([]float32, len(p.Scale))
					ste.LSQPlus(gx, gs, gz, c.GradY, c.X, c.Shape, p, c.GradFactor)
					exact(t, "grad_x", gx, c.GradX)
					bs, bz := c.SumBounds(p)
					golden.CheckSums(t, "grad_scale", gs, c.GradScale, bs)
					golden.CheckSums(t, "grad_zero_point", gz, c.GradZeroPoint, bz)
					// LSQ is LSQPlus without the zero-point output.
					gs2 := make([]float32, len(p.Scale))
					ste.LSQ(gx, gs2, c.GradY, c.X, c.Shape, p, c.GradFactor)
					exact(t, "LSQ grad_scale", gs2, gs)
				case "observer_minmax", "observer_per_channel_minmax", "observer_moving_average_minmax":
				default:
					t.Errorf("unknown op %q", c.Op)
				}
			})
		}
	}
}

func exact(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s[%d] = %.9g, want %.9g", what, i, got[i], want[i])
		}
	}
}
