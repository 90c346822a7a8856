package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"qat/data"
	"qat/infer"
	"qat/layers"
	"qat/model"
	"qat/ptq"
	"qat/qmodel"
	"qat/train"
)

// dataFlags are the data options every command shares.
type dataFlags struct {
	spec  string
	limit int
}

// dataHelp lists the --data forms (package data's ResolveSource).
const dataHelp = "data: embedded, mnist, fashion-mnist, a directory of idx files, cifar10:DIR (CIFAR-10 binary) or imagefolder:DIR[:SIZE]"

func (d *dataFlags) add(c *cobra.Command, def string) {
	help := dataHelp
	if def == "" {
		help += " (default: the checkpoint's)"
	}
	c.Flags().StringVar(&d.spec, "data", def, help)
	c.Flags().IntVar(&d.limit, "limit", 0, "use only the first N training images (0: all)")
}

// or returns --data, or the checkpoint's dataset when --data is empty.
func (d *dataFlags) or(checkpoint string) string {
	if d.spec == "" {
		return checkpoint
	}
	return d.spec
}

// required returns d.or(dataset), the data of the checkpoint or model at
// path, or a usage error when neither --data nor the file names one.
func (d *dataFlags) required(dataset, path string) (string, error) {
	spec := d.or(dataset)
	if spec == "" {
		return "", usagef("--data is required: %s does not record its dataset", path)
	}
	return spec, nil
}

// splits returns the dataset of a command that reads the checkpoint at
// path, recording dataset (required), and its training split (capped by
// --limit) and test split.
func (d *dataFlags) splits(dataset, path string) (spec string, trainSet, test *data.Dataset, err error) {
	if spec, err = d.required(dataset, path); err != nil {
		return "", nil, nil, err
	}
	trainSet, test, _, err = datasets(spec, d.limit)
	return spec, trainSet, test, err
}

// datasets loads the training and test splits of spec; limit caps the
// training split. The normalisation is the dataset's: MNIST's or
// Fashion-MNIST's published constants, the embedded sample's MNIST ones,
// and for a directory the mean and std of its training images.
func datasets(spec string, limit int) (trainSet, test *data.Dataset, norm model.Norm, err error) {
	if limit < 0 {
		return nil, nil, norm, usagef("--limit %d is negative", limit)
	}
	if _, err := data.ResolveSource(spec); err != nil {
		return nil, nil, norm, usageError{fmt.Errorf("--data: %w", err)}
	}
	return data.Splits(spec, limit)
}

// threadsFlag is --threads, the goroutines of training and evaluation.
type threadsFlag int

func (t *threadsFlag) add(c *cobra.Command) {
	c.Flags().IntVar((*int)(t), "threads", runtime.GOMAXPROCS(0),
		"goroutines of training and evaluation, int8 inference included (results do not depend on it); the default is the number of cores")
}

// apply checks --threads and makes it the thread count of every graph
// and int8 evaluation (layers.SetThreads).
func (t threadsFlag) apply() error {
	if t < 1 {
		return usagef("--threads %d: want at least 1", int(t))
	}
	layers.SetThreads(int(t))
	return nil
}

// runFlags are the options of a training run.
type runFlags struct {
	epochs    int
	batch     int
	lr        float64
	seed      uint64
	optimizer string
	schedule  string
	warmup    int
	stepSize  int
	out       string
	metrics   string
	resume    string
	json      bool
	quiet     bool
	threads   threadsFlag
	augment   data.Augment
}

