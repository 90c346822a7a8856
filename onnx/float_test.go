package onnx

import (
	"math/rand/v2"
	"testing"

	"qat/deploy"
	"qat/layers"
	"qat/model"
	"qat/onnx/onnxtest"
)

// floatModel returns a model of spec s with seeded params and BatchNorm
// state away from its initial 0/1, so that the normalisation matters.
func floatModel(t *testing.T, s model.Graph, seed uint64) *layers.Model {
	t.Helper()
	m, err := layers.NewModel(s, seed)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range s.Nodes {
		if l.BN == "" {
			continue
		}
		bn, g, b := m.BatchNorm(l.BN), m.Param(l.BN+".weight"), m.Param(l.BN+".bias")
		for i := range bn.RunningMean {
			bn.RunningMean[i] = 0.1*float32(i%5) - 0.2
			bn.RunningVar[i] = 0.5 + 0.1*float32(i%7)
			g.Data[i] = 0.8 + 0.05*float32(i%6)
			b.Data[i] = 0.1*float32(i%3) - 0.1
		}
	}
	return m
}

// evalLogits runs m's eval graph on pixels (NCHW, whole samples)
// normalised by norm and returns its logits.
func evalLogits(t *testing.T, m *layers.Model, norm model.Norm, pixels []uint8) []float32 {
	t.Helper()
	in := m.Spec.Input
	n := len(pixels) / (in[0] * in[1] * in[2])
	g, err := m.NewGraph(n, layers.Eval)
	if err != nil {
		t.Fatal(err)
	}
	hw := in[1] * in[2]
	for i, p := range pixels {
		g.Input()[i] = norm.Of(i / hw % in[0]).Apply(p)
	}
	if err := g.Run(make([]int, n)); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), g.Logits()...)
}

// mixedSpec has what the built-in models lack: several input channels,
// padding, a strided conv, ReLU6, average pooling, standalone activations,
// a conv without bias and a pool with an explicit stride.
var mixedSpec = model.Graph{Name: "mixed", Input: []int{3, 12, 12}, Classes: 5, Nodes: []model.Node{
	{Op: model.OpConv, Name: "c1", Out: 8, Kernel: 3, Padding: 1, Stride: 2, BN: "b1", Act: model.OpReLU6}, // [8, 6, 6]
	{Op: model.OpAvgPool, Kernel: 2}, // [8, 3, 3]
	{Op: model.OpReLU},               //
	{Op: model.OpConv, Name: "c2", Out: 4, Kernel: 2, NoBias: true}, // [4, 2, 2]
	{Op: model.OpMaxPool, Kernel: 2, Stride: 1},                     // [4, 1, 1]
	{Op: model.OpFlatten},
	{Op: model.OpLinear, Name: "fc", Out: 5},
	{Op: model.OpReLU6},
}}

// TestFloatMatchesEval: the float export of a model's FloatSource, run in
// onnxruntime, gives the logits of the model's own float evaluation up to
// float32 rounding (the two sum in different orders and onnxruntime
// folds BatchNorm into the conv), for float models and for a folded
// quantized model with its quantizers off, whose eval graph computes the
// float function through PyTorch's ConvBn form: chains, and graphs with
// grouped and depthwise convs, padded max pools, adds, a concat and global
// average pools (the small DAG, resnet20, mobilenet_v2, with per-channel
// normalisation).
func TestFloatMatchesEval(t *testing.T) {
	ort := onnxtest.Require(t)
	mlp, _ := model.Builtin("mlp")
	lenet, _ := model.Builtin("lenet")
	resnet20, _ := model.Builtin("resnet20")
	mobilenet, _ := model.Builtin("mobilenet_v2")
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		spec   model.Graph
		norm   model.Norm
		folded bool
		n      int // samples
	}{
		{mlp, model.Norm{Mean: 0.1307, Std: 0.3081}, false, 100},
		{lenet, model.Norm{Mean: 0.1307, Std: 0.3081}, false, 100},
		{lenet, model.Norm{Mean: 0.1307, Std: 0.3081}, true, 100},
		{mixedSpec, model.Norm{Mean: 0.5}, false, 100},
		{mixedSpec, model.Norm{Mean: 0.5}, true, 100},
		{dagSpec(), cifarNorm, false, 100},
		{dagSpec(), cifarNorm, true, 100},
		{resnet20, cifarNorm, true, 16},
		{mobilenet, cifarNorm, false, 16},
	} {
		name := c.spec.Name
		if c.folded {
			name += "-folded"
		}
		t.Run(name, func(t *testing.T) {
			m := floatModel(t, c.spec, 9)
			if c.folded {
				off := layers.QuantSpec{Off: true}
				if err := m.Quantize(layers.QuantConfig{Weight: off, Act: off, Input: &off}); err != nil {
					t.Fatal(err)
				}
			}
			src, err := deploy.FloatSource(m, c.norm)
			if err != nil {
				t.Fatal(err)
			}
			b, err := FromFloat(src)
			if err != nil {
				t.Fatal(err)
			}
			onnxtest.Check(t, b)
			in := c.spec.Input
			pixels := randomPixels(rng, c.n, in[0]*in[1]*in[2])
			got := ort.Run(t, b, onnxtest.Pixels(pixels), [4]int{c.n, in[0], in[1], in[2]})
			maxRel, agree := onnxtest.CloseLogits(got, evalLogits(t, m, c.norm, pixels), c.spec.Classes)
			t.Logf("%s: max |diff| / max |logit| %.3g, argmax agreement %v", name, maxRel, agree)
			if maxRel > 1e-4 || agree != 1 {
				t.Errorf("onnxruntime's logits are %.3g (relative) from the eval's, argmax agreement %v", maxRel, agree)
			}
		})
	}
}
