package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"qat/data"
	"qat/layers"
	"qat/model"
)

// Config configures a training run (float training or QAT fine-tuning).
// Zero values mean the documented defaults.
type Config struct {
	// Epochs is the number of epochs to reach, counting epochs already
	// done by a resumed run; 0 means 1.
	Epochs int `json:"epochs"`
	// Batch is the training batch size; 0 means 128. The last batch of an
	// epoch is smaller when the dataset size is not a multiple.
	Batch int `json:"batch"`
	// LR is the base learning rate; 0 means 1e-3.
	LR        float64         `json:"lr"`
	Optimizer OptimizerConfig `json:"optimizer"`
	Schedule  ScheduleConfig  `json:"schedule"`
	// Seed seeds the shuffling (parameter initialisation is the model's).
	Seed uint64 `json:"seed"`
	// EvalBatch is the evaluation batch size; 0 means 250.
	EvalBatch int `json:"eval_batch"`
	// Norm is the input normalisation.
	Norm model.Norm `json:"norm"`
	// Augment is the augmentation of training images, drawn from Seed,
	// the epoch and the sample (data.Dataset.FillAugmented); the zero
	// value, none.
	Augment data.Augment `json:"augment,omitzero"`

	// CalibrationBatches is the number of training batches observed
	// before the first step of a model whose learnable quantizers need
	// initialisation from observed ranges; 0 means 32.
	CalibrationBatches int `json:"calibration_batches"`
	// FreezeObserversStep freezes every observer once this many steps
	// are done (0: never): the quantization params stop moving.
	FreezeObserversStep int64 `json:"freeze_observers_step"`
	// FreezeBNStep switches BatchNorm to its running statistics, kept
	// fixed, once this many steps are done (0: never).
	FreezeBNStep int64 `json:"freeze_bn_step"`

	// MetricsEvery writes a step record every this many steps (and the
	// last step of each epoch); 0 means 10.
	MetricsEvery int `json:"metrics_every"`

	// Distill, if set, distils from a teacher model (Trainer.SetTeacher)
	// into the trained one; nil trains on the labels alone.
	Distill *DistillConfig `json:"distill,omitempty"`
}

func (c Config) withDefaults() Config {
	if c.Epochs == 0 {
		c.Epochs = 1
	}
	if c.Batch == 0 {
		c.Batch = 128
	}
	if c.LR == 0 {
		c.LR = 1e-3
	}
	if c.EvalBatch == 0 {
		c.EvalBatch = 250
	}
	if c.CalibrationBatches == 0 {
		c.CalibrationBatches = 32
	}
	if c.MetricsEvery == 0 {
		c.MetricsEvery = 10
	}
	if c.Distill != nil {
		c.Distill = c.Distill.withDefaults()
	}
	return c
}

// Validate names the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Epochs < 0:
		return fmt.Errorf("epochs %d is negative", c.Epochs)
	case c.Batch < 0:
		return fmt.Errorf("batch size %d is negative", c.Batch)
	case c.EvalBatch < 0:
		return fmt.Errorf("eval batch size %d is negative", c.EvalBatch)
	case !(c.LR >= 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("learning rate %v is not a finite non-negative number", c.LR)
	case c.CalibrationBatches < 0:
		return fmt.Errorf("calibration batches %d is negative", c.CalibrationBatches)
	case c.FreezeObserversStep < 0 || c.FreezeBNStep < 0:
		return fmt.Errorf("freeze steps %d, %d: must not be negative", c.FreezeObserversStep, c.FreezeBNStep)
	case c.MetricsEvery < 0:
		return fmt.Errorf("metrics interval %d is negative", c.MetricsEvery)
	}
	if err := c.Optimizer.Validate(); err != nil {
		return err
	}
	if err := c.Schedule.Validate(); err != nil {
		return err
	}
	if c.Distill != nil {
		if err := c.Distill.Validate(); err != nil {
			return err
		}
	}
	return c.Norm.Validate(0)
}