func (r *runFlags) add(c *cobra.Command, lr float64) {
	r.threads.add(c)
	f := c.Flags()
	f.IntVar(&r.epochs, "epochs", 1, "epochs to train (a resumed run: epochs to reach)")
	f.IntVar(&r.batch, "batch", 128, "batch size")
	f.Float64Var(&r.lr, "lr", lr, "base learning rate")
	f.Uint64Var(&r.seed, "seed", 0, "seed of the data order (and of the initial weights for train)")
	f.StringVar(&r.optimizer, "optimizer", "adam", "optimizer: sgd (momentum 0.9), adam or adamw")
	f.StringVar(&r.schedule, "schedule", "constant", "learning-rate schedule: constant, step or cosine")
	f.IntVar(&r.warmup, "warmup", 0, "linear warmup steps before the schedule")
	f.IntVar(&r.stepSize, "step-size", 0, "steps between decays of the step schedule (x0.1 each)")
	f.StringVar(&r.out, "out", "", "checkpoint to write after every epoch (required)")
	f.StringVar(&r.metrics, "metrics", "", "JSONL metrics file (default: the checkpoint path with .metrics.jsonl)")
	f.StringVar(&r.resume, "resume", "", "continue the run saved in this checkpoint (optimizer state, step, epoch)")
	f.BoolVar(&r.json, "json", false, "print the result as JSON")
	f.BoolVar(&r.quiet, "quiet", false, "no progress display")
	f.IntVar(&r.augment.Pad, "augment-pad", 0, "augmentation: random crops of the image zero-padded by this many pixels per side (0: none)")
	f.BoolVar(&r.augment.Flip, "augment-flip", false, "augmentation: random horizontal flips")
}

func (r *runFlags) config(norm model.Norm) train.Config {
	return train.Config{Epochs: r.epochs, Batch: r.batch, LR: r.lr, Seed: r.seed, Norm: norm, Augment: r.augment,
		Optimizer: train.OptimizerConfig{Kind: r.optimizer},
		Schedule:  train.ScheduleConfig{Kind: r.schedule, WarmupSteps: r.warmup, StepSize: r.stepSize}}
}

// check validates the flags that need no data, refuses outputs that name
// an input (the command's own inputs, and --resume but as --out: a run may
// continue in place, each checkpoint replacing the last atomically) and
// applies --threads.
func (r *runFlags) check(inputs ...pathFlag) error {
	if r.out == "" {
		return usagef("--out is required: the checkpoint to write")
	}
	if r.metrics == "" {
		r.metrics = strings.TrimSuffix(r.out, filepath.Ext(r.out)) + ".metrics.jsonl"
	}
	if err := distinct(inputs, []pathFlag{{"--out", r.out}, {"--metrics", r.metrics}}); err != nil {
		return err
	}
	if err := distinct([]pathFlag{{"--resume", r.resume}}, []pathFlag{{"--metrics", r.metrics}}); err != nil {
		return err
	}
	if r.epochs < 1 {
		return usagef("--epochs %d: want at least 1", r.epochs)
	}
	if r.batch < 1 {
		return usagef("--batch %d: want at least 1", r.batch)
	}
	return r.threads.apply()
}

