package quant_test

import (
	"math"
	"testing"

	"qat/internal/golden"
	"qat/quant"
)

// TestGolden checks the forward arithmetic of every conformance vector
// (PyTorch 1.13, see internal/golden/testdata) through the slice functions:
// fake quantization outputs and codes exactly, observer scales within 1 ulp
// and zero points exactly. Gradients are checked by package ste's
// TestGolden, and the graph ops by package fakequant's.
func TestGolden(t *testing.T) {
	for _, set := range golden.Sets(t) {
		for _, c := range set.Cases {
			t.Run(c.ID(), func(t *testing.T) {
				switch c.Op {
				case "fake_quant_per_tensor", "fake_quant_per_channel":
					checkForward(t, c, c.Params())
				case "learnable_fake_quant_per_tensor", "learnable_fake_quant_per_channel":
					checkForward(t, c, c.LearnedParams())
				case "observer_minmax", "observer_per_channel_minmax", "observer_moving_average_minmax":
					checkObserver(t, c)
				default:
					t.Errorf("unknown op %q", c.Op)
				}
			})
		}
	}
}

func checkForward(t *testing.T, c *golden.Case, p quant.Params) {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, len(c.X))
	quant.FakeQuantize(y, c.X, c.Shape, p)
	equalFloats(t, "y", y, c.Y)
	if c.Q != nil {
		q := make([]int32, len(c.X))
		quant.Quantize(q, c.X, c.Shape, p)
		equalInts(t, "q", q, c.Q)
		back := make([]float32, len(q))
		quant.Dequantize(back, q, c.Shape, p)
		equalFloats(t, "dequantized q", back, c.Y)
	}
}

func checkObserver(t *testing.T, c *golden.Case) {
	t.Helper()
	s := c.Scheme(t)
	var obs quant.Observer = quant.NewMinMax(s)
	if c.Op == "observer_moving_average_minmax" {
		obs = quant.NewMovingAverageMinMax(s, *c.AveragingConstant)
	}
	for _, b := range c.Batches {
		if err := obs.Observe(b, c.Shape); err != nil {
			t.Fatal(err)
		}
	}
	p, err := obs.Params()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Scale) != len(c.Scale) {
		t.Fatalf("%d scales, want %d", len(p.Scale), len(c.Scale))
	}
	for i := range c.Scale {
		if d := golden.ULPDiff(p.Scale[i], c.Scale[i]); d > 1 {
			t.Errorf("scale[%d] = %.9g, want %.9g (%d ulp)", i, p.Scale[i], c.Scale[i], d)
		}
	}
	equalInts(t, "zero point", p.ZeroPoint, c.ZeroPoints())
	if c.Y != nil || c.Q != nil {
		last := c.Batches[len(c.Batches)-1]
		c2 := *c
		c2.X = last
		checkForward(t, &c2, p)
	}
}

func equalFloats(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		// Bitwise, except that -0 equals +0 and NaN equals NaN.
		if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
			if bad++; bad <= 5 {
				t.Errorf("%s[%d] = %.9g, want %.9g", what, i, got[i], want[i])
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(got))
	}
}

func equalInts(t *testing.T, what string, got, want []int32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s[%d] = %d, want %d", what, i, got[i], want[i])
		}
	}
}
