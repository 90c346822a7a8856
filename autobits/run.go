package autobits

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"qat/data"
	"qat/deploy"
	"qat/experiment"
	"qat/internal/atomicfile"
	"qat/internal/qgemm"
	"qat/qmodel"
	"qat/train"
)

// Config configures Run. Zero values mean the defaults given.
type Config struct {
	// From is the float checkpoint.
	From string
	// Dataset is the data spec recorded in the checkpoints written.
	Dataset string
	Budget  Budget
	// Out is the checkpoint of the fine-tuned chosen model. Its int8
	// model (.qmodel) and metrics (.metrics.jsonl) go next to it, and the
	// W8A8 reference as the same names with "-w8a8" before the extension.
	Out string
	// Epochs, LR, Batch and Seed are those of both fine-tunes (QAT, as
	// `qat finetune`: Adam, constant rate, observers not frozen); 0 means
	// 1 epoch, 1e-4 and 128.
	Epochs int
	LR     float64
	Batch  int
	Seed   uint64
	// CalibrationBatches is the number of training batches of 128 of
	// every post-training calibration (sensitivity and measured
	// assignments); 0 means 32.
	CalibrationBatches int
	// TestLimit is the number of test images of the sensitivity table and
	// of the post-training evaluation of the assignments tried (0: 2000;
	// the whole test set if smaller). The fine-tuned models are
	// evaluated on the whole test set.
	TestLimit int
	// Candidates is how many assignments within budget are evaluated
	// post-training to choose the one to fine-tune, and the width of the
	// search's beam (Greedy); 0 means 4.
	Candidates int
	// LatencyBatch and LatencyRuns are the batch (the first test images)
	// and the timed runs of each latency measurement; 0 means 100 and 7.
	LatencyBatch int
	LatencyRuns  int
	// Log receives a line per stage (nil: none); Progress is told how the
	// fine-tunes advance (nil: nothing is).
	Log      io.Writer
	Progress train.Progress
}

// withDefaults fills the zero fields of c.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Epochs, 1)
	def(&c.Batch, 128)
	def(&c.CalibrationBatches, 32)
	def(&c.TestLimit, 2000)
	def(&c.Candidates, 4)
	def(&c.LatencyBatch, 100)
	def(&c.LatencyRuns, 7)
	if c.LR == 0 {
		c.LR = 1e-4
	}
	return c
}

// Validate names the first field of c that is invalid.
func (c Config) Validate() error {
	if err := c.Budget.Validate(); err != nil {
		return err
	}
	switch {
	case c.From == "":
		return errors.New("autobits: no float checkpoint")
	case c.Out == "":
		return errors.New("autobits: no output checkpoint")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"epochs", c.Epochs}, {"batch", c.Batch}, {"calibration batches", c.CalibrationBatches}, {"test limit", c.TestLimit},
		{"candidates", c.Candidates}, {"latency batch", c.LatencyBatch}, {"latency runs", c.LatencyRuns}} {
		if f.v < 0 {
			return fmt.Errorf("autobits: %s %d is negative", f.name, f.v)
		}
	}
	if !(c.LR >= 0) || math.IsInf(c.LR, 1) {
		return fmt.Errorf("autobits: learning rate %v: want a finite number >= 0", c.LR)
	}
	return nil
}

// Measured is one assignment's post-training model, measured.
type Measured struct {
	// ID numbers the assignments tried, from 1, as the report's plots
	// label them.
	ID   int        `json:"id"`
	Bits Assignment `json:"bits"`
	// Roles says why it was tried: "uniform" (a reference), "beam best"
	// (the first of a round of the search's beam), "candidate" (within
	// budget in the search), "over budget once calibrated", "chosen".
	Roles []string `json:"roles"`
	// Bytes is the size of its int8 model file, LatencyMS its median
	// latency and LatencyRunsMS every timed run.
	Bytes         int64     `json:"bytes"`
	LatencyMS     float64   `json:"latency_ms"`
	LatencyRunsMS []float64 `json:"latency_runs_ms"`
	// Predicted is Table.Predict, in percentage points.
	Predicted float64 `json:"predicted_drop_pp"`
	// Accuracy is the post-training accuracy on the test subset.
	Accuracy float64 `json:"ptq_accuracy"`
}

