package experiment

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"qat/layers"
	"qat/train"
	"strings"
	"testing"
)

func TestParseRejects(t *testing.T) {
	for _, c := range []struct{ name, json, want string }{
		{"unknown field", `{"runs":[{"name":"a","method":"ptq"}],"epochs":3}`, "unknown field"},
		{"no runs", `{}`, "no runs"},
		{"bad method", `{"runs":[{"name":"a","method":"train"}]}`, "method"},
		{"duplicate", `{"runs":[{"name":"a","method":"ptq"},{"name":"a","method":"qat"}]}`, "duplicate"},
		{"slash", `{"runs":[{"name":"a/b","method":"ptq"}]}`, "name"},
		{"ptq epochs", `{"runs":[{"name":"a","method":"ptq","epochs":2}]}`, "qat runs"},
		{"bad bits", `{"runs":[{"name":"a","method":"ptq","bits":"W9A8"}]}`, "bits"},
		{"bits and quant", `{"runs":[{"name":"a","method":"ptq","bits":"W8A8","quant":{}}]}`, "not both"},
		{"learnable", `{"runs":[{"name":"a","method":"qat","learnable":"adaround"}]}`, "learnable"},
		{"negative limit", `{"train_limit":-1,"runs":[{"name":"a","method":"ptq"}]}`, "negative"},
		{"trailing", `{"runs":[{"name":"a","method":"ptq"}]} {}`, "after"},
		{"ptq teacher", `{"runs":[{"name":"a","method":"ptq","teacher":true}]}`, "qat runs"},
		{"alpha without teacher", `{"runs":[{"name":"a","method":"qat","distill_alpha":0.5}]}`, `need "teacher": true`},
		{"temperature without teacher", `{"runs":[{"name":"a","method":"qat","distill_temperature":2}]}`, `need "teacher": true`},
		{"bad alpha", `{"runs":[{"name":"a","method":"qat","teacher":true,"distill_alpha":2}]}`, "distillation alpha 2"},
		{"bad temperature", `{"runs":[{"name":"a","method":"qat","teacher":true,"distill_temperature":-1}]}`, "distillation temperature -1"},
	} {
		if _, err := Parse([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"runs":[{"name":"p","method":"ptq"},{"name":"q","method":"qat","bits":"W4A4"},{"name":"kd","method":"qat","teacher":true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "lenet" || len(c.Data) != 1 || c.Data[0] != "mnist" || c.Float.Epochs != 2 || c.Float.LR != 1e-3 || c.Float.Batch != 128 {
		t.Errorf("defaults: %+v", c)
	}
	p, q := c.Runs[0], c.Runs[1]
	if p.Bits != "W8A8" || p.CalibrationBatches != 32 {
		t.Errorf("ptq defaults: %+v", p)
	}
	if qc, err := p.quantConfig(); err != nil || qc.Act.Observer != "minmax" {
		t.Errorf("ptq observer %q (%v), want minmax", qc.Act.Observer, err)
	}
	// A quant config's own observer is not overridden by the PTQ default.
	r := Run{Name: "e", Method: MethodPTQ, Quant: &layers.QuantConfig{Act: layers.QuantSpec{Observer: "entropy"}}}
	if qc, err := r.quantConfig(); err != nil || qc.Act.Observer != "entropy" {
		t.Errorf("quant config observer became %q (%v), want entropy", qc.Act.Observer, err)
	}
	if q.Epochs != 1 || q.LR != 1e-4 || q.Batch != 128 || q.DistillTemperature != 0 || q.DistillAlpha != nil {
		t.Errorf("qat defaults: %+v", q)
	}
	// train's distillation defaults.
	if kd := c.Runs[2]; kd.DistillTemperature != train.DefaultTemperature || kd.DistillAlpha == nil || *kd.DistillAlpha != train.DefaultAlpha {
		t.Errorf("distillation defaults: T %v, alpha %v", kd.DistillTemperature, kd.DistillAlpha)
	}
}

// TestExecuteEmbedded runs a small experiment end to end on the embedded
// data: the int8 accuracy of a float-requant export equals the fake-quant
// accuracy (eval graphs compute the int8 arithmetic), and the report
// files are written.
func TestExecuteEmbedded(t *testing.T) {
	c, err := Parse([]byte(`{"name":"tiny","model":"lenet","data":["embedded"],"train_limit":256,"test_limit":200,
		"float":{"epochs":1},"runs":[
		{"name":"ptq8","method":"ptq","bits":"W8A8","calibration_batches":2,"group":"PTQ","x":8},
		{"name":"qat4","method":"qat","bits":"W4A4","learnable":"lsq","calibration_batches":2,"group":"QAT","x":4},
		{"name":"unfolded","method":"qat","bits":"W8A8","no_fold_bn":true,"group":"QAT","x":8},
		{"name":"kd4","method":"qat","bits":"W4A4","teacher":true,"distill_alpha":0.9,"group":"QAT + KD","x":4}]}`))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	rep, err := Execute(context.Background(), c, Options{Out: out, Command: "go test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("%d results, want 4", len(rep.Results))
	}
	for _, r := range rep.Results[:2] {
		if r.Int8Accuracy == nil {
			t.Errorf("%s: no int8 accuracy (%s)", r.Run, r.Int8Note)
		} else if *r.Int8Accuracy != r.FakeQuantAccuracy {
			t.Errorf("%s: int8 %.4f, fake-quant %.4f: want equal", r.Run, *r.Int8Accuracy, r.FakeQuantAccuracy)
		}
	}
	if u := rep.Results[2]; u.Int8Accuracy != nil || !strings.Contains(u.Int8Note, "BatchNorm") {
		t.Errorf("unfolded BN run: int8 %v, note %q: want none, saying why", u.Int8Accuracy, u.Int8Note)
	}
	// The distilled run's metrics hold the distillation term.
	if steps, _, err := train.ReadMetricsFile(rep.Results[3].Metrics); err != nil || len(steps) == 0 || steps[0].LossKD == nil {
		t.Errorf("distilled run's metrics: %v, %v", steps, err)
	}
	f, err := os.Open(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 5 || rows[4][11] != "T 4, alpha 0.9" {
		t.Fatalf("results.csv: %d rows, %v", len(rows), err)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| ptq8 | ptq |", "| kd4 | qat, distilled from float (T 4, alpha 0.9) |", "go test", "plots/embedded-accuracy-vs-bits.png", "no int8 model"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	for _, p := range []string{"plots/embedded-accuracy-vs-bits.png", "plots/embedded-curves/loss.svg", "work/embedded-qat4.qmodel"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Error(err)
		}
	}
}
