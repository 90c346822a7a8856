package ptq

import (
	"errors"
	"strings"
	"testing"

	"qat/layers"
	"qat/train"
)

// TestCalibrateRefuses checks Calibrate's errors for settings it cannot
// honour: a float model, CLE on a model without an equalizable pair (an
// error, not a silent no-op), and AdaRound with a learnable weight
// quantizer, whose scale would move after the codes are frozen.
func TestCalibrateRefuses(t *testing.T) {
	ds := randomData(8, 1, 4, 4, 2, 1)
	cfg := train.CalibrateConfig{Batches: 1, Batch: 8}
	noPair := `{"name": "none", "input": [1, 4, 4], "classes": 2, "layers": [
	  {"type": "conv", "name": "c", "out": 2, "kernel": 3, "act": "relu6"},
	  {"type": "flatten"},
	  {"type": "linear", "name": "fc", "out": 2}]}`
	if _, err := Calibrate(mustModel(t, noPair), ds, cfg); err == nil || !strings.Contains(err.Error(), "not quantized") {
		t.Errorf("float model: %v", err)
	}
	m := mustModel(t, noPair)
	if err := m.Quantize(layers.QuantConfig{PTQ: &layers.PTQConfig{CLE: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Calibrate(m, ds, cfg); !errors.Is(err, ErrNoPair) {
		t.Errorf("CLE without a pair: %v, want ErrNoPair", err)
	}
	m = mustModel(t, noPair)
	qc := layers.QuantConfig{PTQ: &layers.PTQConfig{AdaRound: &layers.AdaRoundConfig{Iters: 5}}}
	qc.SetLearnable(layers.LearnLSQ)
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	if _, err := Calibrate(m, ds, cfg); err == nil || !strings.Contains(err.Error(), "c.weight_fake_quant is learnable") {
		t.Errorf("AdaRound with LSQ weights: %v", err)
	}
}

// TestAdaRoundPerTensor runs AdaRound on per-tensor weights (one scale for
// every output channel) end to end: the learned error is below
// round-to-nearest's.
func TestAdaRoundPerTensor(t *testing.T) {
	m := mustModel(t, convBNSpec)
	qc := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 3, PerTensor: true},
		PTQ: &layers.PTQConfig{AdaRound: &layers.AdaRoundConfig{Iters: 200}}}
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	rep, err := Calibrate(m, randomData(16, 2, 7, 7, 3, 2), train.CalibrateConfig{Batches: 2, Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range rep.Layers {
		if !(l.AdaRoundError < l.RoundToNearestError) || l.Codes == 0 {
			t.Errorf("%s: %+v", l.Name, l)
		}
	}
}
