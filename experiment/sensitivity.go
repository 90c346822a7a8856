package experiment

import (
	"fmt"
	"sort"

	"qat/data"
	"qat/layers"
	"qat/train"
)

// SensitivityConfig configures Sensitivity. The zero value quantizes
// each layer's weights and output to 4 bits, calibrated with min/max
// observers over 32 batches.
type SensitivityConfig struct {
	// Bits is W<w>A<a>; "" means W4A4.
	Bits string
	// Observer is the output observer; "" means minmax.
	Observer string
	// CalibrationBatches is 0 for 32.
	CalibrationBatches int
}

// LayerSensitivity is the test accuracy with only one layer quantized.
type LayerSensitivity struct {
	Layer    string  `json:"layer"`
	Accuracy float64 `json:"accuracy"`
	// Drop is the float accuracy minus Accuracy, in percentage points.
	Drop float64 `json:"drop_pp"`
}

// Sensitivity quantizes one conv or linear layer of the float checkpoint
// at a time (its weights and its output, post-training, the input and
// every other layer left float), evaluates each on test, and returns the
// float accuracy and the layers sorted by accuracy drop, largest first.
func Sensitivity(floatPath string, trainSet, test *data.Dataset, c SensitivityConfig) (float64, []LayerSensitivity, error) {
	if c.Bits == "" {
		c.Bits = "W4A4"
	}
	if c.Observer == "" {
		c.Observer = "minmax"
	}
	if c.CalibrationBatches == 0 {
		c.CalibrationBatches = 32
	}
	if c.CalibrationBatches < 0 {
		return 0, nil, fmt.Errorf("sensitivity: calibration batches %d is negative", c.CalibrationBatches)
	}
	bits, err := layers.ParseBits(c.Bits)
	if err != nil {
		return 0, nil, fmt.Errorf("sensitivity: %w", err)
	}
	ck, err := train.LoadCheckpoint(floatPath)
	if err != nil {
		return 0, nil, err
	}
	if ck.Model.Quantized() {
		return 0, nil, fmt.Errorf("sensitivity: %s is quantized; give its float checkpoint", floatPath)
	}
	base, err := train.Evaluate(ck.Model, test, train.EvalConfig{Norm: ck.Norm})
	if err != nil {
		return 0, nil, err
	}
	var out []LayerSensitivity
	for _, l := range ck.Model.Spec.Nodes {
		if !l.Weighted() {
			continue
		}
		fresh, err := train.LoadCheckpoint(floatPath)
		if err != nil {
			return 0, nil, err
		}
		w, a := bits.Weight, bits.Act
		a.Observer = c.Observer
		qc := layers.QuantConfig{Weight: layers.QuantSpec{Off: true}, Act: layers.QuantSpec{Off: true},
			Layers: map[string]layers.LayerQuant{l.Name: {Weight: &w, Act: &a}}}
		m := fresh.Model
		if err := m.Quantize(qc); err != nil {
			return 0, nil, fmt.Errorf("sensitivity: layer %s: %w", l.Name, err)
		}
		if err := train.Calibrate(m, trainSet, train.CalibrateConfig{Batches: c.CalibrationBatches, Norm: fresh.Norm}); err != nil {
			return 0, nil, fmt.Errorf("sensitivity: layer %s: %w", l.Name, err)
		}
		ev, err := train.Evaluate(m, test, train.EvalConfig{Norm: fresh.Norm})
		if err != nil {
			return 0, nil, fmt.Errorf("sensitivity: layer %s: %w", l.Name, err)
		}
		out = append(out, LayerSensitivity{Layer: l.Name, Accuracy: ev.Accuracy, Drop: 100 * (base.Accuracy - ev.Accuracy)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Drop > out[j].Drop })
	return base.Accuracy, out, nil
}