// fit runs t on the data, saving a checkpoint after every epoch, and
// prints the result.
func (r *runFlags) fit(c *cobra.Command, t *train.Trainer, dataSpec string, trainSet, test *data.Dataset) error {
	if err := os.MkdirAll(filepath.Dir(r.out), 0o755); err != nil {
		return err
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if r.resume != "" {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		// The steps after the checkpoint are about to run again.
		if err := trimMetrics(r.metrics, t.Step); err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
	}
	// Opened at the first record: a run that fails before its first step
	// leaves the metrics of an earlier run at the same path as they were.
	mf := &lazyFile{path: r.metrics, flags: flags}
	defer mf.Close()
	t.Metrics, t.RSS = mf, rssMB
	if !r.quiet {
		t.Progress = &trainProgress{w: c.ErrOrStderr()}
	}
	t.Checkpoint = func(t *train.Trainer) error {
		return train.FromTrainer(t, dataSpec).Save(r.out)
	}
	last, err := t.Fit(c.Context(), trainSet, test)
	if err != nil {
		return err
	}
	if err := mf.Close(); err != nil {
		return fmt.Errorf("--metrics: %w", err)
	}
	res := map[string]any{"out": r.out, "metrics": r.metrics, "epochs": t.Epoch, "steps": t.Step,
		"train_loss": last.TrainLoss, "train_accuracy": last.TrainAccuracy, "samples_per_sec": t.SamplesPerSec()}
	if last.ValAccuracy != nil {
		res["accuracy"], res["loss"], res["n"] = *last.ValAccuracy, *last.ValLoss, last.ValN
	}
	if t.Model.Quantized() {
		res["quant"] = t.Model.Quant.String()
	}
	if r.json {
		return printJSON(c.OutOrStdout(), res)
	}
	w := c.OutOrStdout()
	fmt.Fprintf(w, "%s: %d epochs, %d steps, train loss %.4f, %.0f samples/s\n", r.out, t.Epoch, t.Step, last.TrainLoss, t.SamplesPerSec())
	if last.ValAccuracy != nil {
		fmt.Fprintf(w, "test accuracy %.2f%% (n=%d), loss %.4f\n", 100**last.ValAccuracy, last.ValN, *last.ValLoss)
	}
	return nil
}

// resumeTrainer loads a checkpoint and its trainer, raising the epoch
// target when --epochs was given.
func (r *runFlags) resumeTrainer(c *cobra.Command) (*train.Trainer, *train.Checkpoint, error) {
	ck, err := loadCheckpoint(r.resume)
	if err != nil {
		return nil, nil, err
	}
	t, err := ck.Resume()
	if err != nil {
		return nil, nil, fmt.Errorf("--resume %s: %w", r.resume, err)
	}
	if c.Flags().Changed("epochs") {
		if err := t.SetEpochs(r.epochs); err != nil {
			return nil, nil, usageError{err}
		}
	}
	if t.Epoch >= t.Config().Epochs {
		return nil, nil, usagef("--resume %s has already trained %d epochs of %d: nothing to do (give --epochs above %d to train further)",
			r.resume, t.Epoch, t.Config().Epochs, t.Epoch)
	}
	for _, f := range []string{"batch", "lr", "seed", "optimizer", "schedule", "warmup", "step-size", "augment-pad", "augment-flip", "model",
		"bits", "quant-config", "learnable", "observer", "no-fold-bn", "freeze-observers", "freeze-bn", "calibration-batches",
		"distill-temperature", "distill-alpha"} {
		if c.Flags().Changed(f) {
			return nil, nil, usagef("--%s cannot change a resumed run (its config is in %s)", f, r.resume)
		}
	}
	return t, ck, nil
}

// continueRun resumes the --resume checkpoint's run on --data, or on the
// checkpoint's data when --data is not given (for train, whose --data has
// a default, when the flag was not set), with the teacher of a
// distilling run: at the path it records, or at teacher ("": none
// given).
func (r *runFlags) continueRun(c *cobra.Command, d dataFlags, dataHasDefault bool, teacher string) error {
	t, ck, err := r.resumeTrainer(c)
	if err != nil {
		return err
	}
	if err := r.resumeTeacher(t, teacher); err != nil {
		return err
	}
	spec := d.or(ck.Dataset)
	if dataHasDefault && !c.Flags().Changed("data") {
		spec = ck.Dataset
	}
	if ck.Dataset != "" && spec != ck.Dataset {
		return usagef("--data %s cannot change a resumed run: %s was trained on %s", spec, r.resume, ck.Dataset)
	}
	tr, te, _, err := datasets(spec, d.limit)
	if err != nil {
		return err
	}
	return r.fit(c, t, spec, tr, te)
}

// resumeTeacher gives the resumed run t its teacher when it distils: the
// checkpoint at teacher (which must be the recorded one, by content
// digest) or at the path the run recorded.
func (r *runFlags) resumeTeacher(t *train.Trainer, teacher string) error {
	d := t.Config().Distill
	if d == nil {
		if teacher != "" {
			return usagef("--teacher cannot make a resumed run distil: %s does not", r.resume)
		}
		return nil
	}
	path := d.Teacher
	if teacher != "" {
		path = teacher
	}
	if err := distinct([]pathFlag{{"the teacher of --resume", path}}, []pathFlag{{"--out", r.out}, {"--metrics", r.metrics}}); err != nil {
		return err
	}
	tc, err := loadTeacher(path)
	if err != nil {
		return fmt.Errorf("--resume %s distils from %s: %w", r.resume, d.Teacher, err)
	}
	if err := t.SetTeacher(tc); err != nil {
		return fmt.Errorf("--resume %s: %w", r.resume, err)
	}
	return nil
}

// loadTeacher is train.LoadTeacher, printing its warnings.
func loadTeacher(path string) (*train.Teacher, error) {
	tc, err := train.LoadTeacher(path)
	if err == nil {
		warn(path, tc.Warnings)
	}
	return tc, err
}

// distillFlags are finetune's distillation options.
type distillFlags struct {
	teacher            string
	temperature, alpha float64
}

func (k *distillFlags) add(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&k.teacher, "teacher", "", "float checkpoint to distil from (any architecture with the student's input shape and classes); with --resume: the recorded teacher's checkpoint at another path")
	f.Float64Var(&k.temperature, "distill-temperature", train.DefaultTemperature, "distillation temperature T (with --teacher)")
	f.Float64Var(&k.alpha, "distill-alpha", train.DefaultAlpha, "weight of the distillation term, 0 to 1 (with --teacher): loss = (1-alpha)*CE + alpha*T^2*KL; 0 trains on the labels and still reports loss_kd")
}

