package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// qat run on a small experiment file, then qat plot on its work directory
// and qat sensitivity on its float checkpoint, all with --json.
func TestRunPlotSensitivity(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tiny.json")
	if err := os.WriteFile(cfg, []byte(`{"title":"tiny","data":["embedded"],"train_limit":256,"test_limit":200,"float":{"epochs":1},
		"runs":[{"name":"ptq4","method":"ptq","bits":"W4A4","calibration_batches":2},
		        {"name":"pact4","method":"qat","bits":"W4A4","learnable":"pact","calibration_batches":2}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, stderr := qat(t, "run", cfg, "--out", out, "--json", "--quiet")
	if code != 0 {
		t.Fatalf("qat run: exit %d: %s", code, stderr)
	}
	var res struct {
		Name    string
		Results []struct {
			Run               string
			FakeQuantAccuracy float64  `json:"fake_quant_accuracy"`
			Int8Accuracy      *float64 `json:"int8_accuracy"`
		}
		Floats map[string]struct{ Checkpoint string }
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if res.Name != "tiny" || len(res.Results) != 2 {
		t.Fatalf("result %+v", res)
	}
	for _, r := range res.Results {
		if r.Int8Accuracy == nil || *r.Int8Accuracy != r.FakeQuantAccuracy {
			t.Errorf("%s: int8 %v, fake-quant %v", r.Run, r.Int8Accuracy, r.FakeQuantAccuracy)
		}
	}
	// The runs' metrics hold the resident memory (on Linux, where rssMB
	// reads it).
	for _, name := range []string{"embedded-float", "embedded-pact4"} {
		b, err := os.ReadFile(filepath.Join(out, "work", name+".metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS == "linux" && !strings.Contains(string(b), `"rss_mb":`) {
			t.Errorf("%s metrics without rss_mb", name)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil || !strings.Contains(string(md), "qat run "+cfg) {
		t.Errorf("results.md does not record the command (%v):\n%s", err, md)
	}

	code, stdout, stderr = qat(t, "plot", filepath.Join(out, "work"), "--json")
	if code != 0 {
		t.Fatalf("qat plot: exit %d: %s", code, stderr)
	}
	var pl struct{ Files []string }
	if err := json.Unmarshal([]byte(stdout), &pl); err != nil || len(pl.Files) == 0 {
		t.Fatalf("qat plot printed %q (%v)", stdout, err)
	}
	for _, want := range []string{"loss.png", "embedded-pact4_quant_sqnr.svg", "embedded-ptq4_hist_c2_weight.png"} {
		if _, err := os.Stat(filepath.Join(out, "work", "plots", want)); err != nil {
			t.Error(err)
		}
	}

	float := res.Floats["embedded"].Checkpoint
	png := filepath.Join(dir, "sens.png")
	code, stdout, stderr = qat(t, "sensitivity", "--from", float, "--bits", "W2A2", "--test-limit", "200", "--batches", "2", "--plot", png, "--json")
	if code != 0 {
		t.Fatalf("qat sensitivity: exit %d: %s", code, stderr)
	}
	var sens struct {
		Layers []struct {
			Layer string
			Drop  float64 `json:"drop_pp"`
		}
	}
	if err := json.Unmarshal([]byte(stdout), &sens); err != nil || len(sens.Layers) != 4 {
		t.Fatalf("sensitivity printed %q (%v)", stdout, err)
	}
	for i := 1; i < len(sens.Layers); i++ {
		if sens.Layers[i].Drop > sens.Layers[i-1].Drop {
			t.Errorf("layers not sorted by drop: %+v", sens.Layers)
		}
	}
	if _, err := os.Stat(png); err != nil {
		t.Error(err)
	}

	for _, args := range [][]string{{"run"}, {"sensitivity"}, {"plot"}, {"sensitivity", "--from", float, "--bits", "W9A9"}} {
		if code, _, stderr := qat(t, args...); code != 2 {
			t.Errorf("qat %v: exit %d (%s), want 2", args, code, stderr)
		}
	}
	if code, _, stderr := qat(t, "plot", filepath.Join(dir, "missing")); code != 1 || !strings.Contains(stderr, "missing") {
		t.Errorf("qat plot of a missing directory: exit %d: %s", code, stderr)
	}
}