// Final is a fine-tuned model: the chosen assignment's or the W8A8
// reference.
type Final struct {
	Bits       Assignment `json:"bits"`
	Checkpoint string     `json:"checkpoint"`
	Int8Model  string     `json:"int8_model"`
	Metrics    string     `json:"metrics"`
	// FakeQuantAccuracy is the checkpoint's last epoch's test accuracy,
	// Int8Accuracy the int8 model's on the int8 runtime, both on the
	// whole test set.
	FakeQuantAccuracy float64 `json:"fake_quant_accuracy"`
	Int8Accuracy      float64 `json:"int8_accuracy"`
	// Bytes is the size of the int8 model file written.
	Bytes         int64     `json:"bytes"`
	LatencyMS     float64   `json:"latency_ms"`
	LatencyRunsMS []float64 `json:"latency_runs_ms"`
	Seconds       float64   `json:"seconds"`
}

// Report is what Run did.
type Report struct {
	From    string `json:"from"`
	Dataset string `json:"dataset"`
	Budget  Budget `json:"budget"`
	// BytesMethod and LatencyMethod say how the metrics were measured;
	// Kernel is the int8 GEMM kernel the runtime selected.
	BytesMethod   string             `json:"bytes_method"`
	LatencyMethod string             `json:"latency_method"`
	Kernel        string             `json:"kernel"`
	Machine       experiment.Machine `json:"machine"`
	// TestImages is the size of the test subset of the sensitivity table
	// and of the post-training accuracies, LatencyBatch the batch of the
	// latencies.
	TestImages   int `json:"test_images"`
	LatencyBatch int `json:"latency_batch"`
	// BeamWidth is the search's beam and most candidates.
	BeamWidth int    `json:"beam_width"`
	Table     Table  `json:"sensitivity"`
	Search    Search `json:"search"`
	// Tried holds every assignment evaluated post-training, by ID.
	Tried  []Measured `json:"tried"`
	Chosen Assignment `json:"chosen"`
	// Final is the chosen assignment fine-tuned, Reference W8A8
	// fine-tuned the same way.
	Final     Final `json:"final"`
	Reference Final `json:"reference"`
	// Met says whether Final is within the budget as measured on its own
	// file (bytes) or runtime (latency).
	Met     bool    `json:"met"`
	Seconds float64 `json:"seconds"`
	// Command is the command line, for the report (set by the caller).
	Command string `json:"command,omitempty"`
}

// value returns f's metric m.
func (f Final) value(m Metric) float64 {
	if m == MetricBytes {
		return float64(f.Bytes)
	}
	return f.LatencyMS
}

// prober measures the assignments of one float checkpoint: quickly for
// the search (search), exactly for the assignments tried (try).
type prober struct {
	c      Config
	names  []string
	train  *data.Dataset
	test   *data.Dataset
	pixels []uint8
	quick  map[string]Value
	tried  map[string]*Measured
	order  []*Measured
	// ref is all-W8A8 (calibrated as the search's models), base its
	// median latency measured alone over longRuns x LatencyRuns runs: see
	// latency.
	ref  *qmodel.Model
	base float64
}

// latency returns qm's latency over LatencyRuns runs (latencyOver).
func (p *prober) latency(qm *qmodel.Model) (float64, []float64, error) {
	return p.latencyOver(qm, p.c.LatencyRuns)
}

// latencyOver returns qm's latency (Latency) over runs runs interleaved
// with all-W8A8's and scaled by base over W8A8's median among them:
// measured against the same reference under the same load, the latencies
// of models measured at different times compare although the load of the
// machine drifts.
func (p *prober) latencyOver(qm *qmodel.Model, runs int) (float64, []float64, error) {
	if p.ref == nil {
		ref, err := PTQ(p.c.From, Uniform(p.names, 8, 8), p.train, searchBatches)
		if err != nil {
			return 0, nil, err
		}
		if p.base, _, err = Latency(ref, p.pixels, longRuns*p.c.LatencyRuns); err != nil {
			return 0, nil, err
		}
		p.ref = ref
	}
	ms, err := interleaved([]*qmodel.Model{qm, p.ref}, p.pixels, runs)
	if err != nil {
		return 0, nil, err
	}
	scale := p.base / median(ms[1])
	for i := range ms[0] {
		ms[0][i] *= scale
	}
	return median(ms[0]), ms[0], nil
}

