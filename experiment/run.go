package experiment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"qat/data"
	"qat/deploy"
	"qat/export"
	"qat/infer"
	"qat/internal/atomicfile"
	"qat/layers"
	"qat/model"
	"qat/ptq"
	"qat/qmodel"
	"qat/train"
)

// Options configures Execute.
type Options struct {
	// Out is the results directory; checkpoints and metrics go into its
	// work/ subdirectory, which is not meant to be kept.
	Out string
	// Log receives one line per stage (nil: none).
	Log io.Writer
	// Command is the command line recorded in results.md.
	Command string
	// RSS, if set, returns the process's resident memory in MiB, which
	// the step records of every training run's metrics hold
	// (train.Trainer.RSS); nil leaves it out of them.
	RSS func() float64
}

// Result is one run on one dataset. Accuracies are fractions of the test
// set.
type Result struct {
	Data   string   `json:"data"`
	Run    string   `json:"run"`
	Method string   `json:"method"`
	Quant  string   `json:"quant"`
	Group  string   `json:"group,omitempty"`
	X      *float64 `json:"x,omitempty"`
	// FloatAccuracy is the float model's, FakeQuantAccuracy the quantized
	// checkpoint's evaluation.
	FloatAccuracy     float64 `json:"float_accuracy"`
	FakeQuantAccuracy float64 `json:"fake_quant_accuracy"`
	// Int8Accuracy is the exported int8 model's on the int8 runtime; nil
	// when the scheme has no int8 form (Int8Note says why).
	Int8Accuracy *float64 `json:"int8_accuracy,omitempty"`
	Int8Note     string   `json:"int8_note,omitempty"`
	// Int8Model is the exported int8 model file, if any.
	Int8Model string `json:"int8_model,omitempty"`
	// Seconds is the wall time of calibration or fine-tuning.
	Seconds float64 `json:"seconds"`
	// Distill describes the distillation of a QAT run from the float
	// model ("T 4, alpha 0.5"); "" when it has none.
	Distill string `json:"distill,omitempty"`
	// Checkpoint is the quantized checkpoint; Metrics the JSONL metrics
	// of a QAT run.
	Checkpoint string `json:"checkpoint"`
	Metrics    string `json:"metrics,omitempty"`
	// PTQ is what the post-training recovery methods of a PTQ run's quant
	// config did (nil without any).
	PTQ *ptq.Report `json:"ptq,omitempty"`
}

// Drop is the accuracy lost to quantization, in percentage points.
func (r Result) Drop() float64 { return 100 * (r.FloatAccuracy - r.FakeQuantAccuracy) }

// Report is what Execute measured.
type Report struct {
	Config  Config
	Command string
	Machine Machine
	Started time.Time
	Elapsed time.Duration
	// Floats maps a dataset to its float model's metrics file and test
	// accuracy.
	Floats  map[string]FloatResult
	Results []Result
}

// FloatResult is the float model of one dataset.
type FloatResult struct {
	Checkpoint string  `json:"checkpoint"`
	Accuracy   float64 `json:"accuracy"`
	Metrics    string  `json:"metrics"`
	Seconds    float64 `json:"seconds"`
}