// Trainer trains one model. It owns the optimizer and the step and epoch
// counters, which a checkpoint saves so that a run resumes exactly.
type Trainer struct {
	Model *layers.Model
	Opt   Optimizer
	cfg   Config
	// Step counts optimizer steps; Epoch counts completed epochs.
	Step  int64
	Epoch int

	gs *graphs
	// teacher is the teacher of a distilling run (SetTeacher).
	teacher *teacherRun
	// trained and trainTime sum the samples and wall time of training
	// epochs (evaluation excluded) over this trainer's Fit calls.
	trained   int
	trainTime time.Duration

	// Metrics receives JSONL records (nil: none); Progress is told how
	// each Fit call advances (nil: nothing is); Checkpoint, if set, is
	// called after every epoch.
	Metrics    io.Writer
	Progress   Progress
	Checkpoint func(*Trainer) error
	// RSS, if set, returns the process's resident memory in MiB, which
	// every step record holds (StepRecord.RSSMB); nil leaves it out.
	// Package train does not measure it itself (cmd/qat reads /proc).
	RSS func() float64
}

// NewTrainer returns a trainer for m with a fresh optimizer.
func NewTrainer(m *layers.Model, cfg Config) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("train config: %w", err)
	}
	t := &Trainer{Model: m, cfg: cfg.withDefaults(), gs: newGraphs(m)}
	if d := t.cfg.Distill; d != nil {
		l := d.loss()
		t.gs.distill = &l
	}
	if err := t.newOptimizer(); err != nil {
		return nil, err
	}
	return t, nil
}

// Config returns the configuration with defaults filled in.
func (t *Trainer) Config() Config { return t.cfg }

// SetEpochs changes the number of epochs to reach (a resumed run going
// further than planned).
func (t *Trainer) SetEpochs(n int) error {
	if n < 1 {
		return fmt.Errorf("epochs %d: want at least 1", n)
	}
	t.cfg.Epochs = n
	return nil
}

// newOptimizer (re)creates the optimizer over the model's current params,
// keeping the state of params it already had.
func (t *Trainer) newOptimizer() error {
	var state map[string][]float32
	var steps int64
	if t.Opt != nil {
		state, steps = t.Opt.State(), t.Opt.Steps()
	}
	opt, err := NewOptimizer(t.cfg.Optimizer, t.Model.Params())
	if err != nil {
		return err
	}
	if state != nil {
		// Keep the buffers of params that existed; new params start at 0.
		fresh := opt.State()
		for k := range fresh {
			if v, ok := state[k]; ok {
				fresh[k] = v
			}
		}
		if err := opt.LoadState(fresh, steps); err != nil {
			return err
		}
	}
	t.Opt = opt
	return nil
}

// ErrNonFinite is wrapped by the error of a step whose loss is NaN or Inf.
var ErrNonFinite = errors.New("non-finite loss")

// Progress is told how a Fit call advances: a progress display, which
// package train does not draw itself (cmd/qat draws a terminal bar or log
// lines).
type Progress interface {
	// Start begins a Fit call of total optimizer steps, counting the steps
	// done before a resumed run, labelled "train" for a float model and
	// "qat <quant config>" for a quantized one.
	Start(label string, total int)
	// Update reports that step steps are done, with the mean training
	// loss and accuracy (a fraction) of the epoch so far and the samples/s
	// since the previous update. Fit calls it with every step record it
	// writes (every MetricsEvery steps and at the end of every epoch).
	Update(step int, loss, accuracy, samplesPerSec float64)
	// Finish ends what Start began, whether the run completed or failed.
	Finish()
}

// fitRun is the state of one Fit call.
type fitRun struct {
	trainSet, test *data.Dataset
	mw             *metricsWriter
	batches        *data.Batches
	// perEpoch is the number of batches of an epoch, total the number of
	// steps of the whole run.
	perEpoch, total int
	labels          []int
}

// epochStats sums the training batches of an epoch, and those since the
// previous step record (the window of its samples/s).
type epochStats struct {
	start         time.Time
	lossSum       float64
	ceSum, kdSum  float64
	correct, seen int
	windowStart   time.Time
	windowSeen    int
}