// load returns the distillation config of the flags and the --teacher
// checkpoint (nil, nil without --teacher), refusing distillation options
// without a teacher and values out of range.
func (k *distillFlags) load(c *cobra.Command) (*train.DistillConfig, *train.Teacher, error) {
	if k.teacher == "" {
		for _, f := range []string{"distill-temperature", "distill-alpha"} {
			if c.Flags().Changed(f) {
				return nil, nil, usagef("--%s needs --teacher: there is nothing to distil from", f)
			}
		}
		return nil, nil, nil
	}
	switch {
	case !(k.temperature > 0) || math.IsInf(k.temperature, 0):
		return nil, nil, usagef("--distill-temperature %v: want a finite number above 0", k.temperature)
	case !(k.alpha >= 0 && k.alpha <= 1):
		return nil, nil, usagef("--distill-alpha %v: want 0 to 1", k.alpha)
	}
	tc, err := loadTeacher(k.teacher)
	if err != nil {
		return nil, nil, fmt.Errorf("--teacher: %w", err)
	}
	return &train.DistillConfig{Temperature: k.temperature, Alpha: &k.alpha}, tc, nil
}

func newTrainCmd() *cobra.Command {
	var r runFlags
	var d dataFlags
	var arch string
	c := &cobra.Command{
		Use:   "train",
		Short: "train a float model",
		Long: `Train a float model from scratch (PyTorch default initialisation) and write a
checkpoint after every epoch, with per-step and per-epoch metrics as JSONL.

--model is mlp (784-256-128-10), lenet (two conv+BN+ReLU+pool blocks, fc 128,
fc 10) or a JSON model config file.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var specFile []pathFlag
			if st, err := os.Stat(arch); err == nil && st.Mode().IsRegular() {
				specFile = append(specFile, pathFlag{"--model", arch})
			}
			if err := r.check(specFile...); err != nil {
				return err
			}
			if r.resume != "" {
				return r.continueRun(c, d, true, "")
			}
			spec, err := model.Load(arch)
			if err != nil {
				return usageError{fmt.Errorf("--model: %w", err)}
			}
			tr, te, norm, err := datasets(d.spec, d.limit)
			if err != nil {
				return err
			}
			m, err := layers.NewModel(spec, r.seed)
			if err != nil {
				return err
			}
			t, err := train.NewTrainer(m, r.config(norm))
			if err != nil {
				return usageError{err}
			}
			return r.fit(c, t, d.spec, tr, te)
		},
	}
	c.Flags().StringVar(&arch, "model", "lenet", "mlp, lenet or a model config file")
	d.add(c, data.SourceEmbedded)
	r.add(c, 1e-3)
	return c
}

// quantFlags choose the quantization of finetune and calibrate.
type quantFlags struct {
	bits      string
	config    string
	learnable string
	observer  string
	noFold    bool
	// defaultObserver is the activation and input observer of the specs
	// that name none, unless --observer sets them all ("" keeps the
	// quant config's defaults).
	defaultObserver string
	// ptq is calibrate's post-training recovery flags, added to a quant
	// config's ptq options; nil for finetune, which refuses them.
	ptq *layers.PTQConfig
}

func (q *quantFlags) add(c *cobra.Command, observerHelp string) {
	f := c.Flags()
	f.StringVar(&q.bits, "bits", "W8A8", "weight and activation bits, W<w>A<a> (2 to 8 each)")
	f.StringVar(&q.config, "quant-config", "", "JSON quant config (per-layer bits, schemes, observers); overrides --bits")
	f.StringVar(&q.observer, "observer", "", observerHelp)
	f.BoolVar(&q.noFold, "no-fold-bn", false, "keep BatchNorm separate instead of folding it into the conv (PyTorch ConvBn)")
}

func (q *quantFlags) quantConfig() (layers.QuantConfig, error) {
	var qc layers.QuantConfig
	if q.config != "" {
		b, err := os.ReadFile(q.config)
		if err != nil {
			return qc, usageError{fmt.Errorf("--quant-config: %w", err)}
		}
		if qc, err = layers.ParseQuantConfig(b); err != nil {
			return qc, usageError{fmt.Errorf("--quant-config %s: %w", q.config, err)}
		}
	} else {
		var err error
		if qc, err = layers.ParseBits(q.bits); err != nil {
			return qc, usageError{fmt.Errorf("--bits: %w", err)}
		}
	}
	set := func(s *layers.QuantSpec) {
		switch {
		case q.observer != "":
			s.Observer = q.observer
		case s.Observer == "":
			s.Observer = q.defaultObserver
		}
	}
	set(&qc.Act)
	if qc.Input != nil {
		set(qc.Input)
	}
	for name, l := range qc.Layers {
		if l.Act != nil {
			set(l.Act)
			qc.Layers[name] = l
		}
	}
	switch q.learnable {
	case "", "none":
	case layers.LearnLSQ, layers.LearnLSQPlus, layers.LearnPACT:
		qc.SetLearnable(q.learnable)
	default:
		return qc, usagef("--learnable %q: want lsq, lsq+ or pact", q.learnable)
	}
	if q.noFold {
		qc.NoFoldBN = true
	}
	switch {
	case q.ptq == nil && qc.PTQ != nil:
		return qc, usagef("--quant-config %s: ptq options are for post-training calibration (qat calibrate), not fine-tuning", q.config)
	case q.ptq != nil && q.ptq.Any():
		merged := *q.ptq
		if c := qc.PTQ; c != nil {
			merged.CLE = merged.CLE || c.CLE
			merged.BiasCorrection = merged.BiasCorrection || c.BiasCorrection
			if merged.AdaRound == nil {
				merged.AdaRound = c.AdaRound
			}
		}
		qc.PTQ = &merged
	}
	return qc, nil
}

// quantize loads a float checkpoint and quantizes its model.
func (q *quantFlags) quantize(from string) (*train.Checkpoint, error) {
	if from == "" {
		return nil, usagef("--from is required: the float checkpoint")
	}
	ck, err := loadCheckpoint(from)
	if err != nil {
		return nil, err
	}
	if ck.Model.Quantized() {
		return nil, fmt.Errorf("--from %s is already quantized (%v); start from its float checkpoint", from, ck.Model.Quant)
	}
	qc, err := q.quantConfig()
	if err != nil {
		return nil, err
	}
	if err := ck.Model.Quantize(qc); err != nil {
		return nil, usageError{err}
	}
	return ck, nil
}

func newFinetuneCmd() *cobra.Command {
	var r runFlags
	var d dataFlags
	var q quantFlags
	var from string
	var freezeObs, freezeBN int64
	var calib int
	var kd distillFlags
	c := &cobra.Command{
		Use:   "finetune",
		Short: "fine-tune a float checkpoint with fake quantization (QAT)",
		Long: `Fine-tune a float checkpoint with fake quantization. Weights get per-channel
symmetric fake quantization, activations per-tensor affine after their fused
ReLU, and the input is quantized too; conv+BN pairs are folded as in PyTorch's
ConvBn modules. Observers calibrate during training until --freeze-observers
steps, BatchNorm statistics freeze at --freeze-bn steps. --learnable lsq or
lsq+ learns the scales (and zero points) instead, initialised from observed
ranges over --calibration-batches batches; --learnable pact learns the
clipping level of each ReLU output (PACT) and keeps observers for weights.

--teacher distils from a float checkpoint (Hinton et al. 2015): each step
runs it in eval mode on the same augmented batch and the loss becomes
(1-alpha)*CE(student, labels) + alpha*T^2*KL(softmax(teacher/T) ||
softmax(student/T)), T --distill-temperature, alpha --distill-alpha; the
metrics hold both terms (loss_ce, loss_kd). The run's checkpoints record the
teacher, which --resume loads again.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := r.check(pathFlag{"--from", from}, pathFlag{"--quant-config", q.config}, pathFlag{"--teacher", kd.teacher}); err != nil {
				return err
			}
			if r.resume != "" {
				return r.continueRun(c, d, false, kd.teacher)
			}
			distill, teacher, err := kd.load(c)
			if err != nil {
				return err
			}
			ck, err := q.quantize(from)
			if err != nil {
				return err
			}
			spec := d.or(ck.Dataset)
			tr, te, _, err := datasets(spec, d.limit)
			if err != nil {
				return err
			}
			cfg := r.config(ck.Norm)
			cfg.FreezeObserversStep, cfg.FreezeBNStep, cfg.CalibrationBatches = freezeObs, freezeBN, calib
			cfg.Distill = distill
			t, err := train.NewTrainer(ck.Model, cfg)
			if err != nil {
				return usageError{err}
			}
			if teacher != nil {
				if err := t.SetTeacher(teacher); err != nil {
					return fmt.Errorf("--teacher: %w", err)
				}
			}
			return r.fit(c, t, spec, tr, te)
		},
	}
	c.Flags().StringVar(&from, "from", "", "float checkpoint to start from (required)")
	c.Flags().StringVar(&q.learnable, "learnable", "", "learn quantizer scales: lsq, lsq+ (scales and zero points) or pact (activation clipping)")
	c.Flags().Int64Var(&freezeObs, "freeze-observers", 0, "freeze observers after this many steps (0: never)")
	c.Flags().Int64Var(&freezeBN, "freeze-bn", 0, "freeze BatchNorm statistics after this many steps (0: never)")
	c.Flags().IntVar(&calib, "calibration-batches", 32, "batches observed to initialise learnable quantizers")
	q.add(c, "activation observer: moving-average-minmax (default), minmax, percentile, mse or entropy")
	kd.add(c)
	d.add(c, "")
	r.add(c, 1e-4)
	return c
}