// Execute trains the float model of each dataset, runs every variant on
// it, and writes results.md, results.csv, results.json and plots into
// o.Out. It stops at the first error, keeping what was written.
func Execute(ctx context.Context, c Config, o Options) (*Report, error) {
	if o.Out == "" {
		return nil, errors.New("experiment: no output directory")
	}
	c = c.withDefaults()
	spec, err := c.check()
	if err != nil {
		return nil, err
	}
	work := filepath.Join(o.Out, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{Config: c, Command: o.Command, Machine: ThisMachine(), Started: time.Now(), Floats: map[string]FloatResult{}}
	for _, ds := range c.Data {
		if err := rep.runData(ctx, spec, ds, work, o); err != nil {
			return rep, err
		}
	}
	rep.Elapsed = time.Since(rep.Started)
	if err := rep.Write(o.Out); err != nil {
		return rep, err
	}
	return rep, nil
}

// check validates c (with its defaults) and returns its model, after
// checking every run's quant config against it.
func (c Config) check() (model.Graph, error) {
	if err := c.Validate(); err != nil {
		return model.Graph{}, err
	}
	spec, err := model.Load(c.Model)
	if err != nil {
		return model.Graph{}, fmt.Errorf("experiment %s: model: %w", c.Name, err)
	}
	for i, r := range c.Runs {
		qc, _ := r.quantConfig()
		if err := qc.Validate(spec); err != nil {
			return model.Graph{}, fmt.Errorf("experiment %s: runs[%d] (%s): %w", c.Name, i, r.Name, err)
		}
	}
	return spec, nil
}

// runData trains the float model of spec on data set ds and runs every
// run of the experiment on it, adding the results to rep.
func (rep *Report) runData(ctx context.Context, spec model.Graph, ds, work string, o Options) error {
	c := rep.Config
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	trainSet, test, norm, err := data.Splits(ds, c.TrainLimit)
	if err != nil {
		return fmt.Errorf("experiment %s: data %s: %w", c.Name, ds, err)
	}
	if c.TestLimit > 0 {
		test = test.Limit(c.TestLimit)
	}
	floatPath := filepath.Join(work, fileName(ds, "float")+".safetensors")
	logf("%s: float %s, %d epochs on %d images", c.Name, ds, c.Float.Epochs, trainSet.N)
	fr, err := trainFloat(ctx, spec, c.Float, ds, norm, trainSet, test, floatPath, o.RSS)
	if err != nil {
		return fmt.Errorf("experiment %s: float %s: %w", c.Name, ds, err)
	}
	rep.Floats[ds] = fr
	logf("%s: float %s: %.2f%%", c.Name, ds, 100*fr.Accuracy)
	for _, r := range c.Runs {
		res, err := runOne(ctx, r, ds, floatPath, trainSet, test, work, o.RSS)
		if err != nil {
			return fmt.Errorf("experiment %s: run %s on %s: %w", c.Name, r.Name, ds, err)
		}
		res.FloatAccuracy = fr.Accuracy
		rep.Results = append(rep.Results, res)
		int8 := "n/a"
		if res.Int8Accuracy != nil {
			int8 = fmt.Sprintf("%.2f%%", 100**res.Int8Accuracy)
		}
		logf("%s: %s %s: fake-quant %.2f%%, int8 %s (%.1fs)", c.Name, r.Name, ds, 100*res.FakeQuantAccuracy, int8, res.Seconds)
	}
	return nil
}

func fileName(ds, run string) string {
	return filepath.Base(ds) + "-" + run
}

func trainFloat(ctx context.Context, spec model.Graph, s Stage, ds string, norm model.Norm, trainSet, test *data.Dataset, path string, rss func() float64) (FloatResult, error) {
	m, err := layers.NewModel(spec, s.Seed)
	if err != nil {
		return FloatResult{}, err
	}
	metrics := trimExt(path) + ".metrics.jsonl"
	t, err := train.NewTrainer(m, train.Config{Epochs: s.Epochs, Batch: s.Batch, LR: s.LR, Seed: s.Seed, Norm: norm})
	if err != nil {
		return FloatResult{}, err
	}
	start := time.Now()
	last, err := fit(ctx, t, metrics, rss, trainSet, test)
	if err != nil {
		return FloatResult{}, err
	}
	if err := train.FromTrainer(t, ds).Save(path); err != nil {
		return FloatResult{}, err
	}
	return FloatResult{Checkpoint: path, Accuracy: *last.ValAccuracy, Metrics: metrics, Seconds: time.Since(start).Seconds()}, nil
}

// fit runs t, writing its metrics, with the resident memory rss
// reports (nil: none), to path.
// The metrics file appears, complete, only when the run succeeds.
func fit(ctx context.Context, t *train.Trainer, path string, rss func() float64, trainSet, test *data.Dataset) (train.EpochRecord, error) {
	var last train.EpochRecord
	err := atomicfile.Write(path, func(w io.Writer) error {
		t.Metrics, t.RSS = w, rss
		var err error
		last, err = t.Fit(ctx, trainSet, test)
		return err
	})
	if err == nil && last.ValAccuracy == nil {
		err = errors.New("the run recorded no test accuracy")
	}
	return last, err
}

func trimExt(p string) string { return p[:len(p)-len(filepath.Ext(p))] }

// runOne quantizes the float checkpoint as r says, calibrates or
// fine-tunes it, evaluates it and its int8 export.
func runOne(ctx context.Context, r Run, ds, floatPath string, trainSet, test *data.Dataset, work string, rss func() float64) (Result, error) {
	ck, err := train.LoadCheckpoint(floatPath)
	if err != nil {
		return Result{}, err
	}
	qc, err := r.quantConfig()
	if err != nil {
		return Result{}, err
	}
	m := ck.Model
	if err := m.Quantize(qc); err != nil {
		return Result{}, err
	}
	res := Result{Data: ds, Run: r.Name, Method: r.Method, Quant: describe(qc), Group: r.Group, X: r.X}
	start := time.Now()
	switch r.Method {
	case MethodPTQ:
		// The one PTQ path of qat calibrate too, with the recovery methods
		// of the quant config's ptq options.
		rep, err := ptq.Calibrate(m, trainSet, train.CalibrateConfig{Batches: r.CalibrationBatches, Norm: ck.Norm})
		if err != nil {
			return res, err
		}
		if qc.PTQ.Any() {
			res.PTQ = &rep
		}
	case MethodQAT:
		cfg := train.Config{Epochs: r.Epochs, Batch: r.Batch, LR: r.LR, Norm: ck.Norm,
			FreezeObserversStep: r.FreezeObservers, FreezeBNStep: r.FreezeBN, CalibrationBatches: r.CalibrationBatches}
		if r.Teacher {
			d := r.distill()
			cfg.Distill = &d
			res.Distill = fmt.Sprintf("T %g, alpha %g", d.Temperature, *d.Alpha)
		}
		t, err := train.NewTrainer(m, cfg)
		if err != nil {
			return res, err
		}
		if r.Teacher {
			tc, err := train.LoadTeacher(floatPath)
			if err != nil {
				return res, err
			}
			if err := t.SetTeacher(tc); err != nil {
				return res, err
			}
		}
		res.Metrics = filepath.Join(work, fileName(ds, r.Name)+".metrics.jsonl")
		if _, err := fit(ctx, t, res.Metrics, rss, trainSet, test); err != nil {
			return res, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	ev, err := train.Evaluate(m, test, train.EvalConfig{Norm: ck.Norm})
	if err != nil {
		return res, err
	}
	res.FakeQuantAccuracy = ev.Accuracy
	res.Checkpoint = filepath.Join(work, fileName(ds, r.Name)+".safetensors")
	if err := (&train.Checkpoint{Model: m, Norm: ck.Norm, Dataset: ds}).Save(res.Checkpoint); err != nil {
		return res, err
	}
	qpath := filepath.Join(work, fileName(ds, r.Name)+".qmodel")
	acc, note, err := int8Accuracy(m, ck.Norm, test, qpath)
	if err != nil {
		return res, err
	}
	res.Int8Accuracy, res.Int8Note = acc, note
	if acc != nil {
		res.Int8Model = qpath
	}
	return res, nil
}

// int8Accuracy exports m (float requantization) to path and evaluates
// the int8 model; a scheme without an integer form gives a note instead.
func int8Accuracy(m *layers.Model, norm model.Norm, test *data.Dataset, path string) (*float64, string, error) {
	qm, net, err := deploy.Int8(m, norm, qmodel.RequantFloat)
	if errors.Is(err, export.ErrUnsupported) {
		return nil, err.Error(), nil
	}
	if err != nil {
		return nil, "", err
	}
	if err := qmodel.WriteFile(path, qm); err != nil {
		return nil, "", err
	}
	ev, err := infer.Evaluate(net, test.Images, test.Labels, infer.EvalConfig{Threads: layers.Threads()})
	if err != nil {
		return nil, "", err
	}
	return &ev.Accuracy, "", nil
}