// search returns a's metric on its model calibrated on one batch
// (searchBatches), measured the first time.
func (p *prober) search(a Assignment) (Value, error) {
	k := fmt.Sprint(a)
	if v, ok := p.quick[k]; ok {
		return v, nil
	}
	qm, err := PTQ(p.c.From, a, p.train, searchBatches)
	if err != nil {
		return Value{}, err
	}
	var v Value
	if p.c.Budget.Metric == MetricBytes {
		n, err := Bytes(qm)
		if err != nil {
			return Value{}, err
		}
		v = Value{V: float64(n), Lo: float64(n), Hi: float64(n)}
	} else {
		med, runs, err := p.latency(qm)
		if err != nil {
			return Value{}, err
		}
		v = Value{V: med, Lo: slices.Min(runs), Hi: slices.Max(runs)}
	}
	p.quick[k] = v
	return v, nil
}

// searchBatches is the number of calibration batches of the models the
// search measures: the calibration changes the text of the scales in the
// file's JSON (a few bytes) and no work of the runtime, and each
// candidate is measured again after a full calibration.
const searchBatches = 1

// try measures a's post-training model (c.CalibrationBatches) and its
// accuracy on the test subset the first time, and records it as tried
// for role.
func (p *prober) try(a Assignment, role string) (*Measured, error) {
	k := fmt.Sprint(a)
	m, ok := p.tried[k]
	if !ok {
		qm, err := PTQ(p.c.From, a, p.train, p.c.CalibrationBatches)
		if err != nil {
			return nil, err
		}
		m = &Measured{ID: len(p.order) + 1, Bits: a}
		if m.Bytes, err = Bytes(qm); err != nil {
			return nil, err
		}
		if m.LatencyMS, m.LatencyRunsMS, err = p.latency(qm); err != nil {
			return nil, err
		}
		if m.Accuracy, err = evaluate(qm, p.test); err != nil {
			return nil, err
		}
		p.tried[k] = m
		p.order = append(p.order, m)
	}
	m.Roles = append(m.Roles, role)
	return m, nil
}