// Fit trains until Epochs epochs are done, evaluating on test (if not nil)
// after every epoch. A NaN or Inf loss (or teacher logit) stops it with
// an error wrapping ErrNonFinite that names the step and the first layer
// whose output was not finite. A distilling run needs its teacher
// (SetTeacher). ctx cancels between steps.
func (t *Trainer) Fit(ctx context.Context, trainSet, test *data.Dataset) (EpochRecord, error) {
	if err := t.prepare(trainSet, test); err != nil {
		return EpochRecord{}, err
	}
	cfg := t.cfg
	batches := data.NewBatches(trainSet.N, cfg.Seed, cfg.Batch, true, false)
	r := &fitRun{trainSet: trainSet, test: test, mw: newMetricsWriter(t.Metrics), batches: batches,
		perEpoch: batches.Len(), total: cfg.Epochs * batches.Len(), labels: make([]int, cfg.Batch)}
	if t.Progress != nil {
		label := "train"
		if t.Model.Quantized() {
			label = "qat " + t.Model.Quant.String()
		}
		t.Progress.Start(label, r.total)
		defer t.Progress.Finish()
	}
	var last EpochRecord
	for t.Epoch < cfg.Epochs {
		st, err := t.trainEpoch(ctx, r)
		if err != nil {
			return last, err
		}
		rec, err := t.endEpoch(r, st)
		if err != nil {
			return last, err
		}
		last = rec
		if t.Checkpoint != nil {
			if err := t.Checkpoint(t); err != nil {
				return last, fmt.Errorf("epoch %d: checkpoint: %w", t.Epoch, err)
			}
		}
	}
	return last, nil
}

// prepare checks that the data fits the model and initialises learnable
// quantizers that need it from the ranges their observers see on
// CalibrationBatches training batches, recreating the optimizer over the
// new params.
func (t *Trainer) prepare(trainSet, test *data.Dataset) error {
	cfg, m := t.cfg, t.Model
	if cfg.Distill != nil && t.teacher == nil {
		return fmt.Errorf("the run distils from teacher %q but has none: set it (SetTeacher, with LoadTeacher of the recorded path when resuming)", cfg.Distill.Teacher)
	}
	if err := checkDataset(m, trainSet); err != nil {
		return err
	}
	if t.teacher != nil {
		if err := checkDataset(t.teacher.Model, trainSet); err != nil {
			return fmt.Errorf("teacher: %w", err)
		}
	}
	if err := cfg.Augment.Validate(trainSet.H, trainSet.W); err != nil {
		return fmt.Errorf("augmentation: %w", err)
	}
	if test != nil {
		if err := checkDataset(m, test); err != nil {
			return err
		}
	}
	if !m.NeedsInit() {
		return nil
	}
	frozen := m.ObserversFrozen()
	if err := calibrate(t.gs, trainSet, CalibrateConfig{Batches: cfg.CalibrationBatches, Batch: cfg.Batch, Seed: cfg.Seed, Norm: cfg.Norm}); err != nil {
		return fmt.Errorf("initialise learnable quantizers: %w", err)
	}
	m.FreezeObservers(frozen)
	if _, err := m.InitLearnable(); err != nil {
		return err
	}
	return t.newOptimizer()
}

