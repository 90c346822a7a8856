package layers

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"qat/internal/graphval"
	"qat/model"
	"qat/quant"
)

// calibratedLeNet returns a LeNet quantized with qc (folded BN), calibrated
// on random inputs after a few training-mode runs have moved its BN
// statistics, and the capture batch.
func calibratedLeNet(t *testing.T, qc QuantConfig) (*Model, []float32) {
	t.Helper()
	s, err := model.Builtin("lenet")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(s, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	const batch = 8
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(x []float32) {
		for i := range x {
			x[i] = rng.Float32()*3 - 0.5
		}
	}
	labels := make([]int, batch)
	cal, err := m.NewGraph(batch, Calibrate)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		fill(cal.Input())
		if err := cal.Run(labels); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.InitLearnable(); err != nil {
		t.Fatal(err)
	}
	m.FreezeObservers(true)
	tr, err := m.NewGraph(batch, Train)
	if err != nil {
		t.Fatal(err)
	}
	fill(tr.Input())
	if err := tr.Run(labels); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 3*28*28)
	fill(x)
	return m, x
}

// The captured inputs are those of the float-simulation eval graph, bit
// for bit, and capturing changes no quantizer or BN state.
func TestCaptureQuantInputs(t *testing.T) {
	for _, c := range []struct {
		name string
		qc   QuantConfig
	}{
		{"W8A8 observers", QuantConfig{}},
		{"W4A4 lsq", QuantConfig{Weight: QuantSpec{Bits: 4, Learnable: LearnLSQ}, Act: QuantSpec{Bits: 4, Learnable: LearnLSQ}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, x := calibratedLeNet(t, c.qc)
			before := map[string]quant.Params{}
			for _, q := range m.Quantizers() {
				p, _ := q.Params()
				before[q.Name] = p.Clone()
			}
			bnMean := slices.Clone(m.BatchNorm("b1").RunningMean)

			got, err := m.CaptureQuantInputs(x)
			if err != nil {
				t.Fatal(err)
			}
			qs := m.Quantizers()
			if len(got) != len(qs) {
				t.Fatalf("%d captures for %d quantizers", len(got), len(qs))
			}
			for i, q := range qs {
				g := got[i]
				if g.Name != q.Name || g.Role != q.Role || g.Layer != q.Layer {
					t.Errorf("capture %d is %s/%s/%s, want quantizer %s/%s/%s", i, g.Name, g.Role, g.Layer, q.Name, q.Role, q.Layer)
				}
				p, _ := q.Params()
				if !slices.Equal(g.Params.Scale, p.Scale) || !slices.Equal(g.Params.ZeroPoint, p.ZeroPoint) || g.Params.QMin != p.QMin {
					t.Errorf("%s: captured params %+v, quantizer has %+v", q.Name, g.Params, p)
				}
				if b := before[q.Name]; !slices.Equal(b.Scale, p.Scale) || !slices.Equal(b.ZeroPoint, p.ZeroPoint) {
					t.Errorf("%s: params changed by the capture: %v -> %v", q.Name, b.Scale, p.Scale)
				}
				n := 1
				for _, d := range g.Shape {
					n *= d
				}
				if n != len(g.Values) {
					t.Errorf("%s: shape %v for %d values", q.Name, g.Shape, len(g.Values))
				}
			}
			if !slices.Equal(got[0].Values, x) || !slices.Equal(got[0].Shape, []int{3, 1, 28, 28}) {
				t.Errorf("input quantizer saw %v values of shape %v, not the batch", len(got[0].Values), got[0].Shape)
			}
			for _, g := range got {
				// fc1 has no BN: its weight quantizer sees the weight itself.
				if g.Name == "fc1.weight_fake_quant" && !slices.Equal(g.Values, m.Param("fc1.weight").Data) {
					t.Error("fc1 weight quantizer input is not fc1.weight")
				}
				// An activation quantizer's input is off its grid, not its output.
				if g.Role == RoleAct {
					fq := make([]float32, len(g.Values))
					quant.FakeQuantize(fq, g.Values, g.Shape, g.Params)
					if slices.Equal(fq, g.Values) {
						t.Errorf("%s: captured values are already on the grid", g.Name)
					}
				}
			}
			if !slices.Equal(bnMean, m.BatchNorm("b1").RunningMean) {
				t.Error("capture changed BN running statistics")
			}

			// The float simulation's eval graph taps the same tensors.
			gr, err := m.NewGraph(3, Eval)
			if err != nil {
				t.Fatal(err)
			}
			copy(gr.Input(), x)
			if err := gr.Run([]int{0, 0, 0}); err != nil {
				t.Fatal(err)
			}
			if len(gr.qin) != len(got) {
				t.Fatalf("eval graph taps %d quantizers, capture %d", len(gr.qin), len(got))
			}
			for i, tp := range gr.qin {
				v, _, err := graphval.Float32s(tp.node.Value(), tp.q.Name)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(v, got[i].Values) {
					t.Errorf("%s: captured input differs from the eval graph's", tp.q.Name)
				}
			}
		})
	}
}

func TestCaptureQuantInputsErrors(t *testing.T) {
	s, _ := model.Builtin("lenet")
	float, err := NewModel(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 28*28)
	if _, err := float.CaptureQuantInputs(x); err == nil || !strings.Contains(err.Error(), "not quantized") {
		t.Errorf("float model: error %v", err)
	}
	uncal, _ := NewModel(s, 1)
	if err := uncal.Quantize(QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := uncal.CaptureQuantInputs(x); err == nil || !strings.Contains(err.Error(), "no params yet") {
		t.Errorf("uncalibrated model: error %v", err)
	}
	m, _ := calibratedLeNet(t, QuantConfig{})
	for _, n := range []int{0, 28*28 + 1} {
		if _, err := m.CaptureQuantInputs(make([]float32, n)); err == nil || !strings.Contains(err.Error(), "whole number") {
			t.Errorf("%d values: error %v", n, err)
		}
	}
}
