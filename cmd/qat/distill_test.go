package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qat/train"
)

// qatOK runs qat and fails the test unless it exits 0.
func qatOK(t *testing.T, args ...string) {
	t.Helper()
	if code, _, errs := qat(t, args...); code != 0 {
		t.Fatalf("qat %v: exit %d: %s", args, code, errs)
	}
}

// finetune --teacher writes both loss terms into the metrics and records
// the teacher in its checkpoints; --resume continues with it (from its
// recorded path, or from a copy that --teacher names) and ends where the
// uninterrupted run ends, byte for byte; another teacher is refused.
func TestFinetuneTeacher(t *testing.T) {
	dir := t.TempDir()
	float := filepath.Join(dir, "float.safetensors")
	qatOK(t, "train", "--model", "mlp", "--limit", "256", "--epochs", "1", "--out", float, "--quiet")
	other := filepath.Join(dir, "other.safetensors")
	qatOK(t, "train", "--model", "mlp", "--limit", "256", "--epochs", "1", "--seed", "9", "--out", other, "--quiet")
	ft := func(out string, args ...string) {
		t.Helper()
		qatOK(t, append([]string{"finetune", "--from", float, "--bits", "W4A4", "--limit", "256", "--out", out, "--quiet", "--distill-alpha", "0.7"}, args...)...)
	}
	straight := filepath.Join(dir, "straight.safetensors")
	ft(straight, "--teacher", float, "--epochs", "2")
	steps, epochs, err := train.ReadMetricsFile(filepath.Join(dir, "straight.metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) == 0 || steps[0].LossCE == nil || steps[0].LossKD == nil || len(epochs) != 2 || epochs[1].TrainLossKD == nil {
		t.Fatalf("metrics without the loss terms: %+v, %+v", steps, epochs)
	}
	ck, err := train.LoadCheckpoint(straight)
	if err != nil {
		t.Fatal(err)
	}
	if d := ck.Train.Distill; d == nil || d.Teacher != float || d.Temperature != train.DefaultTemperature || *d.Alpha != 0.7 {
		t.Fatalf("checkpoint's distillation config %+v", d)
	}

	resumed := filepath.Join(dir, "resumed.safetensors")
	ft(resumed, "--teacher", float, "--epochs", "1")
	qatOK(t, "finetune", "--resume", resumed, "--epochs", "2", "--limit", "256", "--out", resumed, "--quiet")
	a, _ := os.ReadFile(straight)
	b, _ := os.ReadFile(resumed)
	if !bytes.Equal(a, b) {
		t.Error("resumed run's checkpoint differs from the uninterrupted run's")
	}

	moved := filepath.Join(dir, "moved.safetensors")
	ft(moved, "--teacher", float, "--epochs", "1")
	copyOf := filepath.Join(dir, "teacher-copy.safetensors")
	tb, _ := os.ReadFile(float)
	if err := os.WriteFile(copyOf, tb, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := qat(t, "finetune", "--resume", moved, "--epochs", "2", "--limit", "256", "--teacher", other, "--out", moved, "--quiet")
	if code != 1 || !strings.Contains(errs, "not the run's teacher") {
		t.Errorf("resumed with another teacher: exit %d, %q", code, errs)
	}
	qatOK(t, "finetune", "--resume", moved, "--epochs", "2", "--limit", "256", "--teacher", copyOf, "--out", moved, "--quiet")
	if ck, err := train.LoadCheckpoint(moved); err != nil || ck.Train.Distill.Teacher != copyOf {
		t.Errorf("after resuming from the copy the run records teacher %v (%v), want %s", ck.Train.Distill, err, copyOf)
	}
}

// Distillation options that contradict or say nothing are refused,
// naming the flag; a quantized teacher, one of another shape, and a
// teacher file that is gone are errors naming it.
func TestFinetuneTeacherErrors(t *testing.T) {
	dir := t.TempDir()
	float := filepath.Join(dir, "float.safetensors")
	qatOK(t, "train", "--model", "mlp", "--limit", "256", "--epochs", "1", "--out", float, "--quiet")
	q8 := filepath.Join(dir, "q8.safetensors")
	qatOK(t, "calibrate", "--from", float, "--batches", "1", "--out", q8)
	plain := filepath.Join(dir, "plain.safetensors")
	qatOK(t, "finetune", "--from", float, "--limit", "256", "--out", plain, "--quiet")
	gone := filepath.Join(dir, "gone.safetensors")
	tb, _ := os.ReadFile(float)
	if err := os.WriteFile(gone, tb, 0o644); err != nil {
		t.Fatal(err)
	}
	kd := filepath.Join(dir, "kd.safetensors")
	qatOK(t, "finetune", "--from", float, "--limit", "256", "--teacher", gone, "--out", kd, "--quiet")
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.safetensors")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--distill-alpha", "0.3"}, 2, "--distill-alpha needs --teacher"},
		{[]string{"--distill-temperature", "2"}, 2, "--distill-temperature needs --teacher"},
		{[]string{"--teacher", float, "--distill-temperature", "0"}, 2, "--distill-temperature 0: want a finite number above 0"},
		{[]string{"--teacher", float, "--distill-alpha", "1.5"}, 2, "--distill-alpha 1.5: want 0 to 1"},
		{[]string{"--teacher", out}, 2, "--out " + out + " is the same file as --teacher"},
		{[]string{"--teacher", q8}, 1, "--teacher: teacher " + q8 + " is quantized"},
		{[]string{"--teacher", filepath.Join(dir, "missing")}, 1, "missing"},
		{[]string{"--resume", plain, "--epochs", "2", "--teacher", float}, 2, "--teacher cannot make a resumed run distil"},
		{[]string{"--resume", kd, "--epochs", "2", "--distill-alpha", "0.2"}, 2, "--distill-alpha cannot change a resumed run"},
		{[]string{"--resume", kd, "--epochs", "2"}, 1, "distils from " + gone},
	} {
		args := append([]string{"finetune", "--from", float, "--limit", "256", "--out", out, "--quiet"}, c.args...)
		if code, _, errs := qat(t, args...); code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want %d and an error containing %q", c.args, code, errs, c.code, c.want)
		}
	}
}