// calibrateCmd is qat calibrate's flags.
type calibrateCmd struct {
	d              dataFlags
	q              quantFlags
	from, out      string
	batches, batch int
	asJSON         bool
	threads        threadsFlag
	// Post-training recovery (package ptq): adaroundIters is meant only
	// with adaround (adaroundSet: --adaround-iters was given).
	cle, biasCorrection, adaround bool
	adaroundIters                 int
	adaroundSet                   bool
}

func newCalibrateCmd() *cobra.Command {
	var p calibrateCmd
	c := &cobra.Command{
		Use:   "calibrate",
		Short: "post-training quantization: calibrate a float checkpoint",
		Long: `Quantize a float checkpoint without training (PTQ): run --batches training
batches through the model with observers on, freeze the observed params and
write the quantized checkpoint, then report its fake-quant test accuracy.
--observer chooses the activation and input observer; weights use per-channel
min/max.

Post-training recovery (package ptq; also the "ptq" object of a quant
config): --cle equalizes the weight ranges of consecutive layers before
calibration (cross-layer equalization); --bias-correction subtracts each
quantized layer's mean output error on the calibration batches from its
bias; --adaround learns each weight's rounding layer by layer on them
(--adaround-iters steps per layer). What they did goes to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p.adaroundSet = c.Flags().Changed("adaround-iters")
			return p.run(c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	c.Flags().StringVar(&p.from, "from", "", "float checkpoint (required)")
	c.Flags().StringVar(&p.out, "out", "", "quantized checkpoint to write (required)")
	c.Flags().IntVar(&p.batches, "batches", 32, "calibration batches")
	c.Flags().IntVar(&p.batch, "batch", 128, "calibration batch size")
	c.Flags().BoolVar(&p.asJSON, "json", false, "print the result as JSON")
	c.Flags().BoolVar(&p.cle, "cle", false, "cross-layer equalization before calibration")
	c.Flags().BoolVar(&p.biasCorrection, "bias-correction", false, "empirical bias correction after calibration")
	c.Flags().BoolVar(&p.adaround, "adaround", false, "learn the weight rounding layer by layer (AdaRound)")
	c.Flags().IntVar(&p.adaroundIters, "adaround-iters", layers.DefaultAdaRoundIters, "AdaRound steps per layer (with --adaround)")
	p.threads.add(c)
	p.q.add(c, "activation observer: minmax (default), moving-average-minmax, percentile, mse or entropy")
	p.d.add(c, "")
	return c
}

// check validates the flags.
func (p *calibrateCmd) check() error {
	if p.out == "" {
		return usagef("--out is required: the checkpoint to write")
	}
	if err := distinct([]pathFlag{{"--from", p.from}, {"--quant-config", p.q.config}}, []pathFlag{{"--out", p.out}}); err != nil {
		return err
	}
	if p.batches < 1 || p.batch < 1 {
		return usagef("--batches %d, --batch %d: want at least 1 each", p.batches, p.batch)
	}
	switch {
	case p.adaroundSet && !p.adaround:
		return usagef("--adaround-iters needs --adaround")
	case p.adaroundIters < 1:
		return usagef("--adaround-iters %d: want at least 1", p.adaroundIters)
	}
	return p.threads.apply()
}

// run quantizes and calibrates the checkpoint with the post-training
// recovery the flags and quant config select (ptq.Calibrate), evaluates
// and saves it; what the recovery did goes to logw.
func (p *calibrateCmd) run(w, logw io.Writer) error {
	if err := p.check(); err != nil {
		return err
	}
	// Min/max by default, for the specs that name no observer of their
	// own (a --quant-config's observers stand).
	p.q.defaultObserver = "minmax"
	p.q.ptq = &layers.PTQConfig{CLE: p.cle, BiasCorrection: p.biasCorrection}
	if p.adaround {
		p.q.ptq.AdaRound = &layers.AdaRoundConfig{Iters: p.adaroundIters}
	}
	ck, err := p.q.quantize(p.from)
	if err != nil {
		return err
	}
	m := ck.Model
	spec, tr, te, err := p.d.splits(ck.Dataset, p.from)
	if err != nil {
		return err
	}
	rep, err := ptq.Calibrate(m, tr, train.CalibrateConfig{Batches: p.batches, Batch: p.batch, Norm: ck.Norm})
	if err != nil {
		return err
	}
	if err := rep.Write(logw); err != nil {
		return err
	}
	res, err := train.Evaluate(m, te, train.EvalConfig{Norm: ck.Norm})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.out), 0o755); err != nil {
		return err
	}
	save := &train.Checkpoint{Model: m, Norm: ck.Norm, Dataset: spec}
	if err := save.Save(p.out); err != nil {
		return err
	}
	kind := "fake-quant " + m.Quant.String()
	if s := m.Quant.PTQ.String(); s != "" {
		kind += " + " + s
	}
	return report(w, p.asJSON, p.out, m.Spec.Name, kind, res)
}

// evalCmd is qat eval's flags.
type evalCmd struct {
	d           dataFlags
	model, dump string
	batch       int
	asJSON      bool
	threads     threadsFlag
}

func newEvalCmd() *cobra.Command {
	var e evalCmd
	c := &cobra.Command{
		Use:   "eval",
		Short: "evaluate a checkpoint or an int8 model on the test set",
		Long: `Evaluate a float or quantized checkpoint, or an int8 model file (qat export),
on the test split. A quantized checkpoint runs with every quantizer frozen
and BatchNorm on running statistics; its quantized conv and linear layers
compute what the exported int8 model computes. An int8 model runs on the
int8 runtime, from the raw pixels. --limit caps the number of test images;
--dump writes the float32 logits (dequantized for an int8 model), shape
[N, classes], as a .npy file.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return e.run(c.OutOrStdout()) },
	}
	c.Flags().StringVar(&e.model, "model", "", "checkpoint or int8 model to evaluate (required)")
	c.Flags().IntVar(&e.batch, "batch", 250, "evaluation batch size")
	c.Flags().BoolVar(&e.asJSON, "json", false, "print accuracy, n, loss and samples_per_sec as JSON")
	c.Flags().StringVar(&e.d.spec, "data", "", dataHelp+" (default: the checkpoint's; required for an int8 model)")
	c.Flags().IntVar(&e.d.limit, "limit", 0, "evaluate only the first N test images (0: all)")
	c.Flags().StringVar(&e.dump, "dump", "", "write the float32 logits [N, classes] to this .npy file")
	e.threads.add(c)
	return c
}

