package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCalibrateRecovery runs qat calibrate with every post-training
// recovery method on a small mlp: the result names them, stderr reports
// the CLE pairs and each layer's corrections, and the exported int8 model
// computes the checkpoint's outputs bit for bit. Options that would do
// nothing, and ptq options in a fine-tuning quant config, are usage
// errors.
func TestCalibrateRecovery(t *testing.T) {
	dir := t.TempDir()
	float := filepath.Join(dir, "float.safetensors")
	if code, _, errs := qat(t, "train", "--model", "mlp", "--limit", "512", "--epochs", "1", "--out", float, "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errs)
	}
	ck := filepath.Join(dir, "ptq.safetensors")
	code, out, errs := qat(t, "calibrate", "--from", float, "--bits", "W4A8", "--batches", "2", "--cle", "--bias-correction",
		"--adaround", "--adaround-iters", "20", "--out", ck, "--json")
	if code != 0 {
		t.Fatalf("calibrate: exit %d: %s", code, errs)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("calibrate printed %q: %v", out, err)
	}
	if res["kind"] != "fake-quant W4A8 + CLE, bias correction, AdaRound 20 iters" {
		t.Errorf("kind %q", res["kind"])
	}
	for _, want := range []string{"ptq: cle: 2 pairs (fc1->fc2, fc2->fc3)", "ptq: fc1: 256 rows, adaround error", "bias corrected by up to"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	model := filepath.Join(dir, "ptq.qmodel")
	if code, _, errs := qat(t, "export", "--checkpoint", ck, "--out", model); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errs)
	}
	code, out, errs = qat(t, "compare", "--checkpoint", ck, "--model", model, "--json")
	if code != 0 {
		t.Fatalf("compare: exit %d: %s", code, errs)
	}
	var cmp map[string]any
	if err := json.Unmarshal([]byte(out), &cmp); err != nil {
		t.Fatal(err)
	}
	if cmp["exact_fraction"] != 1.0 || cmp["max_abs_diff_lsb"] != 0.0 {
		t.Errorf("int8 model differs from the checkpoint: %v", cmp)
	}

	ptqConfig := filepath.Join(dir, "ptq.json")
	if err := os.WriteFile(ptqConfig, []byte(`{"weight": {"bits": 4}, "act": {}, "ptq": {"bias_correction": true}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = qat(t, "calibrate", "--from", float, "--quant-config", ptqConfig, "--cle", "--batches", "1", "--out", ck)
	if code != 0 || !strings.Contains(out, "W4A8 + CLE, bias correction)") {
		t.Errorf("quant config ptq and --cle: exit %d, %q, %s", code, out, errs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"calibrate", "--from", float, "--adaround-iters", "5", "--out", ck}, "--adaround-iters needs --adaround"},
		{[]string{"calibrate", "--from", float, "--adaround", "--adaround-iters", "0", "--out", ck}, "--adaround-iters 0"},
		{[]string{"finetune", "--from", float, "--quant-config", ptqConfig, "--out", ck, "--quiet"}, "ptq options are for post-training calibration"},
	} {
		if code, _, errs := qat(t, c.args...); code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q: want 2 and %q", c.args, code, errs, c.want)
		}
	}
}
