package export

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"qat/model"
	"qat/qmodel"
	"qat/quant"
)

// floatLinear is linearLayer without its quantizers, as a float model's
// source (deploy.FloatSource) describes it, and a zero row added.
func floatLinear() Layer {
	return Layer{Node: model.Node{Op: model.OpLinear, Name: "fc", Out: 3, Act: model.OpReLU}, In: 3,
		Weight: []float32{0.5, -1, 0.25, 2, 0, -2, 0, 0, 0}, Bias: []float32{0.3, -0.1, 7}}
}

// A float model's linear layer freezes as a dynamic_linear with the
// weights quantized per channel, symmetric, [-127, 127] (hand-computed:
// scale max|w|/127; 0.5*127 = 63.5 -> 64 half to even, -127, 31.75 ->
// 32; 127, 0, -127; a zero row gets quant.Eps, codes 0), its float bias
// and activation, and the model reads floats.
func TestFreezeDynamic(t *testing.T) {
	src := Source{Name: "m", Input: [3]int{1, 1, 3}, Classes: 3,
		Layers: []Layer{{Node: model.Node{Op: model.OpFlatten}}, floatLinear()}}
	m, err := FreezeDynamic(src, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	op := m.Ops[1]
	if !m.FloatInput || m.InputQuant != (qmodel.Quant{}) || m.Ops[0].Output != (qmodel.Quant{}) || op.Type != qmodel.OpDynamicLinear {
		t.Fatalf("model %+v", m)
	}
	if want := []int8{64, -127, 32, 127, 0, -127, 0, 0, 0}; !slices.Equal(op.Weight, want) {
		t.Errorf("weights %v, want %v", op.Weight, want)
	}
	if want := []float32{float32(1) / 127, float32(2) / 127, quant.Eps}; !slices.Equal(op.WeightScale, want) {
		t.Errorf("weight scales %v, want %v", op.WeightScale, want)
	}
	if !slices.Equal(op.FloatBias, []float32{0.3, -0.1, 7}) || op.Act != model.OpReLU || op.In != 3 || op.Out != 3 {
		t.Errorf("op %+v", op)
	}
	if m.FormatVersion() != qmodel.FormatV4 {
		t.Errorf("format %s", m.FormatVersion())
	}

	// With an input quantizer, a linear reading codes: the model input is
	// codes, the flatten keeps their quantization.
	src.InputQuant = quant.ParamsFromRange(quant.Uint8Affine, -0.5, 2.5)
	if m, err = FreezeDynamic(src, qmodel.RequantFixed); err != nil {
		t.Fatal(err)
	}
	if m.FloatInput || m.Ops[0].Output != m.InputQuant || m.Ops[1].Type != qmodel.OpDynamicLinear {
		t.Errorf("quantized input: %+v", m)
	}
}

func TestFreezeDynamicErrors(t *testing.T) {
	conv := Layer{Node: model.Node{Op: model.OpConv, Name: "c", Out: 1, Kernel: 1}, In: 1, Weight: []float32{1}}
	pool := Layer{Node: model.Node{Op: model.OpMaxPool, Kernel: 1}}
	flat := Layer{Node: model.Node{Op: model.OpFlatten}}
	nan := floatLinear()
	nan.Weight[4] = float32(math.NaN())
	for _, c := range []struct {
		name   string
		layers []Layer
		want   string
	}{
		{"no linear layer", []Layer{conv, pool, flat}, "model m has no linear layer to quantize dynamically"},
		{"conv of a float model", []Layer{conv, flat, floatLinear()}, "layer 0 (c): cannot export: a conv without quantizers"},
		{"maxpool of floats", []Layer{pool, flat, floatLinear()}, "layer 0 (maxpool0): cannot export: a maxpool reading float values"},
		{"NaN weight", []Layer{flat, nan}, "layer 1 (fc): weight[4] = NaN is not finite"},
	} {
		src := Source{Name: "m", Input: [3]int{1, 1, 3}, Classes: 3, Layers: c.layers}
		_, err := FreezeDynamic(src, qmodel.RequantFloat)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		if err != nil && c.name != "NaN weight" && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v does not wrap ErrUnsupported", c.name, err)
		}
	}
}
