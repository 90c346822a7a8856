package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qat/train"
)

func qat(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// The whole loop on the embedded data: train, finetune (observers and
// LSQ), calibrate, eval, resume, with JSON output.
func TestTrainFinetuneCalibrateEval(t *testing.T) {
	dir := t.TempDir()
	float := filepath.Join(dir, "float.safetensors")
	code, out, errs := qat(t, "train", "--model", "mlp", "--limit", "512", "--epochs", "1", "--out", float, "--json", "--quiet")
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, errs)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("train --json printed %q: %v", out, err)
	}
	if res["n"] != 1000.0 || res["accuracy"].(float64) < 0.5 {
		t.Errorf("train result %v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "float.metrics.jsonl")); err != nil {
		t.Errorf("metrics file: %v", err)
	}
	for _, args := range [][]string{
		{"finetune", "--from", float, "--bits", "W8A8", "--limit", "256", "--out", filepath.Join(dir, "q8.safetensors"), "--json", "--quiet"},
		{"finetune", "--from", float, "--bits", "W4A4", "--learnable", "lsq", "--calibration-batches", "2", "--limit", "256", "--out", filepath.Join(dir, "q4.safetensors"), "--json", "--quiet"},
		{"calibrate", "--from", float, "--observer", "mse", "--batches", "2", "--out", filepath.Join(dir, "ptq.safetensors"), "--json"},
		{"eval", "--model", filepath.Join(dir, "q8.safetensors"), "--limit", "300", "--json"},
		{"train", "--resume", float, "--epochs", "2", "--limit", "512", "--out", float, "--json", "--quiet"},
	} {
		code, out, errs := qat(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", args[0], code, errs)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s printed %q: %v", args[0], out, err)
		}
		if acc, ok := r["accuracy"].(float64); !ok || acc < 0.3 {
			t.Errorf("%v: result %v", args, r)
		}
		if args[0] == "eval" && (r["n"] != 300.0 || r["samples_per_sec"] == nil) {
			t.Errorf("eval JSON %v lacks n=300 or samples_per_sec", r)
		}
		if args[0] == "train" && r["epochs"] != 2.0 {
			t.Errorf("resumed run reports %v epochs, want 2", r["epochs"])
		}
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"train", "--epochs", "x"}, 2, "--epochs"},
		{[]string{"train", "--model", "mlp"}, 2, "--out is required"},
		{[]string{"train", "--model", "nosuch", "--out", filepath.Join(dir, "x")}, 2, "--model"},
		{[]string{"finetune", "--from", bad, "--out", filepath.Join(dir, "y")}, 1, bad},
		{[]string{"finetune", "--from", bad, "--bits", "W9A8", "--out", filepath.Join(dir, "y")}, 1, bad},
		{[]string{"eval", "--model", filepath.Join(dir, "missing.safetensors")}, 1, "missing.safetensors"},
		{[]string{"train", "--model", "mlp", "--data", filepath.Join(dir, "nodata"), "--out", filepath.Join(dir, "z")}, 1, "nodata"},
		{[]string{"train", "--threads", "0", "--out", filepath.Join(dir, "x")}, 2, "--threads 0: want at least 1"},
		{[]string{"finetune", "--threads", "-1", "--from", bad, "--out", filepath.Join(dir, "y")}, 2, "--threads -1"},
		{[]string{"calibrate", "--threads", "0", "--from", bad, "--out", filepath.Join(dir, "y")}, 2, "--threads 0"},
		{[]string{"eval", "--threads", "0", "--model", bad}, 2, "--threads 0"},
		{[]string{"compare", "--threads", "0", "--checkpoint", bad, "--model", bad}, 2, "--threads 0"},
		{[]string{"run", "--threads", "0", filepath.Join(dir, "missing.json")}, 2, "--threads 0"},
		{[]string{"demo", "--threads", "0", "--out", dir}, 2, "--threads 0"},
		{[]string{"sensitivity", "--threads", "0", "--from", bad}, 2, "--threads 0"},
		{[]string{"bench", "gemm", "--threads", "0"}, 2, "--threads 0"},
	} {
		code, _, errs := qat(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("qat %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errs, c.code, c.want)
		}
	}
}

