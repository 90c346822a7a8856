package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
