package experiment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"qat/internal/strictjson"
	"qat/layers"
	"qat/quant"
	"qat/train"
)

// Methods of a Run.
const (
	MethodPTQ = "ptq" // calibrate the float model, no training
	MethodQAT = "qat" // fine-tune the float model with fake quantization
)

// Config is an experiment file: one float model per dataset, then runs
// that quantize it. Zero values mean the defaults documented per field.
type Config struct {
	// Name names the results directory; "" means the file's base name.
	Name string `json:"name"`
	// Title and Question head the report: what is compared, and what the
	// experiment asks.
	Title    string `json:"title"`
	Question string `json:"question"`
	// Model is mlp, lenet (default) or a model config file.
	Model string `json:"model"`
	// Data lists the datasets (default ["mnist"]): every run runs on each.
	Data []string `json:"data"`
	// TrainLimit keeps the first TrainLimit training images (0: all);
	// TestLimit the first TestLimit test images (0: all).
	TrainLimit int `json:"train_limit"`
	TestLimit  int `json:"test_limit"`
	// Float is the float training: epochs (default 2), lr (1e-3), batch
	// (128), seed (0).
	Float Stage `json:"float"`
	// Runs are the quantized variants, in report order.
	Runs []Run `json:"runs"`
	// XLabel names Run.X in the plot of accuracy against X (default
	// "bits"); runs without X are drawn as bars instead.
	XLabel string `json:"x_label"`
}

// Stage configures a training stage.
type Stage struct {
	Epochs int     `json:"epochs"`
	LR     float64 `json:"lr"`
	Batch  int     `json:"batch"`
	Seed   uint64  `json:"seed"`
}

// Run is one quantized variant of the float model.
type Run struct {
	// Name is unique within the experiment.
	Name string `json:"name"`
	// Method is "ptq" or "qat".
	Method string `json:"method"`
	// Bits is W<w>A<a> (default W8A8); Quant, when set, replaces it with
	// a whole quant config (per-layer bits, schemes, observers, and for
	// PTQ runs the post-training recovery methods of its "ptq" object).
	Bits  string              `json:"bits"`
	Quant *layers.QuantConfig `json:"quant"`
	// Observer sets the activation and input observer, over the quant
	// config's. Without either, PTQ calibrates with minmax and QAT uses
	// the role's default (moving-average min/max).
	Observer string `json:"observer"`
	// Learnable is "", "lsq", "lsq+" or "pact" (QAT only; pact learns the
	// clipping level of ReLU outputs, weights stay observer-driven).
	Learnable string `json:"learnable"`
	// NoFoldBN keeps BatchNorm apart from the conv (PyTorch ConvBn off).
	NoFoldBN bool `json:"no_fold_bn"`
	// QAT: Epochs (default 1), LR (default 1e-4), Batch (128); the
	// observers and BatchNorm statistics freeze after FreezeObservers and
	// FreezeBN steps (0: never). CalibrationBatches initialise learnable
	// quantizers and calibrate PTQ (default 32).
	Epochs             int     `json:"epochs"`
	LR                 float64 `json:"lr"`
	Batch              int     `json:"batch"`
	FreezeObservers    int64   `json:"freeze_observers"`
	FreezeBN           int64   `json:"freeze_bn"`
	CalibrationBatches int     `json:"calibration_batches"`
	// Teacher distils (QAT only) from the experiment's float model of
	// the dataset (train.DistillConfig) with temperature
	// DistillTemperature (0: train.DefaultTemperature) and weight
	// DistillAlpha of the distillation term (absent:
	// train.DefaultAlpha), which need Teacher.
	Teacher            bool     `json:"teacher"`
	DistillTemperature float64  `json:"distill_temperature"`
	DistillAlpha       *float64 `json:"distill_alpha"`
	// Group and X place the run in the accuracy plot: one line per
	// group, X on the x axis (e.g. the bit width).
	Group string   `json:"group"`
	X     *float64 `json:"x"`
}

// Load reads and validates an experiment file. Unknown fields are an
// error, so that a misspelt option cannot silently do nothing.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if c.Name == "" {
		c.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return c, nil
}