// No command writes over one of its inputs, by the same path, another
// spelling of it, a symbolic or a hard link: each is a usage error that
// names both flags, and the input is left as it was. A failed export
// writes none of its files; a train run refused before its first step
// leaves an earlier run's metrics as they were.
func TestOutputsNeverOverwriteInputs(t *testing.T) {
	dir := t.TempDir()
	float := filepath.Join(dir, "float.safetensors")
	if code, _, errs := qat(t, "train", "--model", "mlp", "--limit", "256", "--epochs", "1", "--out", float, "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errs)
	}
	q8 := filepath.Join(dir, "q8.safetensors")
	if code, _, errs := qat(t, "calibrate", "--from", float, "--batches", "1", "--out", q8); code != 0 {
		t.Fatalf("calibrate: exit %d: %s", code, errs)
	}
	link := filepath.Join(dir, "link.safetensors")
	if err := os.Symlink(float, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard.safetensors")
	if err := os.Link(q8, hard); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "sub", "..", "q8.safetensors")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for _, p := range []string{float, q8} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		before[p] = b
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"calibrate", "--from", float, "--out", float}, "--out " + float + " is the same file as --from"},
		{[]string{"calibrate", "--from", float, "--out", link}, "is the same file as --from"},
		{[]string{"finetune", "--from", link, "--out", float}, "is the same file as --from"},
		{[]string{"finetune", "--from", float, "--out", filepath.Join(dir, "x.safetensors"), "--metrics", float}, "--metrics"},
		{[]string{"export", "--checkpoint", q8, "--out", other}, "--out " + other + " is the same file as --checkpoint"},
		{[]string{"export", "--checkpoint", q8, "--out", filepath.Join(dir, "m.qmodel"), "--onnx", hard}, "--onnx"},
		{[]string{"export", "--checkpoint", q8, "--out", filepath.Join(dir, "m.qmodel"), "--header", filepath.Join(dir, "m.qmodel")}, "is the same file as --out"},
		{[]string{"eval", "--model", q8, "--dump", hard}, "--dump"},
	} {
		code, _, errs := qat(t, c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and an error containing %q", c.args, code, errs, c.want)
		}
	}
	for p, b := range before {
		if got, _ := os.ReadFile(p); !bytes.Equal(got, b) {
			t.Errorf("%s changed", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "m.qmodel")); !os.IsNotExist(err) {
		t.Errorf("a refused export left m.qmodel: %v", err)
	}

	// An export whose ONNX file cannot be written writes no int8 model.
	model := filepath.Join(dir, "new.qmodel")
	if code, _, _ := qat(t, "export", "--checkpoint", q8, "--out", model, "--onnx", filepath.Join(dir, "missing", "m.onnx")); code != 1 {
		t.Errorf("export to a missing directory: exit %d, want 1", code)
	}
	if _, err := os.Stat(model); !os.IsNotExist(err) {
		t.Errorf("a failed export left %s: %v", model, err)
	}

	// A refused train run leaves the metrics of the earlier one.
	metrics := filepath.Join(dir, "float.metrics.jsonl")
	mb, err := os.ReadFile(metrics)
	if err != nil || len(mb) == 0 {
		t.Fatalf("metrics of the first run: %v", err)
	}
	spec := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(spec, []byte(`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":10}]} x`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := qat(t, "train", "--model", spec, "--limit", "256", "--out", float, "--quiet"); code != 2 {
		t.Errorf("train with a bad spec: exit %d, want 2", code)
	}
	if got, _ := os.ReadFile(metrics); !bytes.Equal(got, mb) {
		t.Error("a train run refused before its first step changed the earlier run's metrics")
	}
}

// Flags that contradict or say nothing are refused, naming the flag:
// bits outside 2..8, calibration without batches, a resumed run whose
// epochs are already done or whose data, model or quantization would
// change.
func TestContradictoryFlags(t *testing.T) {
	dir := t.TempDir()
	float := filepath.Join(dir, "float.safetensors")
	if code, _, errs := qat(t, "train", "--model", "mlp", "--limit", "256", "--epochs", "1", "--out", float, "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errs)
	}
	q := filepath.Join(dir, "q.safetensors")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"finetune", "--from", float, "--bits", "W0A0", "--out", q}, "want 2 to 8 bits"},
		{[]string{"calibrate", "--from", float, "--bits", "W8A1", "--out", q}, "want 2 to 8 bits"},
		{[]string{"calibrate", "--from", float, "--batches", "0", "--out", q}, "--batches 0"},
		{[]string{"calibrate", "--from", float, "--batch", "0", "--out", q}, "--batch 0"},
		{[]string{"eval", "--model", float, "--limit", "-1"}, "--limit -1"},
		{[]string{"train", "--resume", float, "--epochs", "1", "--out", float}, "has already trained 1 epochs of 1"},
		{[]string{"train", "--resume", float, "--out", float}, "nothing to do"},
		{[]string{"train", "--resume", float, "--epochs", "2", "--model", "lenet", "--out", float}, "--model cannot change a resumed run"},
		{[]string{"train", "--resume", float, "--epochs", "2", "--data", "mnist", "--out", float}, "--data mnist cannot change a resumed run"},
	} {
		code, _, errs := qat(t, c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and an error containing %q", c.args, code, errs, c.want)
		}
	}
}

// A resumed run's metrics hold every step once: the records an
// interrupted run wrote after its last checkpoint are dropped before the
// resumed run writes those steps again.
func TestResumeMetricsOnce(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "run.safetensors")
	metrics := filepath.Join(dir, "run.metrics.jsonl")
	if code, _, errs := qat(t, "train", "--model", "mlp", "--limit", "256", "--epochs", "1", "--batch", "64", "--out", ck, "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	// What an interrupted second epoch leaves: records of steps 5 and 6
	// (after the checkpoint at step 4), no checkpoint.
	b = append(b, `{"type":"step","step":5,"epoch":1,"loss":1,"lr":0.001,"accuracy":0.5,"samples_per_sec":1}
{"type":"step","step":6,"epoch":1,"loss":1,"lr":0.001,"accuracy":0.5,"samples_per_sec":1}
`...)
	if err := os.WriteFile(metrics, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := qat(t, "train", "--resume", ck, "--epochs", "2", "--limit", "256", "--out", ck, "--quiet"); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, errs)
	}
	steps, epochs, err := train.ReadMetricsFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		if s.SamplesPerSec == 1 {
			t.Errorf("the interrupted run's record of step %d is still there", s.Step)
		}
		if i > 0 && s.Step <= steps[i-1].Step {
			t.Errorf("step records go %d, %d: want each step once, in order", steps[i-1].Step, s.Step)
		}
	}
	if len(epochs) != 2 || epochs[0].Epoch != 1 || epochs[1].Epoch != 2 {
		t.Errorf("epoch records %+v, want epochs 1 and 2", epochs)
	}
}