// Run measures the sensitivity of the float checkpoint c.From, searches
// for assignments within c.Budget (package documentation), fine-tunes
// the chosen one and W8A8 on trainSet, exports and measures both, and
// returns the report. The test subset (c.TestLimit) drives the choice;
// the fine-tuned models are evaluated on all of test.
func Run(ctx context.Context, c Config, trainSet, test *data.Dataset) (*Report, error) {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		if c.Log != nil {
			fmt.Fprintf(c.Log, "autobits: "+format+"\n", args...)
		}
	}
	sub := test.Limit(min(c.TestLimit, test.N))
	lat := test.Limit(min(c.LatencyBatch, test.N))
	p := &prober{c: c, train: trainSet, test: sub, pixels: lat.Images, quick: map[string]Value{}, tried: map[string]*Measured{}}
	rep := &Report{From: c.From, Dataset: c.Dataset, Budget: c.Budget, Kernel: qgemm.Selected().String(), Machine: experiment.ThisMachine(),
		TestImages: sub.N, LatencyBatch: lat.N, BeamWidth: c.Candidates,
		BytesMethod: fmt.Sprintf("size of the int8 model file as qat export writes it (qmodel.Write, float requantization, sub-byte weights packed) "+
			"of each assignment's post-training model (min/max, %d calibration batches; %d during the search); the fine-tuned models' written files",
			c.CalibrationBatches, searchBatches),
		LatencyMethod: fmt.Sprintf("median of %d timed runs (after 1 untimed) of one infer.Runner on a batch of the first %d test images, "+
			"input quantization included, one goroutine on a locked OS thread, kernel %s; ms per batch. Every model's runs alternate with "+
			"those of all-W8A8 (post-training) and are scaled by W8A8's median over %d runs alone at the start over its median among them, so "+
			"that models measured at different times compare though the load drifts; the fine-tuned models: %d runs each",
			c.LatencyRuns, lat.N, qgemm.Selected(), longRuns*c.LatencyRuns, longRuns*c.LatencyRuns)}

	ck, err := train.LoadCheckpoint(c.From)
	if err != nil {
		return nil, fmt.Errorf("autobits: %w", err)
	}
	if ck.Model.Quantized() {
		return nil, fmt.Errorf("autobits: %s is quantized (%v); give its float checkpoint", c.From, ck.Model.Quant)
	}
	names := WeightedLayers(ck.Model.Spec)
	if len(names) == 0 {
		return nil, fmt.Errorf("autobits: model %s has no conv or linear layer", ck.Model.Spec.Name)
	}
	p.names = names
	// A bytes budget below the smallest model is refused before anything
	// else is measured; Greedy checks it again.
	if err := checkFloor(c.Budget, names, func(a Assignment) (float64, error) { v, err := p.search(a); return v.V, err }); err != nil {
		return nil, err
	}
	for _, w := range []int{8, 4, 2} {
		m, err := p.try(Uniform(names, w, 8), "uniform")
		if err != nil {
			return nil, err
		}
		logf("W%dA8: %d bytes, %.3f ms, post-training %.2f%%", w, m.Bytes, m.LatencyMS, 100*m.Accuracy)
	}

	logf("sensitivity of %d layers at %v bits on %d test images", len(names), Widths, sub.N)
	if rep.Table, err = MeasureTable(c.From, trainSet, sub, c.CalibrationBatches); err != nil {
		return nil, err
	}
	logf("search for %s", c.Budget)
	if rep.Search, err = Greedy(rep.Table, c.Budget, p.search, c.Candidates); err != nil {
		return nil, err
	}
	logf("%d assignments measured in %d rounds", rep.Search.Measured, len(rep.Search.Beam)-1)
	for _, round := range rep.Search.Beam {
		if _, err := p.try(round[0].Bits, "beam best"); err != nil {
			return nil, err
		}
	}
	var chosen *Measured
	for _, st := range rep.Search.Candidates {
		m, err := p.try(st.Bits, "candidate")
		if err != nil {
			return nil, err
		}
		within := m.value(c.Budget.Metric) <= c.Budget.Limit
		logf("candidate %s: %d bytes, %.3f ms, post-training %.2f%%, within budget: %t", st.Bits, m.Bytes, m.LatencyMS, 100*m.Accuracy, within)
		if !within {
			m.Roles = append(m.Roles, "over budget once calibrated")
			continue
		}
		if chosen == nil || m.Accuracy > chosen.Accuracy {
			chosen = m
		}
	}
	if chosen == nil {
		return nil, fmt.Errorf("autobits: no candidate is within the budget %s once calibrated on %d batches (see the search's candidates): %w",
			c.Budget, c.CalibrationBatches, ErrUnreachable)
	}
	chosen.Roles = append(chosen.Roles, "chosen")
	rep.Chosen = chosen.Bits
	for _, m := range p.order {
		m.Predicted = rep.Table.Predict(m.Bits)
		rep.Tried = append(rep.Tried, *m)
	}

	base := strings.TrimSuffix(c.Out, filepath.Ext(c.Out))
	logf("fine-tune %s", rep.Chosen)
	if rep.Final, err = finetune(ctx, c, rep.Chosen, c.Out, trainSet, test); err != nil {
		return nil, err
	}
	w8 := Uniform(names, 8, 8)
	if fmt.Sprint(rep.Chosen) == fmt.Sprint(w8) {
		rep.Reference = rep.Final
	} else {
		logf("fine-tune the W8A8 reference")
		if rep.Reference, err = finetune(ctx, c, w8, base+"-w8a8"+filepath.Ext(c.Out), trainSet, test); err != nil {
			return nil, err
		}
	}
	if err := p.remeasure(rep); err != nil {
		return nil, err
	}
	rep.Met = rep.Final.value(c.Budget.Metric) <= c.Budget.Limit
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// longRuns is how many times LatencyRuns the long measurements run: the
// all-W8A8 reference measured alone (prober.latencyOver) and the
// fine-tuned models (remeasure).
const longRuns = 5

