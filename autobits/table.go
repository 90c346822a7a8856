package autobits

import (
	"fmt"

	"qat/data"
	"qat/experiment"
	"qat/train"
)

// Table is the measured sensitivity of a model's conv and linear layers:
// the accuracy drop, in percentage points from the float model, when
// only that layer is quantized (experiment.Sensitivity).
type Table struct {
	// FloatAccuracy is the float model's accuracy on the test images of
	// the measurement.
	FloatAccuracy float64 `json:"float_accuracy"`
	// Layers are the conv and linear layers in graph order.
	Layers []string `json:"layers"`
	// Weight[layer][b] is the drop with that layer at W<b>A8, Act[layer][b]
	// at W8A<b>, for every b of Widths.
	Weight map[string]map[int]float64 `json:"weight_drop_pp"`
	Act    map[string]map[int]float64 `json:"act_drop_pp"`
	// Floor is the least cost the search gives a move, in percentage
	// points: one test image of the measurement (100/n).
	Floor float64 `json:"floor_pp"`
}

// Predict returns the predicted accuracy drop of a in percentage points:
// the sum over its layers of Weight[layer][w] + Act[layer][a] -
// Act[layer][8] (the weight drop includes that of an 8-bit output).
func (t Table) Predict(a Assignment) float64 {
	var d float64
	for _, l := range a {
		d += t.Weight[l.Layer][l.Weight] + t.Act[l.Layer][l.Act] - t.Act[l.Layer][8]
	}
	return d
}

// check reports whether t has a drop for every layer and width, and a
// positive floor.
func (t Table) check() error {
	if len(t.Layers) == 0 {
		return fmt.Errorf("autobits: the sensitivity table has no layers")
	}
	if !(t.Floor > 0) {
		return fmt.Errorf("autobits: sensitivity floor %v: want a positive number of percentage points", t.Floor)
	}
	for _, l := range t.Layers {
		for _, b := range Widths {
			if _, ok := t.Weight[l][b]; !ok {
				return fmt.Errorf("autobits: the sensitivity table lacks layer %s at W%dA8", l, b)
			}
			if _, ok := t.Act[l][b]; !ok {
				return fmt.Errorf("autobits: the sensitivity table lacks layer %s at W8A%d", l, b)
			}
		}
	}
	return nil
}

// MeasureTable measures the sensitivity table of the float checkpoint at
// floatPath: experiment.Sensitivity at W<b>A8 and W8A<b> for every b of
// Widths, min/max observers over batches training batches (0: 32),
// evaluated on test.
func MeasureTable(floatPath string, trainSet, test *data.Dataset, batches int) (Table, error) {
	if test.N == 0 {
		return Table{}, fmt.Errorf("autobits: no test images to measure sensitivity on")
	}
	ck, err := train.LoadCheckpoint(floatPath)
	if err != nil {
		return Table{}, fmt.Errorf("autobits: %w", err)
	}
	t := Table{Layers: WeightedLayers(ck.Model.Spec), Weight: map[string]map[int]float64{}, Act: map[string]map[int]float64{},
		Floor: 100 / float64(test.N)}
	for _, l := range t.Layers {
		t.Weight[l], t.Act[l] = map[int]float64{}, map[int]float64{}
	}
	// drops measures every layer's drop at W<w>A<a>.
	drops := func(w, a int) (map[string]float64, error) {
		acc, res, err := experiment.Sensitivity(floatPath, trainSet, test,
			experiment.SensitivityConfig{Bits: fmt.Sprintf("W%dA%d", w, a), Observer: "minmax", CalibrationBatches: batches})
		if err != nil {
			return nil, fmt.Errorf("autobits: %w", err)
		}
		t.FloatAccuracy = acc
		d := map[string]float64{}
		for _, r := range res {
			d[r.Layer] = r.Drop
		}
		return d, nil
	}
	for _, b := range Widths {
		d, err := drops(b, 8)
		if err != nil {
			return Table{}, err
		}
		for _, l := range t.Layers {
			t.Weight[l][b] = d[l]
		}
		if b == 8 {
			// W8A8 is the 8-bit entry of both.
			for _, l := range t.Layers {
				t.Act[l][8] = d[l]
			}
			continue
		}
		if d, err = drops(8, b); err != nil {
			return Table{}, err
		}
		for _, l := range t.Layers {
			t.Act[l][b] = d[l]
		}
	}
	return t, t.check()
}