// trainEpoch runs the training steps of epoch t.Epoch+1, writing a step
// record every MetricsEvery steps and at its last step.
func (t *Trainer) trainEpoch(ctx context.Context, r *fitRun) (epochStats, error) {
	now := time.Now()
	st := epochStats{start: now, windowStart: now}
	for i, idx := range r.batches.Epoch(t.Epoch) {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		s, err := t.step(r, i, idx)
		if err != nil {
			return st, err
		}
		ok := countCorrect(s.gr.Logits(), s.y, t.Model.Spec.Classes)
		st.correct += ok
		st.seen += len(idx)
		st.windowSeen += len(idx)
		st.lossSum += s.loss * float64(len(idx))
		st.ceSum += s.ce * float64(len(idx))
		st.kdSum += s.kd * float64(len(idx))
		if t.Step%int64(t.cfg.MetricsEvery) == 0 || i == r.perEpoch-1 {
			rec := StepRecord{Type: "step", Step: t.Step, Epoch: t.Epoch + 1, Loss: s.loss, LR: s.lr,
				Accuracy: float64(ok) / float64(len(idx))}
			if t.teacher != nil {
				rec.LossCE, rec.LossKD = &s.ce, &s.kd
			}
			if err := t.recordStep(r, &st, rec, s.gr); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// stepResult is what a training step leaves: its graph (which holds the
// batch's logits and quantizer stats), the batch's labels, its loss with
// its cross-entropy and distillation terms (layers.Graph.LossTerms) and
// the learning rate used.
type stepResult struct {
	gr           *layers.Graph
	y            []int
	loss, ce, kd float64
	lr           float64
}

// step runs batch i (the samples idx) of the epoch forward and backward
// and takes an optimizer step.
func (t *Trainer) step(r *fitRun, i int, idx []int) (stepResult, error) {
	cfg := t.cfg
	t.applyFreezes()
	gr, err := t.gs.get(layers.Train, len(idx))
	if err != nil {
		return stepResult{}, err
	}
	y := r.labels[:len(idx)]
	r.trainSet.FillAugmented(gr.Input(), y, idx, cfg.Norm, cfg.Augment, cfg.Seed, t.Epoch)
	if t.teacher != nil {
		if err := t.teach(r, gr, i, idx, y); err != nil {
			return stepResult{}, err
		}
	}
	if err := gr.Run(y); err != nil {
		return stepResult{}, fmt.Errorf("step %d: %w", t.Step+1, err)
	}
	loss := gr.Loss()
	ce, kd := gr.LossTerms()
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		where := gr.NonFinite()
		if where == "" {
			where = "the loss itself (every layer output is finite)"
		}
		return stepResult{}, fmt.Errorf("step %d (epoch %d, batch %d): loss is %v: first non-finite value in %s: %w",
			t.Step+1, t.Epoch+1, i, loss, where, ErrNonFinite)
	}
	lr := cfg.Schedule.LR(cfg.LR, int(t.Step), r.total)
	if err := t.Opt.Step(lr); err != nil {
		return stepResult{}, fmt.Errorf("step %d: %w", t.Step+1, err)
	}
	t.Step++
	return stepResult{gr: gr, y: y, loss: loss, ce: ce, kd: kd, lr: lr}, nil
}

// recordStep completes rec, the record of the step just taken on gr,
// with the window's samples/s, the resident memory and the quantizer
// records, writes it, updates the progress display and starts a new
// window.
func (t *Trainer) recordStep(r *fitRun, st *epochStats, rec StepRecord, gr *layers.Graph) error {
	rec.SamplesPerSec = float64(st.windowSeen) / time.Since(st.windowStart).Seconds()
	if t.RSS != nil {
		rec.RSSMB = t.RSS()
	}
	if t.Model.Quantized() {
		rec.Quant = quantRecords(gr.QuantStats())
	}
	if err := r.mw.write(rec); err != nil {
		return err
	}
	if t.Progress != nil {
		t.Progress.Update(int(t.Step), st.lossSum/float64(st.seen), float64(st.correct)/float64(st.seen), rec.SamplesPerSec)
	}
	st.windowStart, st.windowSeen = time.Now(), 0
	return nil
}

// endEpoch counts the epoch st summed as done, evaluates on the test set
// (if any) and writes the epoch's record.
func (t *Trainer) endEpoch(r *fitRun, st epochStats) (EpochRecord, error) {
	t.Epoch++
	t.trained += st.seen
	t.trainTime += time.Since(st.start)
	rec := EpochRecord{Type: "epoch", Epoch: t.Epoch, Step: t.Step, TrainLoss: st.lossSum / float64(st.seen),
		TrainAccuracy: float64(st.correct) / float64(st.seen),
		SamplesPerSec: float64(st.seen) / time.Since(st.start).Seconds()}
	if t.teacher != nil {
		ce, kd := st.ceSum/float64(st.seen), st.kdSum/float64(st.seen)
		rec.TrainLossCE, rec.TrainLossKD = &ce, &kd
	}
	if r.test != nil {
		ev, err := evaluate(t.gs, r.test, EvalConfig{Batch: t.cfg.EvalBatch, Norm: t.cfg.Norm})
		if err != nil {
			return EpochRecord{}, fmt.Errorf("epoch %d: %w", t.Epoch, err)
		}
		rec.ValLoss, rec.ValAccuracy, rec.ValN = &ev.Loss, &ev.Accuracy, ev.N
	}
	if err := r.mw.write(rec); err != nil {
		return EpochRecord{}, err
	}
	return rec, nil
}

// SamplesPerSec returns the training throughput of this trainer's Fit
// calls so far: samples over wall time of the training epochs, without
// evaluation or checkpointing.
func (t *Trainer) SamplesPerSec() float64 {
	if t.trainTime <= 0 {
		return 0
	}
	return float64(t.trained) / t.trainTime.Seconds()
}

// applyFreezes switches observers and BN statistics off at their steps.
func (t *Trainer) applyFreezes() {
	if n := t.cfg.FreezeObserversStep; n > 0 && t.Step >= n && t.Model.Quantized() && !t.Model.ObserversFrozen() {
		t.Model.FreezeObservers(true)
	}
	if n := t.cfg.FreezeBNStep; n > 0 && t.Step >= n && !t.Model.BNFrozen() {
		t.Model.FreezeBN(true)
	}
}
