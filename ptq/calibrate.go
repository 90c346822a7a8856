package ptq

import (
	"fmt"
	"io"
	"strings"

	"qat/data"
	"qat/layers"
	"qat/train"
)

// Report is what Calibrate did beyond calibrating.
type Report struct {
	// CLE is Equalize's report; nil when CLE was off.
	CLE *CLEReport `json:"cle,omitempty"`
	// Layers has one entry per conv or linear layer with a weight
	// quantizer, in graph order, when bias correction or AdaRound ran.
	Layers []LayerReport `json:"layers,omitempty"`
}

// LayerReport is what bias correction and AdaRound did to one layer.
type LayerReport struct {
	Name string `json:"name"`
	// Rows is the number of calibration rows (samples times output
	// pixels) the layer's statistics came from.
	Rows int `json:"rows"`
	// BiasShift is the largest |E[W_q x_q] - E[W x]| over the output
	// channels that bias correction subtracted (0 when it was off).
	BiasShift float64 `json:"bias_shift,omitempty"`
	// AdaRound: the reconstruction error, mean over rows of the squared
	// error summed over output channels, with round-to-nearest codes and
	// with the learned ones, and how many of Codes codes differ.
	RoundToNearestError float64 `json:"round_to_nearest_error,omitempty"`
	AdaRoundError       float64 `json:"adaround_error,omitempty"`
	Flipped             int     `json:"flipped,omitempty"`
	Codes               int     `json:"codes,omitempty"`
	// Skipped says what could not be done to the layer ("" if nothing).
	Skipped string `json:"skipped,omitempty"`
}

// Write prints the report as lines "ptq: ...", nothing when it is empty.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	if c := r.CLE; c != nil {
		fmt.Fprintf(&b, "ptq: cle: %d pairs (%s), %d passes, last max |s-1| %.2g\n", len(c.Pairs), strings.Join(c.Pairs, ", "), c.Passes, c.MaxStep)
		for _, s := range c.Skipped {
			fmt.Fprintf(&b, "ptq: cle: not equalized: %s\n", s)
		}
	}
	for _, l := range r.Layers {
		fmt.Fprintf(&b, "ptq: %s: %d rows", l.Name, l.Rows)
		if l.Codes > 0 {
			fmt.Fprintf(&b, ", adaround error %.4g (round to nearest %.4g), %d of %d codes changed", l.AdaRoundError, l.RoundToNearestError, l.Flipped, l.Codes)
		}
		if l.BiasShift > 0 {
			fmt.Fprintf(&b, ", bias corrected by up to %.4g", l.BiasShift)
		}
		if l.Skipped != "" {
			fmt.Fprintf(&b, ", %s", l.Skipped)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Calibrate is post-training quantization of m, quantized (Quantize) but
// not calibrated, on the calibration batches of ds that cfg chooses (as
// train.Calibrate: cfg.Batches batches of cfg.Batch training samples in
// their first-epoch order with cfg.Seed; 32 of 128 by default), with the
// recovery methods m.Quant.PTQ selects:
//
//  1. CLE (Equalize) on the float weights;
//  2. train.Calibrate: every observer observes, then freezes; learnable
//     quantizers start from their observers (InitLearnable);
//  3. layer by layer in graph order, for each conv or linear layer with a
//     weight quantizer: its input statistics on the calibration batches,
//     from the model with every earlier layer already done (x_q) and from
//     its float copy made after step 1 (x); then AdaRound, then bias
//     correction.
//
// Activation quantizers keep the ranges of step 2. Both qat calibrate and
// the experiment's PTQ runs call it. On error m is left part way.
func Calibrate(m *layers.Model, ds *data.Dataset, cfg train.CalibrateConfig) (Report, error) {
	var rep Report
	if !m.Quantized() {
		return rep, fmt.Errorf("ptq: model %s is not quantized", m.Spec.Name)
	}
	var opt layers.PTQConfig
	if m.Quant.PTQ != nil {
		opt = *m.Quant.PTQ
	}
	if opt.AdaRound != nil {
		for _, q := range m.Quantizers() {
			if q.Role == layers.RoleWeight && q.Spec.Learnable != "" {
				return rep, fmt.Errorf("ptq: adaround freezes the codes of observer-driven weight quantizers; %s is learnable (%s)", q.Name, q.Spec.Learnable)
			}
		}
	}
	if opt.CLE {
		c, err := Equalize(m)
		if err != nil {
			return rep, fmt.Errorf("ptq: %w", err)
		}
		rep.CLE = &c
	}
	var ref *layers.Model
	layerwise := opt.BiasCorrection || opt.AdaRound != nil
	if layerwise {
		var err error
		if ref, err = floatCopy(m); err != nil {
			return rep, fmt.Errorf("ptq: %w", err)
		}
	}
	if err := train.Calibrate(m, ds, cfg); err != nil {
		return rep, err
	}
	if _, err := m.InitLearnable(); err != nil {
		return rep, err
	}
	if !layerwise {
		return rep, nil
	}
	ls, err := recoverLayers(m, ref, ds, cfg, opt)
	rep.Layers = ls
	if err != nil {
		return rep, fmt.Errorf("ptq: %w", err)
	}
	return rep, nil
}

// floatCopy returns a float model with m's params and BatchNorm
// statistics (copies, sharing nothing).
func floatCopy(m *layers.Model) (*layers.Model, error) {
	f, err := layers.NewModel(m.Spec, 0)
	if err != nil {
		return nil, err
	}
	for _, p := range f.Params() {
		src := m.Param(p.Name)
		if src == nil || len(src.Data) != len(p.Data) {
			return nil, fmt.Errorf("model %s: param %s differs from its float copy's", m.Spec.Name, p.Name)
		}
		copy(p.Data, src.Data)
	}
	for _, n := range m.Spec.Nodes {
		if n.BN == "" {
			continue
		}
		bn, fb := m.BatchNorm(n.BN), f.BatchNorm(n.BN)
		copy(fb.RunningMean, bn.RunningMean)
		copy(fb.RunningVar, bn.RunningVar)
		fb.NumBatchesTracked = bn.NumBatchesTracked
	}
	return f, nil
}

// calibrationBatches returns the sample indices of the batches cfg
// chooses from ds, as train.Calibrate reads them.
func calibrationBatches(ds *data.Dataset, cfg train.CalibrateConfig) ([][]int, error) {
	nb, bs := cfg.Batches, cfg.Batch
	if nb == 0 {
		nb = 32
	}
	if bs == 0 {
		bs = 128
	}
	if nb < 0 || bs < 0 {
		return nil, fmt.Errorf("calibrate: %d batches of %d", nb, bs)
	}
	var out [][]int
	for _, idx := range data.NewBatches(ds.N, cfg.Seed, bs, true, false).Epoch(0) {
		if len(out) == nb {
			break
		}
		out = append(out, append([]int(nil), idx...))
	}
	return out, nil
}
