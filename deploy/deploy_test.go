package deploy_test

import (
	"errors"
	"reflect"
	"testing"

	"qat/data"
	"qat/deploy"
	"qat/export"
	"qat/infer"
	"qat/layers"
	"qat/model"
	"qat/qmodel"
	"qat/quant"
	"qat/train"
)

var norm = model.Norm{Mean: data.MNISTMean, Std: data.MNISTStd}

// calibrated returns lenet quantized with the default config and
// calibrated on embedded training images, and 200 embedded test images.
func calibrated(t *testing.T) (*layers.Model, *data.Dataset) {
	t.Helper()
	m := newLeNet(t, 1)
	if err := m.Quantize(layers.QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	tr, err := data.LoadEmbedded("train")
	if err != nil {
		t.Fatal(err)
	}
	te, err := data.LoadEmbedded("test")
	if err != nil {
		t.Fatal(err)
	}
	if err := train.Calibrate(m, tr, train.CalibrateConfig{Batches: 4, Batch: 50, Norm: norm}); err != nil {
		t.Fatal(err)
	}
	return m, te.Limit(200)
}

// TestInt8MatchesFakeQuant checks that the int8 runtime Int8 returns
// gives, with float requantization, the fake-quant evaluation's logits
// as codes of the output quantization, sample for sample, and that
// Freeze is deterministic and Int8's model is Freeze's.
func TestInt8MatchesFakeQuant(t *testing.T) {
	m, te := calibrated(t)
	qn := norm
	qm, net, err := deploy.Int8(m, qn, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	again, err := deploy.Freeze(m, qn, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(qm, again) {
		t.Error("Freeze differs from Int8's model, or from one call to the next")
	}
	if !qm.Norm.Equal(qn) || qm.Requant != qmodel.RequantFloat || qm.Name != "lenet" {
		t.Errorf("model %s: norm %+v, requant %s", qm.Name, qm.Norm, qm.Requant)
	}
	ir, err := infer.Evaluate(net, te.Images, te.Labels, infer.EvalConfig{Batch: 70, Threads: 2, KeepCodes: true})
	if err != nil {
		t.Fatal(err)
	}
	fr, err := train.Evaluate(m, te, train.EvalConfig{Batch: 70, Norm: norm, KeepLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	if ir.Accuracy != fr.Accuracy || ir.N != te.N {
		t.Errorf("int8 accuracy %v on %d, fake quant %v: want equal", ir.Accuracy, ir.N, fr.Accuracy)
	}
	q := net.OutputQuant()
	for i, l := range fr.Logits {
		if c, _ := quant.Code(l, 1/q.Scale, q.ZeroPoint, q.QMin, q.QMax); c != int32(ir.Codes[i]) {
			t.Fatalf("output %d: int8 code %d, fake-quant logit %v is code %d", i, ir.Codes[i], l, c)
		}
	}
	fixed, err := deploy.Freeze(m, qn, qmodel.RequantFixed)
	if err != nil {
		t.Fatal(err)
	}
	if fixed.Requant != qmodel.RequantFixed || len(fixed.Ops) != len(qm.Ops) {
		t.Errorf("fixed export: requant %s, %d ops; want fixed, %d", fixed.Requant, len(fixed.Ops), len(qm.Ops))
	}
}

// A float model has no int8 form: Freeze and Int8 say so with
// export.ErrUnsupported.
func TestFloatModelUnsupported(t *testing.T) {
	spec, err := model.Builtin("mlp")
	if err != nil {
		t.Fatal(err)
	}
	m, err := layers.NewModel(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deploy.Freeze(m, model.Norm{}, qmodel.RequantFloat); !errors.Is(err, export.ErrUnsupported) {
		t.Errorf("Freeze of a float model: %v, want ErrUnsupported", err)
	}
	if qm, net, err := deploy.Int8(m, model.Norm{}, qmodel.RequantFloat); !errors.Is(err, export.ErrUnsupported) || qm != nil || net != nil {
		t.Errorf("Int8 of a float model: %v, %v, %v; want nil, nil, ErrUnsupported", qm, net, err)
	}
}
