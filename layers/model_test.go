package layers

import (
	"math"
	"strings"
	"testing"

	"qat/data"
	"qat/model"
	"qat/safetensors"
)

// PyTorch parameter counts of the peer script's models
// (../shared/peers/torch_qat.py): sum(p.numel() for p in m.parameters()).
func TestBuiltinParamCounts(t *testing.T) {
	for name, want := range map[string]int{"mlp": 235146, "lenet": 80298} {
		s, err := model.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewModel(s, 1)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range m.Params() {
			n += len(p.Data)
		}
		if n != want {
			t.Errorf("%s: %d params, PyTorch has %d", name, n, want)
		}
	}
	s, _ := model.Builtin("lenet")
	m, _ := NewModel(s, 1)
	var names []string
	for _, p := range m.Params() {
		names = append(names, p.Name)
	}
	want := "c1.weight c1.bias b1.weight b1.bias c2.weight c2.bias b2.weight b2.bias fc1.weight fc1.bias fc2.weight fc2.bias"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("lenet params %s, want the PyTorch state_dict order %s", got, want)
	}
}

func TestParseQuantConfigErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"weight":{"bits":4}} x`, "data after the JSON value"},
		{`{"weight":{"bits":4,"bits":8}}`, `duplicate field "weight.bits"`},
		{`{"weight":null}`, `"weight" is null`},
		{`{"act":{"observer":"bogus"}}`, `quant config: act: observer: `},
		{`{"layers":{"c1":{"weight":{"observer":"bogus"}}}}`, `quant config: layer c1 weight: observer: `},
		{`{"weight":{"bits":0.5}}`, `cannot unmarshal number 0.5`},
		{`{"weight":{"bits":9}}`, `quant config: weight: `},
		{`{"act":{"Bits":4}}`, `unknown field "act.Bits"`},
	} {
		_, err := ParseQuantConfig([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.json, err, c.want)
		}
	}
}

func TestParseBits(t *testing.T) {
	c, err := ParseBits("w4a8")
	if err != nil || c.Weight.Bits != 4 || c.Act.Bits != 8 || c.String() != "W4A8" {
		t.Errorf("ParseBits(w4a8) = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "W8", "A8W8", "W1A8", "W8A9", "Wx A8"} {
		if _, err := ParseBits(bad); err == nil {
			t.Errorf("ParseBits(%q) accepted", bad)
		}
	}
}

// Mixed precision is a config change: first and last layer 8-bit, the rest
// 4-bit.
func TestMixedPrecisionConfig(t *testing.T) {
	qc, err := ParseQuantConfig([]byte(`{"weight":{"bits":4},"act":{"bits":4},"input":{"bits":8},
		"layers":{"c1":{"weight":{"bits":8},"act":{"bits":8}},"fc2":{"weight":{"bits":8},"act":{"bits":8}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := newLeNet(t)
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"input_fake_quant": 8, "c1.weight_fake_quant": 8, "c1.activation_post_process": 8,
		"c2.weight_fake_quant": 4, "c2.activation_post_process": 4, "fc1.weight_fake_quant": 4,
		"fc1.activation_post_process": 4, "fc2.weight_fake_quant": 8, "fc2.activation_post_process": 8}
	if len(m.Quantizers()) != len(want) {
		t.Fatalf("%d quantizers, want %d", len(m.Quantizers()), len(want))
	}
	for _, q := range m.Quantizers() {
		if got := q.Scheme.NumBits(); got != want[q.Name] {
			t.Errorf("%s: %d bits, want %d", q.Name, got, want[q.Name])
		}
	}
	bad := QuantConfig{Layers: map[string]LayerQuant{"b1": {}}}
	if err := bad.Validate(m.Spec); err == nil || !strings.Contains(err.Error(), `"b1"`) {
		t.Errorf("override of a BN layer: %v", err)
	}
}

func newLeNet(t testing.TB) *Model {
	t.Helper()
	s, err := model.Builtin("lenet")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(s, 7)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fill puts the first n embedded test images and labels in the graph.
func fill(t testing.TB, gr *Graph) []int {
	t.Helper()
	ds, err := data.LoadEmbedded("test")
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, gr.Batch())
	for i := range idx {
		idx[i] = i
	}
	y := make([]int, len(idx))
	ds.Fill(gr.Input(), y, idx, model.Norm{Mean: data.MNISTMean, Std: data.MNISTStd})
	return y
}

// clone copies m through its checkpoint state.
func clone(t testing.TB, m *Model) *Model {
	t.Helper()
	var f safetensors.File
	if err := m.SaveState(&f); err != nil {
		t.Fatal(err)
	}
	c, _, err := LoadState(&f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// With every quantizer off, PyTorch's ConvBn folding computes the same
// function and gradients as conv followed by BN, in training (batch
// statistics) and in eval (running statistics).
func TestFoldingMatchesUnfolded(t *testing.T) {
	float := newLeNet(t)
	// Non-trivial BN state: running stats and affine params away from 0/1.
	for _, n := range []string{"b1", "b2"} {
		bn := float.BatchNorm(n)
		for i := range bn.RunningMean {
			bn.RunningMean[i] = 0.1 * float32(i%5)
			bn.RunningVar[i] = 0.5 + 0.1*float32(i%7)
		}
		g := float.Param(n + ".weight")
		for i := range g.Data {
			g.Data[i] = 0.8 + 0.05*float32(i%6)
		}
	}
	folded := clone(t, float)
	off := QuantSpec{Off: true}
	if err := folded.Quantize(QuantConfig{Weight: off, Act: off, Input: &off}); err != nil {
		t.Fatal(err)
	}
	if !folded.Folded() || len(folded.Quantizers()) != 0 {
		t.Fatalf("folded=%v with %d quantizers", folded.Folded(), len(folded.Quantizers()))
	}
	for _, kind := range []GraphKind{Eval, Train} {
		a, err := float.NewGraph(16, kind)
		if err != nil {
			t.Fatal(err)
		}
		b, err := folded.NewGraph(16, kind)
		if err != nil {
			t.Fatal(err)
		}
		y := fill(t, a)
		fill(t, b)
		if err := a.Run(y); err != nil {
			t.Fatal(err)
		}
		if err := b.Run(y); err != nil {
			t.Fatal(err)
		}
		closeAll(t, kind.String()+" logits", b.Logits(), a.Logits(), 2e-5)
		if kind == Train {
			for _, p := range float.Params() {
				closeAll(t, "grad "+p.Name, folded.Param(p.Name).Grad, p.Grad, 2e-4)
			}
			for _, n := range []string{"b1", "b2"} {
				closeAll(t, n+" running var", folded.BatchNorm(n).RunningVar, float.BatchNorm(n).RunningVar, 1e-5)
			}
		}
	}
}

// closeAll checks |got-want| <= tol*(1+max|want|) elementwise.
func closeAll(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 0.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= tol*(1+scale)) {
			t.Fatalf("%s[%d] = %v, want %v (|diff| %g, tolerance %g)", what, i, got[i], want[i], d, tol*(1+scale))
		}
	}
}

// A quantized model saved mid-training and loaded again computes the same
// logits bit for bit, with observer ranges and learned params restored.
func TestStateRoundTrip(t *testing.T) {
	for _, learn := range []string{"", LearnLSQ, LearnLSQPlus} {
		m := newLeNet(t)
		qc, _ := ParseBits("W4A4")
		if learn == LearnLSQPlus {
			qc.Act.Affine = true
		}
		qc.SetLearnable(learn)
		if err := m.Quantize(qc); err != nil {
			t.Fatalf("%s: %v", learn, err)
		}
		cal, err := m.NewGraph(32, Calibrate)
		if err != nil {
			t.Fatal(err)
		}
		y := fill(t, cal)
		if err := cal.Run(y); err != nil {
			t.Fatal(err)
		}
		if _, err := m.InitLearnable(); err != nil {
			t.Fatal(err)
		}
		tr, err := m.NewGraph(32, Train)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, tr)
		if err := tr.Run(y); err != nil {
			t.Fatal(err)
		}
		c := clone(t, m)
		ga, _ := m.NewGraph(32, Eval)
		gb, err := c.NewGraph(32, Eval)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, ga)
		fill(t, gb)
		if err := ga.Run(y); err != nil {
			t.Fatal(err)
		}
		if err := gb.Run(y); err != nil {
			t.Fatal(err)
		}
		for i, v := range ga.Logits() {
			if gb.Logits()[i] != v {
				t.Fatalf("%q: reloaded logit %d = %v, want %v", learn, i, gb.Logits()[i], v)
			}
		}
		if len(c.Params()) != len(m.Params()) {
			t.Errorf("%q: reloaded model has %d params, want %d", learn, len(c.Params()), len(m.Params()))
		}
	}
}