// remeasure measures the latencies of the fine-tuned models, over
// longRuns x LatencyRuns runs each (latencyOver); once when the chosen
// model is the reference.
func (p *prober) remeasure(rep *Report) error {
	for _, f := range []*Final{&rep.Reference, &rep.Final} {
		if f == &rep.Final && f.Int8Model == rep.Reference.Int8Model {
			f.LatencyMS, f.LatencyRunsMS = rep.Reference.LatencyMS, rep.Reference.LatencyRunsMS
			continue
		}
		qm, err := qmodel.ReadFile(f.Int8Model)
		if err != nil {
			return fmt.Errorf("autobits: %w", err)
		}
		if f.LatencyMS, f.LatencyRunsMS, err = p.latencyOver(qm, longRuns*p.c.LatencyRuns); err != nil {
			return err
		}
	}
	return nil
}

// value returns m's metric mt.
func (m *Measured) value(mt Metric) float64 {
	if mt == MetricBytes {
		return float64(m.Bytes)
	}
	return m.LatencyMS
}

// finetune fine-tunes assignment a of c.From (QAT, as `qat finetune
// --quant-config` with a.QuantConfigJSON()), saving the checkpoint to
// out after every epoch, and exports and evaluates it; its latency is
// remeasure's.
func finetune(ctx context.Context, c Config, a Assignment, out string, trainSet, test *data.Dataset) (Final, error) {
	start := time.Now()
	base := strings.TrimSuffix(out, filepath.Ext(out))
	f := Final{Bits: a, Checkpoint: out, Int8Model: base + ".qmodel", Metrics: base + ".metrics.jsonl"}
	ck, err := train.LoadCheckpoint(c.From)
	if err != nil {
		return f, fmt.Errorf("autobits: %w", err)
	}
	if err := ck.Model.Quantize(a.QuantConfig()); err != nil {
		return f, fmt.Errorf("autobits: %s: %w", a, err)
	}
	t, err := train.NewTrainer(ck.Model, train.Config{Epochs: c.Epochs, Batch: c.Batch, LR: c.LR, Seed: c.Seed, Norm: ck.Norm})
	if err != nil {
		return f, fmt.Errorf("autobits: %w", err)
	}
	t.Progress = c.Progress
	t.Checkpoint = func(t *train.Trainer) error { return train.FromTrainer(t, c.Dataset).Save(out) }
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return f, fmt.Errorf("autobits: %w", err)
	}
	var last train.EpochRecord
	if err := atomicfile.Write(f.Metrics, func(w io.Writer) error {
		t.Metrics = w
		last, err = t.Fit(ctx, trainSet, test)
		return err
	}); err != nil {
		return f, fmt.Errorf("autobits: fine-tune %s: %w", a, err)
	}
	if last.ValAccuracy == nil {
		return f, fmt.Errorf("autobits: fine-tune %s recorded no test accuracy", a)
	}
	f.FakeQuantAccuracy = *last.ValAccuracy
	qm, err := deploy.Freeze(t.Model, ck.Norm, qmodel.RequantFloat)
	if err != nil {
		return f, fmt.Errorf("autobits: export %s: %w", out, err)
	}
	if err := qmodel.WriteFile(f.Int8Model, qm); err != nil {
		return f, fmt.Errorf("autobits: %w", err)
	}
	st, err := os.Stat(f.Int8Model)
	if err != nil {
		return f, fmt.Errorf("autobits: %w", err)
	}
	f.Bytes = st.Size()
	written, err := qmodel.ReadFile(f.Int8Model)
	if err != nil {
		return f, fmt.Errorf("autobits: %w", err)
	}
	if f.Int8Accuracy, err = evaluate(written, test); err != nil {
		return f, err
	}
	f.Seconds = time.Since(start).Seconds()
	return f, nil
}
