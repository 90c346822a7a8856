package layers

import (
	"math"
	"math/rand/v2"
	"testing"

	"qat/model"
	"qat/quant"
)

// TestNodeInput checks Graph.NodeInput on the mlp (flatten, fc1 relu, fc2,
// fc3): a node reading the graph input sees the raw input in a float
// model and the input quantizer's grid values in a quantized one, and fc2
// reads relu(fc1's affine map), computed here in float64 (to float32
// rounding).
func TestNodeInput(t *testing.T) {
	spec, err := model.Builtin("mlp")
	if err != nil {
		t.Fatal(err)
	}
	const batch = 3
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*784)
	for i := range x {
		x[i] = rng.Float32()
	}
	for _, quantized := range []bool{false, true} {
		m, err := NewModel(spec, 4)
		if err != nil {
			t.Fatal(err)
		}
		want0 := x
		if quantized {
			// Only the input is quantized, with params set here.
			off := QuantSpec{Off: true}
			if err := m.Quantize(QuantConfig{Weight: off, Act: off, Input: &QuantSpec{}}); err != nil {
				t.Fatal(err)
			}
			p := quant.ParamsFromRange(quant.Scheme{}, 0, 1)
			if err := m.Quantizer("input_fake_quant").FQ.SetParams(p); err != nil {
				t.Fatal(err)
			}
			want0 = make([]float32, len(x))
			quant.FakeQuantize(want0, x, nil, p)
		}
		gr, err := m.NewGraph(batch, Eval)
		if err != nil {
			t.Fatal(err)
		}
		copy(gr.Input(), x)
		if err := gr.Run(make([]int, batch)); err != nil {
			t.Fatal(err)
		}
		in0, err := gr.NodeInput(0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want0 {
			if in0[i] != want0[i] {
				t.Fatalf("quantized %v: input of node 0 [%d] = %v, want %v", quantized, i, in0[i], want0[i])
			}
		}
		in2, err := gr.NodeInput(2)
		if err != nil {
			t.Fatal(err)
		}
		w, b := m.Param("fc1.weight").Data, m.Param("fc1.bias").Data
		for s := range batch {
			for o := range 256 {
				v := float64(b[o])
				for j := range 784 {
					v += float64(w[o*784+j]) * float64(want0[s*784+j])
				}
				if got := float64(in2[s*256+o]); math.Abs(got-math.Max(v, 0)) > 1e-5 {
					t.Fatalf("quantized %v: input of fc2 [%d, %d] = %v, want %v", quantized, s, o, got, math.Max(v, 0))
				}
			}
		}
	}
	if _, err := (&Graph{model: &Model{Spec: spec}}).NodeInput(4); err == nil {
		t.Error("node 4 of 4: no error")
	}
}