// check validates the flags.
func (e *evalCmd) check() error {
	switch {
	case e.model == "":
		return usagef("--model is required: the checkpoint or int8 model to evaluate")
	case e.batch < 1:
		return usagef("--batch %d: want at least 1", e.batch)
	case e.d.limit < 0:
		return usagef("--limit %d is negative", e.d.limit)
	}
	if err := distinct([]pathFlag{{"--model", e.model}}, []pathFlag{{"--dump", e.dump}}); err != nil {
		return err
	}
	return e.threads.apply()
}

// run evaluates the model on the test split, writes the dump and reports.
func (e *evalCmd) run(w io.Writer) error {
	if err := e.check(); err != nil {
		return err
	}
	qm, ck, err := loadAny(e.model)
	if err != nil {
		return err
	}
	var dataset string // an int8 model records none
	if ck != nil {
		dataset = ck.Dataset
	}
	spec, err := e.d.required(dataset, e.model)
	if err != nil {
		return err
	}
	_, te, _, err := datasets(spec, 0)
	if err != nil {
		return err
	}
	if e.d.limit > 0 {
		te = te.Limit(e.d.limit)
	}
	var res train.EvalResult
	var logits []float32
	var kind, name string
	if ck != nil {
		res, logits, kind, name, err = e.checkpoint(ck, te)
	} else {
		res, logits, kind, name, err = e.int8(qm, te)
	}
	if err != nil {
		return err
	}
	if e.dump != "" {
		if err := writeNPY(e.dump, logits, res.N, len(logits)/max(res.N, 1)); err != nil {
			return err
		}
	}
	return report(w, e.asJSON, e.model, name, kind, res)
}

