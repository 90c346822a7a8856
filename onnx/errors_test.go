package onnx

import (
	"strings"
	"testing"

	"qat/deploy"
	"qat/export"
	"qat/model"
)

func TestFromInt8Errors(t *testing.T) {
	if _, err := FromInt8(nil); err == nil || !strings.HasPrefix(err.Error(), "onnx: ") {
		t.Errorf("FromInt8(nil): %v", err)
	}
	m := readModel(t, "../qmodel/testdata/small.qmodel")
	m.Classes = 4 // the last op writes 3
	_, err := FromInt8(m)
	if err == nil || !strings.HasPrefix(err.Error(), "onnx: int8 model small: ") || !strings.Contains(err.Error(), "want [4] (classes)") {
		t.Errorf("FromInt8 of a model with the wrong class count: %v", err)
	}
}

func TestFromFloatErrors(t *testing.T) {
	m := floatModel(t, mixedSpec, 1)
	good, err := deploy.FloatSource(m, model.Norm{Mean: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromFloat(good); err != nil {
		t.Fatal(err)
	}
	// Each case breaks a copy of the mixed model's source (layers: 0 conv
	// c1 with BN, 1 avgpool, 2 relu, 3 conv c2, 4 maxpool, 5 flatten,
	// 6 linear fc, 7 relu6).
	for _, c := range []struct {
		name   string
		change func(s *export.Source)
		want   string
	}{
		{"input", func(s *export.Source) { s.Input[1] = 0 }, "input shape [3 0 12]"},
		{"classes", func(s *export.Source) { s.Classes = 6 }, "want [6] logits"},
		{"norm", func(s *export.Source) { s.Norm.Std = -1 }, "normalisation"},
		{"no layers", func(s *export.Source) { s.Layers = nil }, "no nodes"},
		{"type", func(s *export.Source) { s.Layers[2].Op = "gelu" }, `node 2 (gelu): unknown layer type "gelu"`},
		{"act", func(s *export.Source) { s.Layers[0].Act = "tanh" }, `node 0 (conv c1): unknown activation "tanh"`},
		{"in", func(s *export.Source) { s.Layers[3].In = 7 }, "node 3 (conv c2): input [8 3 3], but in is 7"},
		{"weight", func(s *export.Source) { s.Layers[3].Weight = s.Layers[3].Weight[1:] }, "node 3 (conv c2): weight has 127 elements, want 128"},
		{"bias", func(s *export.Source) { s.Layers[6].Bias = s.Layers[6].Bias[:2] }, "node 6 (linear fc): bias has 2 elements, want 5"},
		{"bn", func(s *export.Source) { s.Layers[0].BN = &export.BN{Eps: 1e-5} }, "BatchNorm has 0 channels, want 8"},
		{"eps", func(s *export.Source) { bn := *s.Layers[0].BN; bn.Eps = 0; s.Layers[0].BN = &bn }, "BatchNorm eps 0"},
		{"kernel", func(s *export.Source) { s.Layers[4].Kernel = 3 }, "node 4 (maxpool): kernel 3 larger than the input [4 2 2] padded to 2x2"},
		{"stride", func(s *export.Source) { s.Layers[1].Stride = -1 }, "node 1 (avgpool): stride -1 is negative"},
		{"linear input", func(s *export.Source) { s.Layers[5].Op = model.OpReLU }, "node 6 (linear fc): input [4 1 1] is not a vector"},
	} {
		s := good
		s.Layers = append([]export.Layer(nil), good.Layers...)
		c.change(&s)
		_, err := FromFloat(s)
		if err == nil || !strings.HasPrefix(err.Error(), "onnx: float model mixed: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// define makes every tensor name unique, and a name used before it is
// defined is an error of the export.
func TestGraphNames(t *testing.T) {
	b := newGraph("g")
	if got := []string{b.define("a"), b.define("a"), b.define("a"), b.define("a_2")}; got[0] != "a" || got[1] != "a_2" || got[2] != "a_3" || got[3] != "a_2_2" {
		t.Errorf("define gave %v", got)
	}
	b.node("Relu", "y", []string{"x"})
	if _, err := b.marshal("", nil); err == nil || !strings.Contains(err.Error(), `tensor "x" is used before it is defined`) {
		t.Errorf("marshal: %v", err)
	}
}