// Parse decodes (strictly: internal/strictjson) and validates an
// experiment config.
func Parse(b []byte) (Config, error) {
	var c Config
	if err := strictjson.Decode(b, &c); err != nil {
		return Config{}, fmt.Errorf("experiment config: %w", err)
	}
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c Config) withDefaults() Config {
	if c.Model == "" {
		c.Model = "lenet"
	}
	if len(c.Data) == 0 {
		c.Data = []string{"mnist"}
	}
	if c.XLabel == "" {
		c.XLabel = "bits"
	}
	c.Float = c.Float.withDefaults(2, 1e-3)
	runs := make([]Run, len(c.Runs))
	for i, r := range c.Runs {
		if r.Bits == "" && r.Quant == nil {
			r.Bits = "W8A8"
		}
		if r.Method == MethodQAT {
			s := Stage{Epochs: r.Epochs, LR: r.LR, Batch: r.Batch}.withDefaults(1, 1e-4)
			r.Epochs, r.LR, r.Batch = s.Epochs, s.LR, s.Batch
		}
		if r.CalibrationBatches == 0 {
			r.CalibrationBatches = 32
		}
		if r.Teacher {
			d := r.distill()
			r.DistillTemperature, r.DistillAlpha = d.Temperature, d.Alpha
		}
		runs[i] = r
	}
	c.Runs = runs
	return c
}

func (s Stage) withDefaults(epochs int, lr float64) Stage {
	if s.Epochs == 0 {
		s.Epochs = epochs
	}
	if s.LR == 0 {
		s.LR = lr
	}
	if s.Batch == 0 {
		s.Batch = 128
	}
	return s
}

// Validate checks the config; Run checks it again against the model.
func (c Config) Validate() error {
	if c.TrainLimit < 0 || c.TestLimit < 0 {
		return fmt.Errorf("experiment config: train_limit %d and test_limit %d must not be negative", c.TrainLimit, c.TestLimit)
	}
	if c.Float.Epochs < 1 || c.Float.LR <= 0 || c.Float.Batch < 1 {
		return fmt.Errorf("experiment config: float: epochs %d, lr %g, batch %d: want positive values", c.Float.Epochs, c.Float.LR, c.Float.Batch)
	}
	if len(c.Runs) == 0 {
		return errors.New("experiment config: no runs")
	}
	seen := map[string]bool{}
	for i, r := range c.Runs {
		at := fmt.Sprintf("experiment config: runs[%d] (%q)", i, r.Name)
		if r.Name == "" || strings.ContainsAny(r.Name, `/\ `) {
			return fmt.Errorf("%s: name must be non-empty without spaces or slashes", at)
		}
		if seen[r.Name] {
			return fmt.Errorf("%s: duplicate name", at)
		}
		if r.Name == "float" {
			// The float model of each dataset is work/<dataset>-float.
			return fmt.Errorf("%s: the name float is the experiment's float model: choose another", at)
		}
		seen[r.Name] = true
		switch r.Method {
		case MethodPTQ:
			if r.Learnable != "" || r.Epochs != 0 || r.LR != 0 || r.FreezeObservers != 0 || r.FreezeBN != 0 || r.Teacher {
				return fmt.Errorf("%s: learnable, epochs, lr, freeze and teacher options are for qat runs", at)
			}
		case MethodQAT:
			if r.Epochs < 1 || r.LR <= 0 || r.Batch < 1 {
				return fmt.Errorf("%s: epochs %d, lr %g, batch %d: want positive values", at, r.Epochs, r.LR, r.Batch)
			}
			if r.Quant != nil && r.Quant.PTQ != nil {
				return fmt.Errorf("%s: quant.ptq options are for ptq runs", at)
			}
		default:
			return fmt.Errorf("%s: method %q: want ptq or qat", at, r.Method)
		}
		if r.Quant != nil && r.Bits != "" {
			return fmt.Errorf("%s: set bits or quant, not both", at)
		}
		if _, err := r.quantConfig(); err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if r.FreezeObservers < 0 || r.FreezeBN < 0 || r.CalibrationBatches < 1 {
			return fmt.Errorf("%s: freeze steps and calibration_batches must be positive", at)
		}
		if !r.Teacher && (r.DistillTemperature != 0 || r.DistillAlpha != nil) {
			return fmt.Errorf("%s: distill_temperature and distill_alpha need \"teacher\": true", at)
		}
		if r.Teacher {
			if err := r.distill().Validate(); err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
		}
	}
	return nil
}

