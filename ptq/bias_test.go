package ptq

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"qat/data"
	"qat/layers"
	"qat/model"
	"qat/quant"
	"qat/train"
)

// randomData returns n random images of shape c x h x w with labels
// below classes.
func randomData(n, c, h, w, classes int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	ds := &data.Dataset{Name: "random", N: n, C: c, H: h, W: w, Classes: classes,
		Images: make([]uint8, n*c*h*w), Labels: make([]uint8, n)}
	for i := range ds.Images {
		ds.Images[i] = uint8(rng.IntN(256))
	}
	for i := range ds.Labels {
		ds.Labels[i] = uint8(rng.IntN(classes))
	}
	return ds
}

func params(t *testing.T, m *layers.Model, name string) quant.Params {
	t.Helper()
	q := m.Quantizer(name)
	if q == nil {
		t.Fatalf("no quantizer %s", name)
	}
	p, ok := q.Params()
	if !ok {
		t.Fatalf("quantizer %s has no params", name)
	}
	return p
}

func fq(x []float32, shape []int, p quant.Params) []float32 {
	y := make([]float32, len(x))
	quant.FakeQuantize(y, x, shape, p)
	return y
}

// affine returns w x + b for w [out, in] and each of the rows of x, in
// float64, with a ReLU after it when relu.
func affine(w, b, x []float32, out int, relu bool) []float32 {
	in := len(w) / out
	y := make([]float32, len(x)/in*out)
	for r := range len(x) / in {
		for o := range out {
			s := float64(b[o])
			for j := range in {
				s += float64(w[o*in+j]) * float64(x[r*in+j])
			}
			if relu {
				s = math.Max(s, 0)
			}
			y[r*out+o] = float32(s)
		}
	}
	return y
}

// meanDiff returns mean over rows of a - b per column of out columns.
func meanDiff(a, b []float32, out int) []float64 {
	d := make([]float64, out)
	rows := len(a) / out
	for i := range a {
		d[i%out] += (float64(a[i]) - float64(b[i])) / float64(rows)
	}
	return d
}

// TestBiasCorrectionLinear computes the expected corrections of a
// two-layer MLP directly: for l1, mean(Wq x_q) - mean(W x) with x_q the
// input quantizer's grid values of the 16 samples and Wq the 3-bit fake
// quantized weights; for l2 the same on l1's quantized, corrected output
// (relu, then its 8-bit quantizer) and the float model's l1 output. Each
// bias must have moved by minus that, and nothing else changed.
func TestBiasCorrectionLinear(t *testing.T) {
	m := mustModel(t, `{"name": "mlp2", "input": [1, 2, 2], "classes": 2, "layers": [
	  {"type": "flatten"},
	  {"type": "linear", "name": "l1", "out": 3, "act": "relu"},
	  {"type": "linear", "name": "l2", "out": 2}]}`)
	ds := randomData(16, 1, 2, 2, 2, 5)
	w1, b1 := append([]float32(nil), m.Param("l1.weight").Data...), append([]float32(nil), m.Param("l1.bias").Data...)
	w2, b2 := append([]float32(nil), m.Param("l2.weight").Data...), append([]float32(nil), m.Param("l2.bias").Data...)
	qc := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 3}, Act: layers.QuantSpec{Observer: quant.KindMinMax},
		PTQ: &layers.PTQConfig{BiasCorrection: true}}
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	rep, err := Calibrate(m, ds, train.CalibrateConfig{Batches: 2, Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Layers) != 2 || rep.Layers[0].Rows != 16 || rep.CLE != nil {
		t.Fatalf("report %+v: want two layers of 16 rows, no CLE", rep)
	}
	x := make([]float32, 16*4)
	for i, p := range ds.Images {
		x[i] = float32(p) / 255
	}
	xq := fq(x, nil, params(t, m, "input_fake_quant"))
	w1q := fq(w1, []int{3, 4}, params(t, m, "l1.weight_fake_quant"))
	zero3 := make([]float32, 3)
	want1 := meanDiff(affine(w1q, zero3, xq, 3, false), affine(w1, zero3, x, 3, false), 3)
	got1 := m.Param("l1.bias").Data
	for o := range 3 {
		if d := float64(b1[o]) - want1[o]; math.Abs(float64(got1[o])-d) > 1e-6 {
			t.Errorf("l1 bias %d = %v, want %v - %v = %v", o, got1[o], b1[o], want1[o], d)
		}
	}
	h := fq(affine(w1q, got1, xq, 3, true), nil, params(t, m, "l1.activation_post_process"))
	hf := affine(w1, b1, x, 3, true)
	w2q := fq(w2, []int{2, 3}, params(t, m, "l2.weight_fake_quant"))
	zero2 := make([]float32, 2)
	want2 := meanDiff(affine(w2q, zero2, h, 2, false), affine(w2, zero2, hf, 2, false), 2)
	got2 := m.Param("l2.bias").Data
	for o := range 2 {
		if d := float64(b2[o]) - want2[o]; math.Abs(float64(got2[o])-d) > 1e-5 {
			t.Errorf("l2 bias %d = %v, want %v - %v = %v", o, got2[o], b2[o], want2[o], d)
		}
	}
	if math.Abs(want1[0])+math.Abs(want2[0]) < 1e-3 {
		t.Errorf("corrections %v, %v are tiny: the test does not exercise bias correction", want1, want2)
	}
	if !slices.Equal(m.Param("l1.weight").Data, w1) || !slices.Equal(m.Param("l2.weight").Data, w2) {
		t.Error("bias correction changed weights")
	}
}

