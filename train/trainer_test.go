package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"qat/data"
	"qat/layers"
	"qat/model"
	"qat/safetensors"
)

var mnistNorm = model.Norm{Mean: data.MNISTMean, Std: data.MNISTStd}

// embedded returns the first n embedded training images and the embedded
// test set limited to nt.
func embedded(t testing.TB, n, nt int) (*data.Dataset, *data.Dataset) {
	t.Helper()
	tr, err := data.LoadEmbedded("train")
	if err != nil {
		t.Fatal(err)
	}
	te, err := data.LoadEmbedded("test")
	if err != nil {
		t.Fatal(err)
	}
	return tr.Limit(n), te.Limit(nt)
}

func newModel(t testing.TB, name string, seed uint64) *layers.Model {
	t.Helper()
	s, err := model.Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := layers.NewModel(s, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The trainer learns: the MLP on 1000 embedded images for 3 epochs beats
// chance on the held-out embedded test images by far (seed example: 0.86
// measured when this test was written; the bound leaves room).
func TestFitLearns(t *testing.T) {
	tr, te := embedded(t, 1000, 500)
	m := newModel(t, "mlp", 1)
	tn, err := NewTrainer(m, Config{Epochs: 3, Batch: 50, Norm: mnistNorm})
	if err != nil {
		t.Fatal(err)
	}
	var metrics strings.Builder
	tn.Metrics = &metrics
	last, err := tn.Fit(context.Background(), tr, te)
	if err != nil {
		t.Fatal(err)
	}
	if last.ValAccuracy == nil || *last.ValAccuracy < 0.75 {
		t.Fatalf("test accuracy after 3 epochs: %v", last.ValAccuracy)
	}
	if tn.Step != 60 || tn.Epoch != 3 {
		t.Errorf("step %d epoch %d, want 60 and 3", tn.Step, tn.Epoch)
	}
	lines := strings.Split(strings.TrimSpace(metrics.String()), "\n")
	var steps, epochs int
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, `{"type":"step"`):
			steps++
		case strings.HasPrefix(l, `{"type":"epoch"`):
			epochs++
		}
	}
	if steps != 6 || epochs != 3 {
		t.Errorf("%d step and %d epoch records, want 6 and 3", steps, epochs)
	}
}

// fakeProgress records what a Fit call tells its Progress.
type fakeProgress struct {
	label    string
	total    int
	steps    []int
	finished int
}

func (p *fakeProgress) Start(label string, total int) { p.label, p.total = label, total }
func (p *fakeProgress) Update(step int, loss, acc, samplesPerSec float64) {
	if loss > 0 && acc >= 0 && acc <= 1 && samplesPerSec > 0 {
		p.steps = append(p.steps, step)
	}
}
func (p *fakeProgress) Finish() { p.finished++ }