// distill is the distillation config of a run with a teacher, defaults
// filled in (the teacher itself is set when the run trains).
func (r Run) distill() train.DistillConfig {
	d := train.DistillConfig{Temperature: r.DistillTemperature, Alpha: r.DistillAlpha}
	if d.Temperature == 0 {
		d.Temperature = train.DefaultTemperature
	}
	if d.Alpha == nil {
		a := train.DefaultAlpha
		d.Alpha = &a
	}
	return d
}

// quantConfig is the run's quant config with its observer, learnable and
// folding options applied.
func (r Run) quantConfig() (layers.QuantConfig, error) {
	var qc layers.QuantConfig
	if r.Quant != nil {
		qc = *r.Quant
		// Per-layer overrides are maps: copy before SetLearnable edits them.
		qc.Layers = make(map[string]layers.LayerQuant, len(r.Quant.Layers))
		for k, v := range r.Quant.Layers {
			qc.Layers[k] = v
		}
	} else {
		var err error
		if qc, err = layers.ParseBits(r.Bits); err != nil {
			return qc, err
		}
	}
	if r.Observer != "" {
		qc.Act.Observer = r.Observer
		if qc.Input != nil {
			in := *qc.Input
			in.Observer = r.Observer
			qc.Input = &in
		}
	}
	if r.Method == MethodPTQ {
		// PTQ calibrates with min/max unless told otherwise, as qat calibrate.
		if qc.Act.Observer == "" {
			qc.Act.Observer = "minmax"
		}
		if qc.Input != nil && qc.Input.Observer == "" {
			in := *qc.Input
			in.Observer = "minmax"
			qc.Input = &in
		}
	}
	switch r.Learnable {
	case "":
	case layers.LearnLSQ, layers.LearnLSQPlus, layers.LearnPACT:
		qc.SetLearnable(r.Learnable)
	default:
		return qc, fmt.Errorf("learnable %q: want lsq, lsq+ or pact", r.Learnable)
	}
	if r.NoFoldBN {
		qc.NoFoldBN = true
	}
	return qc, nil
}

// describe summarises a quant config for the report: bits, then what
// differs from the defaults (activation scheme and observer, per-tensor
// weights, learnable quantizers, folding, per-layer bits).
func describe(qc layers.QuantConfig) string {
	parts := []string{qc.String()}
	spec := func(role string, s layers.QuantSpec) {
		switch {
		case s.Off:
			parts = append(parts, role+" float")
			return
		case s.Symmetric:
			parts = append(parts, role+" symmetric")
		case s.Affine:
			parts = append(parts, role+" affine")
		}
		if s.Signed {
			parts = append(parts, role+" signed")
		}
		if s.PerTensor {
			parts = append(parts, role+" per-tensor")
		}
		if s.Observer != "" {
			parts = append(parts, role+" "+s.Observer)
		}
		if s.Learnable != "" {
			parts = append(parts, role+" "+s.Learnable)
		}
	}
	spec("weight", qc.Weight)
	spec("act", qc.Act)
	if qc.Input != nil {
		spec("input", *qc.Input)
	}
	names := make([]string, 0, len(qc.Layers))
	for n := range qc.Layers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, a := quant.Scheme{Bits: qc.WeightSpec(n).Bits}, quant.Scheme{Bits: qc.ActSpec(n).Bits}
		parts = append(parts, fmt.Sprintf("%s W%dA%d", n, w.NumBits(), a.NumBits()))
	}
	if qc.NoFoldBN {
		parts = append(parts, "BN unfolded")
	}
	if s := qc.PTQ.String(); s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
