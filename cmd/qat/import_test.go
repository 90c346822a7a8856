package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"qat/layers"
	"qat/model"
	"qat/safetensors"
	"qat/torchio"
	"qat/train"
)

// The tiny PyTorch model of package torchio's tests, written by
// scripts/torch-fixtures.py: its state_dict and its qat model config.
const (
	tinyTorch = "../../torchio/testdata/tiny.pt"
	tinySpec  = "../../torchio/testdata/tiny.json"
)

func TestImportTorch(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sub", "tiny.safetensors")
	code, stdout, errs := qat(t, "import", "--torch", tinyTorch, "--model", tinySpec, "--out", out,
		"--mean", "0.5,0.4,0.3", "--std", "0.2,0.25,0.5", "--json")
	if code != 0 {
		t.Fatalf("import: exit %d: %s", code, errs)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("import --json printed %q: %v", stdout, err)
	}
	want := map[string]any{"out": out, "model": "tiny", "input": []any{3.0, 8.0, 8.0}, "classes": 5.0, "tensors": 15.0}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("import --json = %v, want %v", res, want)
	}
	ck, err := train.LoadCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	if norm := (model.Norm{ChannelMean: []float32{0.5, 0.4, 0.3}, ChannelStd: []float32{0.2, 0.25, 0.5}}); !ck.Norm.Equal(norm) {
		t.Errorf("norm %+v, want %+v", ck.Norm, norm)
	}
	if ck.Dataset != "" || ck.Model.Quantized() || ck.Step != 0 || ck.Model.Spec.Name != "tiny" {
		t.Errorf("checkpoint of %s: dataset %q, quantized %v, step %d", ck.Model.Spec.Name, ck.Dataset, ck.Model.Quantized(), ck.Step)
	}
	sd, err := torchio.ReadStateDict(tinyTorch)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ck.Model.Params() {
		if !slices.Equal(p.Data, sd[p.Name].Float) {
			t.Errorf("param %s differs from the state_dict's", p.Name)
		}
	}
	if bn := ck.Model.BatchNorm("features.1"); !slices.Equal(bn.RunningMean, sd["features.1.running_mean"].Float) || bn.NumBatchesTracked != 7 {
		t.Errorf("BN features.1 differs from the state_dict's: %+v", bn)
	}

	code, stdout, errs = qat(t, "import", "--torch", tinyTorch, "--model", tinySpec, "--out", out)
	if code != 0 || stdout != out+": tiny on 3x8x8 with 5 classes, 15 tensors from "+tinyTorch+"\n" {
		t.Fatalf("import: exit %d, stdout %q, stderr %q", code, stdout, errs)
	}
	if ck, err := train.LoadCheckpoint(out); err != nil || !ck.Norm.Equal(model.Norm{Mean: 0, Std: 1}) {
		t.Errorf("default norm: %+v, %v", ck.Norm, err)
	}
}

// A state_dict of lenet in a safetensors file imports into a checkpoint
// that evaluates exactly as the model it came from, and that calibrate and
// export take.
func TestImportEvalCalibrateExport(t *testing.T) {
	dir := t.TempDir()
	g, err := model.Builtin("lenet")
	if err != nil {
		t.Fatal(err)
	}
	m, err := layers.NewModel(g, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b1", "b2"} {
		bn := m.BatchNorm(name)
		for j := range bn.RunningMean {
			bn.RunningMean[j], bn.RunningVar[j] = 0.05*float32(j%7)-0.1, 0.5+0.1*float32(j%5)
		}
	}
	f := &safetensors.File{}
	if err := m.SaveState(f); err != nil {
		t.Fatal(err)
	}
	sd := filepath.Join(dir, "lenet.safetensors")
	if err := f.WriteFile(sd); err != nil {
		t.Fatal(err)
	}
	direct, imported := filepath.Join(dir, "direct.safetensors"), filepath.Join(dir, "imported.safetensors")
	if err := (&train.Checkpoint{Model: m, Norm: model.Norm{Mean: 0.1307, Std: 0.3081}}).Save(direct); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"import", "--torch", sd, "--model", "lenet", "--mean", "0.1307", "--std", "0.3081", "--out", imported},
		{"eval", "--model", direct, "--data", "embedded", "--limit", "100", "--dump", filepath.Join(dir, "direct.npy")},
		{"eval", "--model", imported, "--data", "embedded", "--limit", "100", "--dump", filepath.Join(dir, "imported.npy")},
		{"calibrate", "--from", imported, "--data", "embedded", "--batches", "1", "--batch", "32", "--out", filepath.Join(dir, "q8.safetensors")},
		{"export", "--checkpoint", filepath.Join(dir, "q8.safetensors"), "--out", filepath.Join(dir, "lenet.qmodel")},
	} {
		if code, _, errs := qat(t, args...); code != 0 {
			t.Fatalf("%s: exit %d: %s", args[0], code, errs)
		}
	}
	a, errA := os.ReadFile(filepath.Join(dir, "direct.npy"))
	b, errB := os.ReadFile(filepath.Join(dir, "imported.npy"))
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Errorf("the imported checkpoint's logits differ from the model's (%v, %v)", errA, errB)
	}
}

func TestImportErrors(t *testing.T) {
	defer func(n int64) { torchio.MaxBytes = n }(torchio.MaxBytes)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.safetensors")
	imp := func(args ...string) []string {
		return append([]string{"import", "--torch", tinyTorch, "--model", tinySpec, "--out", out}, args...)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"import", "--torch", tinyTorch}, 2, "--torch, --model and --out are required"},
		{[]string{"import", "--torch", tinyTorch, "--model", tinySpec, "--out", tinyTorch}, 2, "--out " + tinyTorch + " is the same file as --torch"},
		{[]string{"import", "--torch", tinyTorch, "--model", tinySpec, "--out", tinySpec}, 2, "is the same file as --model"},
		{imp("--model", "nosuch"), 2, `--model: model "nosuch" is neither a built-in model`},
		{imp("--mean", "1,2", "--std", "1"), 2, "--mean has 2 values and --std 1"},
		{imp("--mean", "0,0", "--std", "1,1"), 2, "want one per input channel (3)"},
		{imp("--mean", "x"), 2, `--mean "x": "x" is not a number`},
		{imp("--std", "-1"), 2, "std -1 is not a finite non-negative number"},
		{imp("--input", "3x8"), 2, `--input "3x8": want CxHxW`},
		{imp("--input", "3x1x1"), 2, "kernel 2 larger than the input"},
		{imp("--max-bytes", "0"), 2, "--max-bytes 0"},
		{imp("--torch", "../../torchio/testdata/evil.pt"), 1, "global os.system is not allowed"},
		{imp("--torch", filepath.Join(dir, "missing.pt")), 1, "missing.pt: no such file"},
		{imp("--model", "lenet"), 1, "--torch " + tinyTorch + ": state_dict does not fit model lenet (33 problems): b1.bias [16] is missing; "},
		// Last: import sets torchio.MaxBytes, restored below.
		{imp("--max-bytes", "100"), 1, "above the limit of 100 bytes (torchio.MaxBytes)"},
	} {
		code, _, errs := qat(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("qat %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errs, c.code, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("qat %v wrote %s", c.args, out)
		}
	}
}
