package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// qat export --dynamic-linear on the embedded data: a float mlp exports
// with every linear layer dynamic (format qat-int8/4, ONNX exact), and its
// evaluation stays within 2 points of the float checkpoint's (int8
// weights and activations); a calibrated lenet keeps its convs static; a
// float lenet, --header, QDQ and compare are refused with errors naming
// why (exit status 1 for the run-time error, 2 for usage errors).
func TestExportDynamic(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) map[string]any {
		t.Helper()
		code, out, errs := qat(t, args...)
		if code != 0 {
			t.Fatalf("qat %v: exit %d: %s", args, code, errs)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("qat %v printed %q: %v", args, out, err)
		}
		return r
	}
	mlp, lenet, cal := filepath.Join(dir, "mlp.safetensors"), filepath.Join(dir, "lenet.safetensors"), filepath.Join(dir, "cal.safetensors")
	fr := run("train", "--model", "mlp", "--limit", "512", "--epochs", "1", "--out", mlp, "--json", "--quiet")
	run("train", "--model", "lenet", "--limit", "256", "--epochs", "1", "--out", lenet, "--json", "--quiet")
	if code, _, errs := qat(t, "calibrate", "--from", lenet, "--batches", "1", "--out", cal); code != 0 {
		t.Fatalf("calibrate: exit %d: %s", code, errs)
	}

	model, onnxFile := filepath.Join(dir, "mlp.qmodel"), filepath.Join(dir, "mlp.onnx")
	ex := run("export", "--checkpoint", mlp, "--out", model, "--dynamic-linear", "--onnx", onnxFile, "--json")
	if ex["format"] != "qat-int8/4" || len(ex["dynamic_linear"].([]any)) != 3 || ex["onnx_exact"] != true {
		t.Errorf("export: %v", ex)
	}
	npy := filepath.Join(dir, "mlp.npy")
	ev := run("eval", "--model", model, "--data", "embedded", "--dump", npy, "--json")
	if d := math.Abs(ev["accuracy"].(float64) - fr["accuracy"].(float64)); d > 0.02 || !strings.Contains(ev["kind"].(string), "dynamic") {
		t.Errorf("dynamic mlp: %v; float checkpoint accuracy %v", ev, fr["accuracy"])
	}
	checkNPY(t, npy, 1000, 10)

	lmodel := filepath.Join(dir, "lenet.qmodel")
	lx := run("export", "--checkpoint", cal, "--out", lmodel, "--dynamic-linear", "--json")
	if d := lx["dynamic_linear"].([]any); len(d) != 2 || d[0] != "fc1" || d[1] != "fc2" {
		t.Errorf("lenet export: %v", lx)
	}
	run("eval", "--model", lmodel, "--data", "embedded", "--json")

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"export", "--checkpoint", lenet, "--out", lmodel, "--dynamic-linear"}, 1, "a conv without quantizers"},
		{[]string{"export", "--checkpoint", mlp, "--out", model, "--dynamic-linear", "--header", filepath.Join(dir, "m.h")}, 2, "the C header has no dynamically quantized ops"},
		{[]string{"export", "--checkpoint", mlp, "--out", model, "--dynamic-linear", "--onnx", onnxFile, "--onnx-format", "qdq"}, 2, "a QDQ graph holds static quantization only"},
		{[]string{"export", "--checkpoint", mlp, "--onnx", onnxFile, "--dynamic-linear"}, 2, "--dynamic-linear needs --out"},
		{[]string{"compare", "--checkpoint", cal, "--model", lmodel}, 1, "is quantized dynamically"},
	} {
		code, _, errs := qat(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("qat %v: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}
