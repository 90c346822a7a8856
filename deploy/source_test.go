package deploy_test

import (
	"errors"
	"reflect"
	"testing"

	"qat/data"
	"qat/deploy"
	"qat/export"
	"qat/layers"
	"qat/model"
)

// same reports whether a and b are the same memory (both nil, or the same
// first element and length).
func same(a, b []float32) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	return &a[0] == &b[0] && len(a) == len(b)
}

// FloatSource of a float model: every layer with the model's own tensors
// (shared, not copied) and the spec's geometry; onnx's
// TestFloatMatchesEval checks numerically, through onnxruntime, that it
// describes what the eval graph computes.
func TestFloatSourceOfFloatModel(t *testing.T) {
	m := newLeNet(t, 7)
	norm := model.Norm{Mean: 0.1307, Std: 0.3081}
	if _, err := deploy.ExportSource(m, norm); !errors.Is(err, export.ErrUnsupported) {
		t.Fatalf("ExportSource of a float model: %v, want ErrUnsupported", err)
	}
	src, err := deploy.FloatSource(m, norm)
	if err != nil {
		t.Fatal(err)
	}
	if src.Name != "lenet" || src.Input != [3]int{1, 28, 28} || src.Classes != 10 || !src.Norm.Equal(norm) {
		t.Errorf("source header %+v", src)
	}
	if len(src.Layers) != len(m.Spec.Nodes) {
		t.Fatalf("%d layers, want %d", len(src.Layers), len(m.Spec.Nodes))
	}
	// The built-in lenet (Builtin's doc): c1 1->16 k5 + b1 + ReLU, maxpool
	// 2, c2 16->32 k5 + b2 + ReLU, maxpool 2, flatten 512, fc1 512->128 +
	// ReLU, fc2 128->10.
	want := []export.Layer{
		{Node: model.Node{Op: model.OpConv, Name: "c1", Out: 16, Kernel: 5, BN: "b1", Act: model.OpReLU}, In: 1},
		{Node: model.Node{Op: model.OpMaxPool, Kernel: 2}},
		{Node: model.Node{Op: model.OpConv, Name: "c2", Out: 32, Kernel: 5, BN: "b2", Act: model.OpReLU}, In: 16},
		{Node: model.Node{Op: model.OpMaxPool, Kernel: 2}},
		{Node: model.Node{Op: model.OpFlatten}},
		{Node: model.Node{Op: model.OpLinear, Name: "fc1", Out: 128, Act: model.OpReLU}, In: 512},
		{Node: model.Node{Op: model.OpLinear, Name: "fc2", Out: 10}, In: 128},
	}
	bns := map[string]string{"c1": "b1", "c2": "b2"}
	for i, l := range src.Layers {
		w := want[i]
		if !reflect.DeepEqual(l.Node, w.Node) || l.In != w.In {
			t.Errorf("layer %d: %+v, want %+v", i, l, w)
		}
		if l.WeightQuant.Scale != nil || l.ActQuant.Scale != nil {
			t.Errorf("layer %d has quantizer params", i)
		}
		if !w.Weighted() {
			if l.Weight != nil || l.Bias != nil || l.BN != nil {
				t.Errorf("layer %d (%s) has tensors", i, l.Op)
			}
			continue
		}
		if !same(l.Weight, m.Param(w.Name+".weight").Data) || !same(l.Bias, m.Param(w.Name+".bias").Data) {
			t.Errorf("layer %s: weight or bias is not the model's", w.Name)
		}
		bn := bns[w.Name]
		if bn == "" {
			if l.BN != nil {
				t.Errorf("layer %s has a BatchNorm", w.Name)
			}
			continue
		}
		st := m.BatchNorm(bn)
		if l.BN == nil || !same(l.BN.Gamma, m.Param(bn+".weight").Data) || !same(l.BN.Beta, m.Param(bn+".bias").Data) ||
			!same(l.BN.Mean, st.RunningMean) || !same(l.BN.Var, st.RunningVar) || l.BN.Eps != 1e-5 {
			t.Errorf("layer %s: BatchNorm %+v is not %s's", w.Name, l.BN, bn)
		}
	}
	if src.InputQuant.Scale != nil {
		t.Error("the source has an input quantizer")
	}
}

// FloatSource of a quantized, calibrated model describes the tensors
// ExportSource does (the float weights before folding, the bias, the BN
// state), without the quantizers.
func TestFloatSourceOfQuantizedModel(t *testing.T) {
	m := newLeNet(t, 7)
	if err := m.Quantize(layers.QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	cal, err := m.NewGraph(8, layers.Calibrate)
	if err != nil {
		t.Fatal(err)
	}
	if err := cal.Run(fillFirst(t, cal)); err != nil {
		t.Fatal(err)
	}
	norm := model.Norm{Mean: 0.1307, Std: 0.3081}
	ex, err := deploy.ExportSource(m, norm)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := deploy.FloatSource(m, norm)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range ex.Layers {
		f := fs.Layers[i]
		if !reflect.DeepEqual(f.Node, e.Node) {
			t.Errorf("layer %d: float %+v, export %+v", i, f, e)
		}
		if !e.Weighted() {
			continue
		}
		if f.In != e.In ||
			!same(f.Weight, e.Weight) || !same(f.Bias, e.Bias) || (f.BN == nil) != (e.BN == nil) {
			t.Errorf("layer %d: float %+v, export %+v", i, f, e)
		}
		if e.BN != nil && (!same(f.BN.Gamma, e.BN.Gamma) || !same(f.BN.Mean, e.BN.Mean) || !same(f.BN.Var, e.BN.Var) || f.BN.Eps != e.BN.Eps) {
			t.Errorf("layer %d: BatchNorm %+v, export's %+v", i, f.BN, e.BN)
		}
		if f.WeightQuant.Scale != nil || f.ActQuant.Scale != nil {
			t.Errorf("layer %d has quantizer params", i)
		}
	}
}

// newLeNet returns the built-in lenet with seed's initial weights.
func newLeNet(t testing.TB, seed uint64) *layers.Model {
	t.Helper()
	s, err := model.Builtin("lenet")
	if err != nil {
		t.Fatal(err)
	}
	m, err := layers.NewModel(s, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fillFirst puts the first embedded test images and labels in the graph.
func fillFirst(t testing.TB, gr *layers.Graph) []int {
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
	ds.Fill(gr.Input(), y, idx, norm)
	return y
}