// Fit tells its Progress of every step record and records what its RSS
// func reports; without one the records have no rss_mb.
func TestFitProgressAndRSS(t *testing.T) {
	tr, _ := embedded(t, 200, 0)
	tn, err := NewTrainer(newModel(t, "mlp", 1), Config{Epochs: 2, Batch: 50, MetricsEvery: 3, Norm: mnistNorm})
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	prog := &fakeProgress{}
	tn.Metrics, tn.Progress, tn.RSS = &metrics, prog, func() float64 { return 42.5 }
	if _, err := tn.Fit(context.Background(), tr, nil); err != nil {
		t.Fatal(err)
	}
	if prog.label != "train" || prog.total != 8 || !slices.Equal(prog.steps, []int{3, 4, 6, 8}) || prog.finished != 1 {
		t.Errorf("progress %+v, want label train, total 8, updates at steps 3 4 6 8 with valid values, one Finish", prog)
	}
	n := 0
	for l := range strings.Lines(metrics.String()) {
		if strings.HasPrefix(l, `{"type":"step"`) {
			n++
			if !strings.Contains(l, `"rss_mb":42.5`) {
				t.Errorf("step record without the RSS func's value: %s", l)
			}
		}
	}
	if n != 4 {
		t.Errorf("%d step records, want 4", n)
	}

	// A failing run finishes its progress too; no RSS func, no rss_mb.
	tn, _ = NewTrainer(newModel(t, "mlp", 1), Config{Batch: 50, Norm: mnistNorm})
	metrics.Reset()
	prog = &fakeProgress{}
	tn.Metrics, tn.Progress = &metrics, prog
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tn.Fit(ctx, tr, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled run: error %v", err)
	}
	if prog.finished != 1 {
		t.Errorf("canceled run: Finish called %d times, want 1", prog.finished)
	}
	tn.Progress = nil
	if _, err := tn.Fit(context.Background(), tr, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(metrics.String(), "rss_mb") {
		t.Errorf("records without an RSS func hold rss_mb:\n%s", metrics.String())
	}
}

// Training 2 epochs in one go and training 1 epoch, saving, loading and
// resuming for the second give bit-identical models: the checkpoint holds
// everything the run depends on (params, BN statistics, optimizer state,
// observer ranges, counters, config).
func TestResumeIsExact(t *testing.T) {
	for _, qat := range []bool{false, true} {
		tr, te := embedded(t, 300, 100)
		cfg := Config{Epochs: 2, Batch: 64, Seed: 3, Norm: mnistNorm, FreezeBNStep: 7}
		prep := func() *layers.Model {
			m := newModel(t, "lenet", 5)
			if qat {
				qc, _ := layers.ParseBits("W4A4")
				if err := m.Quantize(qc); err != nil {
					t.Fatal(err)
				}
			}
			return m
		}
		straight, err := NewTrainer(prep(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := straight.Fit(context.Background(), tr, te); err != nil {
			t.Fatal(err)
		}

		first, _ := NewTrainer(prep(), cfg)
		if err := first.SetEpochs(1); err != nil {
			t.Fatal(err)
		}
		if _, err := first.Fit(context.Background(), tr, te); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "ck.safetensors")
		if err := FromTrainer(first, "embedded").Save(path); err != nil {
			t.Fatal(err)
		}
		ck, err := LoadCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		resumed, err := ck.Resume()
		if err != nil {
			t.Fatal(err)
		}
		if err := resumed.SetEpochs(2); err != nil {
			t.Fatal(err)
		}
		if _, err := resumed.Fit(context.Background(), tr, te); err != nil {
			t.Fatal(err)
		}
		if resumed.Step != straight.Step {
			t.Fatalf("qat=%v: resumed run ends at step %d, straight at %d", qat, resumed.Step, straight.Step)
		}
		for _, p := range straight.Model.Params() {
			q := resumed.Model.Param(p.Name)
			for i := range p.Data {
				if q.Data[i] != p.Data[i] {
					t.Fatalf("qat=%v: %s[%d] = %v after resuming, %v straight", qat, p.Name, i, q.Data[i], p.Data[i])
				}
			}
		}
		for _, q := range straight.Model.Quantizers() {
			a, _ := q.Params()
			b, _ := resumed.Model.Quantizer(q.Name).Params()
			for c := range a.Scale {
				if a.Scale[c] != b.Scale[c] || a.ZeroPoint[c] != b.ZeroPoint[c] {
					t.Fatalf("qat=%v: %s channel %d differs after resuming", qat, q.Name, c)
				}
			}
		}
	}
}

// A NaN weight makes the loss NaN; the error names the step and the param.
func TestNaNLossNamesStepAndLayer(t *testing.T) {
	tr, _ := embedded(t, 64, 10)
	m := newModel(t, "mlp", 1)
	m.Param("fc2.weight").Data[5] = float32(math.NaN())
	tn, _ := NewTrainer(m, Config{Batch: 32, Norm: mnistNorm})
	_, err := tn.Fit(context.Background(), tr, nil)
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("error %v does not wrap ErrNonFinite", err)
	}
	for _, want := range []string{"step 1", "param fc2.weight (element 5"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// A huge learning rate diverges in a later step; the error names the
	// first layer output that overflowed.
	m = newModel(t, "mlp", 1)
	tn, _ = NewTrainer(m, Config{Batch: 32, LR: 1e30, Optimizer: OptimizerConfig{Kind: KindSGD, NoMomentum: true}, Norm: mnistNorm})
	_, err = tn.Fit(context.Background(), tr, nil)
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "step 2") {
		t.Errorf("divergence: %v", err)
	}
}

// Observers freeze at their step: the params after more training equal
// those at the freeze. BN statistics stop changing at theirs.
func TestFreezeSchedule(t *testing.T) {
	tr, _ := embedded(t, 640, 10)
	m := newModel(t, "lenet", 2)
	if err := m.Quantize(layers.QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	tn, _ := NewTrainer(m, Config{Batch: 64, FreezeObserversStep: 4, FreezeBNStep: 4, Norm: mnistNorm})
	if err := tn.SetEpochs(1); err != nil {
		t.Fatal(err)
	}
	// Run 4 steps (one epoch of 256 images), snapshot, then 6 more.
	small := tr.Limit(256)
	if _, err := tn.Fit(context.Background(), small, nil); err != nil {
		t.Fatal(err)
	}
	act, _ := m.Quantizer("c1.activation_post_process").Params()
	rv := append([]float32(nil), m.BatchNorm("b1").RunningVar...)
	if err := tn.SetEpochs(2); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.Fit(context.Background(), tr, nil); err != nil {
		t.Fatal(err)
	}
	if !m.ObserversFrozen() || !m.BNFrozen() {
		t.Fatal("not frozen after the freeze steps")
	}
	after, _ := m.Quantizer("c1.activation_post_process").Params()
	if after.Scale[0] != act.Scale[0] || after.ZeroPoint[0] != act.ZeroPoint[0] {
		t.Errorf("activation params moved after the observer freeze: %v/%v -> %v/%v", act.Scale, act.ZeroPoint, after.Scale, after.ZeroPoint)
	}
	for i, v := range m.BatchNorm("b1").RunningVar {
		if v != rv[i] {
			t.Fatalf("running var %d moved after the BN freeze", i)
		}
	}
}

// Learnable quantizers are calibrated, initialised and then trained: their
// scales move, and PTQ calibration alone gives a usable model.
func TestLearnableAndCalibrate(t *testing.T) {
	tr, te := embedded(t, 512, 200)
	float := newModel(t, "lenet", 4)
	tn, _ := NewTrainer(float, Config{Batch: 64, Norm: mnistNorm})
	if _, err := tn.Fit(context.Background(), tr, nil); err != nil {
		t.Fatal(err)
	}
	base, err := Evaluate(float, te, EvalConfig{Norm: mnistNorm})
	if err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "f.safetensors")
	if err := FromTrainer(tn, "embedded").Save(path); err != nil {
		t.Fatal(err)
	}
	ck, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	ptq := ck.Model
	if err := ptq.Quantize(layers.QuantConfig{Act: layers.QuantSpec{Observer: "percentile"}}); err != nil {
		t.Fatal(err)
	}
	if err := Calibrate(ptq, tr, CalibrateConfig{Batches: 4, Batch: 64, Norm: mnistNorm}); err != nil {
		t.Fatal(err)
	}
	res, err := Evaluate(ptq, te, EvalConfig{Norm: mnistNorm, KeepLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy < base.Accuracy-0.03 || len(res.Logits) != 200*10 {
		t.Errorf("PTQ W8A8 accuracy %.3f vs float %.3f (%d logits)", res.Accuracy, base.Accuracy, len(res.Logits))
	}

	ck, _ = LoadCheckpoint(path)
	qc, _ := layers.ParseBits("W4A4")
	qc.SetLearnable(layers.LearnLSQ)
	if err := ck.Model.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	lt, _ := NewTrainer(ck.Model, Config{Batch: 64, LR: 1e-3, CalibrationBatches: 2, Norm: mnistNorm})
	if _, err := lt.Fit(context.Background(), tr, nil); err != nil {
		t.Fatal(err)
	}
	q := ck.Model.Quantizer("c2.weight_fake_quant")
	if !q.Learning || q.Scale == nil {
		t.Fatal("learnable quantizer not learning after Fit")
	}
	moved := false
	for _, g := range q.Scale.Grad {
		moved = moved || g != 0
	}
	if !moved {
		t.Error("learnable scale got no gradient")
	}
	if len(lt.Opt.State()) != 2*len(ck.Model.Params()) {
		t.Errorf("optimizer holds %d buffers for %d params", len(lt.Opt.State()), len(ck.Model.Params()))
	}
}

func TestCheckpointErrors(t *testing.T) {
	tr, _ := embedded(t, 64, 10)
	tn, _ := NewTrainer(newModel(t, "mlp", 1), Config{Batch: 64, Norm: mnistNorm})
	if _, err := tn.Fit(context.Background(), tr, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.safetensors")
	if err := FromTrainer(tn, "embedded").Save(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(dir, "trunc.safetensors")
	if err := os.WriteFile(trunc, b[:len(b)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(trunc); err == nil || !strings.Contains(err.Error(), trunc) {
		t.Errorf("truncated checkpoint: %v", err)
	}
	f, _ := FromTrainer(tn, "embedded").File()
	f.Tensors["extra"] = f.Tensors["fc1.bias"]
	if _, err := FromFile(f); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("unknown tensor: %v", err)
	}
	f, _ = FromTrainer(tn, "embedded").File()
	f.Metadata[MetaStep] = "-1"
	if _, err := FromFile(f); err == nil || !strings.Contains(err.Error(), MetaStep) {
		t.Errorf("bad step: %v", err)
	}
	f, _ = FromTrainer(tn, "embedded").File()
	delete(f.Tensors, "optimizer.fc3.bias.exp_avg")
	ck, err := FromFile(f)
	if err == nil {
		_, err = ck.Resume()
	}
	if err == nil || !strings.Contains(err.Error(), "fc3.bias.exp_avg") {
		t.Errorf("missing optimizer buffer: %v", err)
	}
	f, _ = FromTrainer(tn, "embedded").File()
	f.Metadata[MetaFormat] = "other/2"
	if _, err := FromFile(f); err == nil || !strings.Contains(err.Error(), "other/2") {
		t.Errorf("wrong format: %v", err)
	}

	// A flipped bit of a weight, of a scale in the metadata, anywhere: the
	// digest rejects it, naming the file.
	for _, at := range []int{len(b) - 1, len(b) / 2, bytes.Index(b, []byte(`qat.step`)) + 12} {
		c := bytes.Clone(b)
		c[at] ^= 0x02
		p := filepath.Join(dir, "flip.safetensors")
		if err := os.WriteFile(p, c, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCheckpoint(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("byte %d flipped: %v", at, err)
		}
	}
	// Unsealed: refused as version 2, read with a warning as version 1.
	f, _ = FromTrainer(tn, "embedded").File()
	delete(f.Metadata, safetensors.MetaDigest)
	if _, err := FromFile(f); err == nil || !strings.Contains(err.Error(), "no qat.sha256 metadata") {
		t.Errorf("unsealed version 2: %v", err)
	}
	f.Metadata[MetaFormat] = FormatV1
	if ck, err := FromFile(f); err != nil {
		t.Errorf("version 1: %v", err)
	} else if len(ck.Warnings) != 1 || !strings.Contains(ck.Warnings[0], "no digest") {
		t.Errorf("version 1: warnings %q", ck.Warnings)
	}
}

// Data that does not fit the model is an error naming both.
func TestDatasetMismatch(t *testing.T) {
	ds := &data.Dataset{Name: "tiny", N: 1, H: 8, W: 8, Images: make([]uint8, 64), Labels: []uint8{0}, Classes: 10}
	_, err := Evaluate(newModel(t, "mlp", 1), ds, EvalConfig{})
	if err == nil || !strings.Contains(err.Error(), "tiny") || !strings.Contains(err.Error(), "mlp") {
		t.Errorf("mismatched data: %v", err)
	}
}

// A checkpoint whose quant config says 4 bits over quantizer params that
// were computed at 8 (the metadata edited, and the file sealed again so
// that only the contradiction is left) is refused, naming the quantizer.
func TestCheckpointQuantMismatch(t *testing.T) {
	tr, _ := embedded(t, 64, 10)
	m := newModel(t, "mlp", 1)
	if err := m.Quantize(layers.QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := Calibrate(m, tr, CalibrateConfig{Batches: 1, Batch: 64, Norm: mnistNorm}); err != nil {
		t.Fatal(err)
	}
	ck := &Checkpoint{Model: m, Norm: mnistNorm, Dataset: "embedded"}
	f, err := ck.File()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(f); err != nil {
		t.Fatalf("the calibrated checkpoint: %v", err)
	}
	f.Metadata[layers.MetaQuant] = `{"weight":{"bits":4},"act":{"bits":4}}`
	f.Seal()
	if _, err := FromFile(f); err == nil || !strings.Contains(err.Error(), "metadata and tensors disagree") {
		t.Errorf("4-bit metadata over 8-bit params: %v", err)
	}
}