// convBNSpec is a conv+BN layer with a quantized weight and no output
// quantizer, so that its pre-activation output can be read at the flatten
// after it, then a 3-bit head.
const convBNSpec = `{"name": "convbn", "input": [2, 7, 7], "classes": 3, "layers": [
  {"type": "conv", "name": "c", "out": 4, "kernel": 3, "stride": 2, "padding": 1, "groups": 2, "bn": "bn"},
  {"type": "flatten"},
  {"type": "linear", "name": "fc", "out": 3}]}`

// TestBiasCorrectionConv checks bias correction of a grouped, strided,
// padded conv through each place it writes: a folded BN's beta, an
// unfolded BN's running mean and a plain bias (the model without BN).
// After correction the mean over the calibration samples and output
// pixels of the quantized model's conv output minus the float model's,
// read at the flatten, is 0 per channel (to float32 rounding), where it
// was not before. A conv with neither bias nor BN is left alone and the
// report says so.
func TestBiasCorrectionConv(t *testing.T) {
	ds := randomData(24, 2, 7, 7, 3, 9)
	cfg := train.CalibrateConfig{Batches: 3, Batch: 8}
	for _, tc := range []struct {
		name, spec string
		noFold     bool
	}{
		{"folded BN", convBNSpec, false},
		{"unfolded BN", convBNSpec, true},
		{"bias", strings.Replace(convBNSpec, `, "bn": "bn"`, "", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustModel(t, tc.spec)
			scramble(m, rand.New(rand.NewPCG(7, 7)))
			ref, err := floatCopy(m)
			if err != nil {
				t.Fatal(err)
			}
			off := &layers.QuantSpec{Off: true}
			qc := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 3}, Act: layers.QuantSpec{Observer: quant.KindMinMax},
				Layers: map[string]layers.LayerQuant{"c": {Act: off}}, NoFoldBN: tc.noFold}
			before := convError(t, m, ref, qc, ds, cfg)
			qc.PTQ = &layers.PTQConfig{BiasCorrection: true}
			after := convError(t, m, ref, qc, ds, cfg)
			var worst, was float64
			for o := range after {
				worst, was = math.Max(worst, math.Abs(after[o])), math.Max(was, math.Abs(before[o]))
			}
			if worst > 1e-5 || was < 1e-3 {
				t.Errorf("mean output error per channel %v before, %v after: want large, then 0", before, after)
			}
		})
	}
	m := mustModel(t, strings.Replace(convBNSpec, `"bn": "bn"`, `"no_bias": true`, 1))
	qc := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 3}, PTQ: &layers.PTQConfig{BiasCorrection: true}}
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	rep, err := Calibrate(m, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Layers[0].Skipped; !strings.Contains(s, "no bias or BatchNorm") {
		t.Errorf("conv without bias: skipped %q", s)
	}
}

// convError quantizes a float copy of m with qc, calibrates it on the
// batches cfg chooses (ptq.Calibrate) and returns the mean of its conv
// output minus ref's per output channel over those batches.
func convError(t *testing.T, m, ref *layers.Model, qc layers.QuantConfig, ds *data.Dataset, cfg train.CalibrateConfig) []float64 {
	t.Helper()
	q, err := floatCopy(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	if _, err := Calibrate(q, ds, cfg); err != nil {
		t.Fatal(err)
	}
	batches, err := calibrationBatches(ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rq := &runner{m: q, graphs: map[int]*layers.Graph{}}
	rf := &runner{m: ref, graphs: map[int]*layers.Graph{}}
	sum := make([]float64, 4)
	n := 0
	for _, idx := range batches {
		var outs [2][]float32
		for k, r := range []*runner{rq, rf} {
			gr, err := r.run(ds, idx, model.Norm{})
			if err != nil {
				t.Fatal(err)
			}
			if outs[k], err = gr.NodeInput(1); err != nil {
				t.Fatal(err)
			}
		}
		// [batch, 4, 4, 4]: channel (i/16)%4.
		for i := range outs[0] {
			sum[(i/16)%4] += float64(outs[0][i]) - float64(outs[1][i])
		}
		n += len(idx) * 16
	}
	for o := range sum {
		sum[o] /= float64(n)
	}
	return sum
}
