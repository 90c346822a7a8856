package train

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"qat/data"
	"qat/layers"
	"qat/model"
)

// floatTeacher trains a float model of arch on tr for one epoch, saves it
// in dir and returns the checkpoint's path.
func floatTeacher(t *testing.T, arch string, tr *data.Dataset, dir string) string {
	t.Helper()
	tn, err := NewTrainer(newModel(t, arch, 2), Config{Batch: 50, Seed: 1, Norm: mnistNorm})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.Fit(context.Background(), tr, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, arch+".safetensors")
	if err := FromTrainer(tn, "embedded").Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// student loads the float checkpoint at path quantized with bits.
func student(t *testing.T, path, bits string) *layers.Model {
	t.Helper()
	ck, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	qc, err := layers.ParseBits(bits)
	if err != nil {
		t.Fatal(err)
	}
	if err := ck.Model.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	return ck.Model
}

func alpha(a float64) *float64 { return &a }

// fitMetrics runs tn on tr and te and returns its step and epoch records.
func fitMetrics(t *testing.T, tn *Trainer, tr, te *data.Dataset) ([]StepRecord, []EpochRecord) {
	t.Helper()
	var buf bytes.Buffer
	tn.Metrics = &buf
	if _, err := tn.Fit(context.Background(), tr, te); err != nil {
		t.Fatal(err)
	}
	steps, epochs, err := ReadMetrics(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return steps, epochs
}

// With alpha 0 a distilling QAT run is the plain QAT run bit for bit
// (ops.NewDistillation's promise, and the teacher's eval-mode pass
// changes nothing of the student): the same loss at every step, the same
// params, the same test loss, on augmented batches. Its records carry
// the distillation term, which is not 0 (the teacher ran).
func TestDistillAlphaZeroIsPlain(t *testing.T) {
	tr, te := embedded(t, 200, 100)
	dir := t.TempDir()
	path := floatTeacher(t, "lenet", tr, dir)
	cfg := Config{Epochs: 2, Batch: 50, Seed: 7, LR: 1e-4, Norm: mnistNorm, MetricsEvery: 1, Augment: data.Augment{Pad: 2, Flip: true}}
	plain, err := NewTrainer(student(t, path, "W4A4"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantSteps, wantEpochs := fitMetrics(t, plain, tr, te)

	cfg.Distill = &DistillConfig{Alpha: alpha(0)}
	kd, err := NewTrainer(student(t, path, "W4A4"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := LoadTeacher(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := kd.SetTeacher(tc); err != nil {
		t.Fatal(err)
	}
	steps, epochs := fitMetrics(t, kd, tr, te)
	if len(steps) != len(wantSteps) || len(steps) != 8 {
		t.Fatalf("%d step records, plain run %d, want 8", len(steps), len(wantSteps))
	}
	for i, s := range steps {
		if math.Float64bits(s.Loss) != math.Float64bits(wantSteps[i].Loss) {
			t.Errorf("step %d: loss %v, plain run %v", s.Step, s.Loss, wantSteps[i].Loss)
		}
		if s.LossCE == nil || s.LossKD == nil || !(*s.LossKD > 0) || float32(*s.LossCE) != float32(s.Loss) {
			t.Errorf("step %d: loss_ce %v, loss_kd %v: want the loss and a positive KD term", s.Step, s.LossCE, s.LossKD)
		}
		if wantSteps[i].LossCE != nil || wantSteps[i].LossKD != nil {
			t.Errorf("step %d: the plain run records loss terms", s.Step)
		}
	}
	for i, e := range epochs {
		w := wantEpochs[i]
		if e.TrainLoss != w.TrainLoss || *e.ValLoss != *w.ValLoss || e.TrainLossKD == nil || w.TrainLossKD != nil {
			t.Errorf("epoch %d: train loss %v, test loss %v, train_loss_kd %v; plain run %v, %v, %v",
				e.Epoch, e.TrainLoss, *e.ValLoss, e.TrainLossKD, w.TrainLoss, *w.ValLoss, w.TrainLossKD)
		}
	}
	for _, p := range plain.Model.Params() {
		q := kd.Model.Param(p.Name)
		for i := range p.Data {
			if math.Float32bits(q.Data[i]) != math.Float32bits(p.Data[i]) {
				t.Fatalf("%s[%d] = %v distilling with alpha 0, %v plain", p.Name, i, q.Data[i], p.Data[i])
			}
		}
	}
}

// A distilling run saved after its first epoch records its distillation
// config (teacher path and digest, temperature and weight, defaults
// filled in); resumed with the same teacher it ends where the
// uninterrupted run ends, bit for bit. Resumed without a teacher, or with
// another one, it is refused.
func TestDistillResumeIsExact(t *testing.T) {
	tr, te := embedded(t, 200, 50)
	dir := t.TempDir()
	path := floatTeacher(t, "lenet", tr, dir)
	cfg := Config{Epochs: 2, Batch: 64, Seed: 3, Norm: mnistNorm, Distill: &DistillConfig{Temperature: 2}}
	run := func(epochs int) *Trainer {
		tn, err := NewTrainer(student(t, path, "W4A4"), cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := LoadTeacher(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := tn.SetTeacher(tc); err != nil {
			t.Fatal(err)
		}
		if err := tn.SetEpochs(epochs); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.Fit(context.Background(), tr, te); err != nil {
			t.Fatal(err)
		}
		return tn
	}
	straight, first := run(2), run(1)
	ckPath := filepath.Join(dir, "ck.safetensors")
	if err := FromTrainer(first, "embedded").Save(ckPath); err != nil {
		t.Fatal(err)
	}
	ck, err := LoadCheckpoint(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := LoadTeacher(path)
	d := ck.Train.Distill
	if d == nil || d.Teacher != path || d.TeacherDigest != tc.Digest || len(d.TeacherDigest) != 64 || d.Temperature != 2 || d.Alpha == nil || *d.Alpha != DefaultAlpha {
		t.Fatalf("checkpoint's distillation config %+v, want teacher %s with digest %s, T 2, alpha %v", d, path, tc.Digest, DefaultAlpha)
	}

	resumed, err := ck.Resume()
	if err != nil {
		t.Fatal(err)
	}
	resumed.SetEpochs(2)
	if _, err := resumed.Fit(context.Background(), tr, te); err == nil || !strings.Contains(err.Error(), "distils from teacher \""+path) {
		t.Errorf("resumed without its teacher: %v", err)
	}
	other := floatTeacher(t, "mlp", tr, dir)
	oc, err := LoadTeacher(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := resumed.SetTeacher(oc); err == nil || !strings.Contains(err.Error(), "not the run's teacher") {
		t.Errorf("resumed with another teacher: %v", err)
	}
	if err := resumed.SetTeacher(tc); err != nil {
		t.Fatal(err)
	}
	if _, err := resumed.Fit(context.Background(), tr, te); err != nil {
		t.Fatal(err)
	}
	if resumed.Step != straight.Step {
		t.Fatalf("resumed run ends at step %d, straight at %d", resumed.Step, straight.Step)
	}
	for _, p := range straight.Model.Params() {
		q := resumed.Model.Param(p.Name)
		for i := range p.Data {
			if q.Data[i] != p.Data[i] {
				t.Fatalf("%s[%d] = %v after resuming, %v straight", p.Name, i, q.Data[i], p.Data[i])
			}
		}
	}
}

// The teacher may be another architecture (an mlp teaching a lenet, both
// 1x28x28 with 10 classes), which learns: a few QAT steps with alpha 1
// lower the distillation term. A teacher of another input shape or class
// count, a quantized teacher, a teacher for a run that does not distil
// and invalid temperatures or weights are errors saying so.
func TestDistillTeacherChecks(t *testing.T) {
	tr, _ := embedded(t, 200, 0)
	dir := t.TempDir()
	mlp := floatTeacher(t, "mlp", tr, dir)
	lenet := floatTeacher(t, "lenet", tr, dir)
	tn, err := NewTrainer(student(t, lenet, "W8A8"), Config{Epochs: 3, Batch: 50, LR: 1e-3, Norm: mnistNorm, MetricsEvery: 1,
		Distill: &DistillConfig{Alpha: alpha(1)}})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := LoadTeacher(mlp)
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.SetTeacher(tc); err != nil {
		t.Fatal(err)
	}
	_, epochs := fitMetrics(t, tn, tr, nil)
	if first, last := *epochs[0].TrainLossKD, *epochs[2].TrainLossKD; !(last < first) {
		t.Errorf("distilling from an mlp: KD term %v after the first epoch, %v after the third: want it lower", first, last)
	}

	for _, c := range []struct {
		input   []int
		classes int
		want    string
	}{
		{[]int{1, 32, 32}, 10, "takes [1 32 32] inputs with 10 classes, student lenet [1 28 28] with 10: they must match"},
		{[]int{1, 28, 28}, 5, "takes [1 28 28] inputs with 5 classes, student lenet [1 28 28] with 10"},
	} {
		spec, _ := model.Builtin("mlp")
		spec, err := spec.Resized(c.input, c.classes)
		if err != nil {
			t.Fatal(err)
		}
		m, err := layers.NewModel(spec, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := tn.SetTeacher(&Teacher{Model: m, Norm: mnistNorm, Path: "odd.safetensors"}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("teacher on %v with %d classes: %v", c.input, c.classes, err)
		}
	}

	q := filepath.Join(dir, "q.safetensors")
	if err := (&Checkpoint{Model: student(t, lenet, "W8A8"), Norm: mnistNorm}).Save(q); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTeacher(q); err == nil || !strings.Contains(err.Error(), "teacher "+q+" is quantized (W8A8)") {
		t.Errorf("quantized teacher: %v", err)
	}
	if _, err := LoadTeacher(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "teacher "+dir) {
		t.Errorf("missing teacher: %v", err)
	}
	plain, _ := NewTrainer(newModel(t, "lenet", 1), Config{Norm: mnistNorm})
	if err := plain.SetTeacher(tc); err == nil || !strings.Contains(err.Error(), "does not distil") {
		t.Errorf("teacher of a run that does not distil: %v", err)
	}
	for _, d := range []DistillConfig{{Temperature: -1}, {Temperature: math.Inf(1)}, {Alpha: alpha(1.5)}, {Alpha: alpha(-0.5)}, {Alpha: alpha(math.NaN())}} {
		if _, err := NewTrainer(newModel(t, "mlp", 1), Config{Distill: &d}); err == nil || !strings.Contains(err.Error(), "distillation") {
			t.Errorf("distillation config %+v: %v", d, err)
		}
	}
}