func TestLoadStateErrors(t *testing.T) {
	m := newLeNet(t)
	if err := m.Quantize(QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	cal, _ := m.NewGraph(8, Calibrate)
	if err := cal.Run(fill(t, cal)); err != nil {
		t.Fatal(err)
	}
	var good safetensors.File
	if err := m.SaveState(&good); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func(f *safetensors.File)
		want   string
	}{
		{"missing", func(f *safetensors.File) { delete(f.Tensors, "c2.weight") }, "missing tensor c2.weight"},
		{"shape", func(f *safetensors.File) {
			f.Tensors["fc1.bias"] = safetensors.FromFloat32([]int{3}, []float32{1, 2, 3})
		}, "fc1.bias has shape [3]"},
		{"nan", func(f *safetensors.File) {
			v, _ := f.Tensors["b1.bias"].Float32()
			v[3] = float32(math.NaN())
			f.Tensors["b1.bias"] = safetensors.FromFloat32([]int{16}, v)
		}, "b1.bias: element 3 is NaN"},
		{"dtype", func(f *safetensors.File) {
			f.Tensors["c1.bias"] = safetensors.FromInt32([]int{16}, make([]int32, 16))
		}, "c1.bias"},
		{"negative var", func(f *safetensors.File) {
			v, _ := f.Tensors["b2.running_var"].Float32()
			v[0] = -1
			f.Tensors["b2.running_var"] = safetensors.FromFloat32([]int{32}, v)
		}, "negative"},
		{"scale", func(f *safetensors.File) {
			f.Tensors["c1.weight_fake_quant.scale"] = safetensors.FromFloat32([]int{16}, make([]float32, 16))
		}, "positive finite scale"},
		{"arch", func(f *safetensors.File) { f.Metadata[MetaArch] = `{"name":"x"}` }, MetaArch},
		{"no arch", func(f *safetensors.File) { delete(f.Metadata, MetaArch) }, "not a qat checkpoint"},
		{"quantizers", func(f *safetensors.File) { f.Metadata[MetaQuantizers] = `[]` }, "lists 0 quantizers"},
	} {
		f := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
		for k, v := range good.Metadata {
			f.Metadata[k] = v
		}
		for k, v := range good.Tensors {
			f.Tensors[k] = v
		}
		c.change(&f)
		_, _, err := LoadState(&f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// A graph built before learnable quantizers start is stale afterwards, and
// evaluating a quantized model that never saw data names the quantizer.
func TestGraphStaleAndNotReady(t *testing.T) {
	m := newLeNet(t)
	qc, _ := ParseBits("W8A8")
	qc.SetLearnable(LearnLSQ)
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	if _, err := m.NewGraph(4, Train); err == nil || !strings.Contains(err.Error(), "calibrate first") {
		t.Errorf("train graph before initialisation: %v", err)
	}
	ev, err := m.NewGraph(4, Eval)
	if err != nil {
		t.Fatal(err)
	}
	y := fill(t, ev)
	if err := ev.Run(y); err == nil || !strings.Contains(err.Error(), "input_fake_quant has no params") {
		t.Errorf("eval before calibration: %v", err)
	}
	cal, _ := m.NewGraph(4, Calibrate)
	fill(t, cal)
	if err := cal.Run(y); err != nil {
		t.Fatal(err)
	}
	if _, err := m.InitLearnable(); err != nil {
		t.Fatal(err)
	}
	if !ev.Stale() {
		t.Fatal("graph not stale after InitLearnable")
	}
	if err := ev.Run(y); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Errorf("stale run: %v", err)
	}
}

// A model from a config file with stride, padding, ReLU6, average pooling,
// a standalone ReLU and a bias-free conv trains in QAT.
func TestConfigFileModel(t *testing.T) {
	s, err := model.Load("../model/testdata/small-cnn.json")
	if err != nil {
		t.Fatal(err)
	}
	shapes, _ := s.Shapes()
	// conv1: (28+2-3)/2+1 = 14; avgpool 2: 7; conv2 pad 1: 7; maxpool 3/2: 3.
	if got := shapes[4]; got[0] != 8 || got[1] != 3 || got[2] != 3 {
		t.Fatalf("maxpool output %v, want [8 3 3]", got)
	}
	m, err := NewModel(s, 3)
	if err != nil {
		t.Fatal(err)
	}
	if m.Param("conv2.bias") != nil || m.Param("bn1.running_var") != nil || m.BatchNorm("bn1") == nil {
		t.Fatal("conv2 has a bias, or BN buffers are params")
	}
	if err := m.Quantize(QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	gr, err := m.NewGraph(8, Train)
	if err != nil {
		t.Fatal(err)
	}
	y := fill(t, gr)
	if err := gr.Run(y); err != nil {
		t.Fatal(err)
	}
	if l := gr.Loss(); math.IsNaN(l) || l <= 0 {
		t.Fatalf("loss %v", l)
	}
	if len(gr.QuantStats()) != 7 {
		t.Errorf("%d quantizer stats, want 7 (input, 3 layers x weight+act)", len(gr.QuantStats()))
	}
	if _, err := model.Load("../model/testdata/missing.json"); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("missing config: %v", err)
	}
}