// checkpoint evaluates a float or quantized checkpoint on te.
func (e *evalCmd) checkpoint(ck *train.Checkpoint, te *data.Dataset) (res train.EvalResult, logits []float32, kind, name string, err error) {
	if res, err = train.Evaluate(ck.Model, te, train.EvalConfig{Batch: e.batch, Norm: ck.Norm, KeepLogits: e.dump != ""}); err != nil {
		return res, nil, "", "", err
	}
	kind = "float"
	if ck.Model.Quantized() {
		kind = "fake-quant " + ck.Model.Quant.String()
	}
	return res, res.Logits, kind, ck.Model.Spec.Name, nil
}

// int8 evaluates an int8 model on te with the int8 runtime.
func (e *evalCmd) int8(qm *qmodel.Model, te *data.Dataset) (res train.EvalResult, logits []float32, kind, name string, err error) {
	net, err := infer.New(qm)
	if err != nil {
		return res, nil, "", "", err
	}
	ir, err := infer.Evaluate(net, te.Images, te.Labels, infer.EvalConfig{Batch: e.batch, Threads: layers.Threads(), KeepCodes: e.dump != ""})
	if err != nil {
		return res, nil, "", "", err
	}
	res = train.EvalResult{N: ir.N, Correct: ir.Correct, Accuracy: ir.Accuracy, Correct5: ir.Correct5, Top5: ir.Top5, Loss: ir.Loss, SamplesPerSec: ir.SamplesPerSec}
	kind = "int8 (" + string(qm.Requant) + " requant)"
	switch {
	case net.FloatOutput():
		logits, kind = ir.Logits, "int8 ("+string(qm.Requant)+" requant, dynamic linear layers)"
	case e.dump != "":
		logits = make([]float32, len(ir.Codes))
		net.Dequantize(logits, ir.Codes)
	}
	return res, logits, kind, qm.Name, nil
}

func report(w io.Writer, asJSON bool, path, name, kind string, res train.EvalResult) error {
	if asJSON {
		return printJSON(w, map[string]any{"model": path, "kind": kind, "accuracy": res.Accuracy, "top5": res.Top5, "n": res.N,
			"loss": res.Loss, "samples_per_sec": res.SamplesPerSec})
	}
	_, err := fmt.Fprintf(w, "%s (%s %s): accuracy %.2f%% (%d/%d), top-5 %.2f%%, loss %.4f, %.0f samples/s\n",
		path, name, kind, 100*res.Accuracy, res.Correct, res.N, 100*res.Top5, res.Loss, res.SamplesPerSec)
	return err
}
