package main

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fidelity contract on the embedded data (1000 test images): an int8
// model exported with the float multiplier reproduces the checkpoint's
// evaluation outputs bit for bit; with multiplier + shift it stays close.
// Full-MNIST figures are in the README.
func TestExportCompareEval(t *testing.T) {
	dir := t.TempDir()
	float := filepath.Join(dir, "float.safetensors")
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
	run("train", "--model", "lenet", "--limit", "512", "--epochs", "1", "--out", float, "--json", "--quiet")
	for _, c := range []struct {
		name     string
		finetune []string
		requant  string
		maxLSB   float64
	}{
		{"w8a8-float", []string{"--bits", "W8A8"}, "float", 0},
		{"w8a8-fixed", []string{"--bits", "W8A8"}, "fixed", -1},
		{"w4a4-lsq", []string{"--bits", "W4A4", "--learnable", "lsq", "--calibration-batches", "2"}, "float", 0},
		{"w2a8", []string{"--bits", "W2A8"}, "float", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ck := filepath.Join(dir, c.name+".safetensors")
			model := filepath.Join(dir, c.name+".qmodel")
			args := append([]string{"finetune", "--from", float, "--limit", "256", "--out", ck, "--json", "--quiet"}, c.finetune...)
			fr := run(args...)
			header := filepath.Join(dir, c.name+".h")
			ex := run("export", "--checkpoint", ck, "--out", model, "--requant", c.requant, "--header", header, "--json")
			if ex["size_ratio"].(float64) > 0.26 {
				t.Errorf("model is %.3fx the checkpoint", ex["size_ratio"])
			}
			if _, err := os.Stat(header); err != nil {
				t.Errorf("header: %v", err)
			}
			cmp := run("compare", "--checkpoint", ck, "--model", model, "--json")
			t.Logf("%s: %v", c.name, cmp)
			if cmp["n"] != 1000.0 {
				t.Errorf("compared %v samples, want 1000", cmp["n"])
			}
			if c.maxLSB == 0 && (cmp["argmax_agreement"] != 1.0 || cmp["max_abs_diff_lsb"] != 0.0 || cmp["exact_fraction"] != 1.0) {
				t.Errorf("float requant must match bit for bit: %v", cmp)
			}
			if c.maxLSB < 0 && cmp["argmax_agreement"].(float64) < 0.99 {
				t.Errorf("fixed requant agreement %v", cmp)
			}
			npy := filepath.Join(dir, c.name+".npy")
			ev := run("eval", "--model", model, "--data", "embedded", "--dump", npy, "--json")
			if c.maxLSB == 0 && ev["accuracy"] != fr["accuracy"] {
				t.Errorf("int8 accuracy %v, checkpoint's %v", ev["accuracy"], fr["accuracy"])
			}
			checkNPY(t, npy, 1000, 10)
		})
	}
}

// checkNPY checks a .npy file's header and that it holds rows x cols
// finite float32 values.
func checkNPY(t *testing.T, path string, rows, cols int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 || string(b[:8]) != "\x93NUMPY\x01\x00" {
		t.Fatalf("%s: not a .npy v1.0 file", path)
	}
	hl := int(binary.LittleEndian.Uint16(b[8:10]))
	header := string(b[10 : 10+hl])
	if (10+hl)%64 != 0 || !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'shape': (1000, 10)") {
		t.Fatalf("%s: header %q", path, header)
	}
	data := b[10+hl:]
	if len(data) != 4*rows*cols {
		t.Fatalf("%s: %d data bytes, want %d", path, len(data), 4*rows*cols)
	}
	for i := 0; i < len(data); i += 4 {
		if v := math.Float32frombits(binary.LittleEndian.Uint32(data[i:])); math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("%s: value %d is %v", path, i/4, v)
		}
	}
}

// compare takes only the quantized checkpoint an int8 model was exported
// from: a float checkpoint or another quantized one is an error.
func TestCompareRefusesOtherCheckpoints(t *testing.T) {
	dir := t.TempDir()
	float := filepath.Join(dir, "float.safetensors")
	if code, _, errs := qat(t, "train", "--model", "mlp", "--limit", "256", "--epochs", "1", "--out", float, "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errs)
	}
	a, b := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors")
	for _, p := range []struct{ out, bits string }{{a, "W8A8"}, {b, "W4A4"}} {
		if code, _, errs := qat(t, "calibrate", "--from", float, "--bits", p.bits, "--batches", "1", "--out", p.out); code != 0 {
			t.Fatalf("calibrate: exit %d: %s", code, errs)
		}
	}
	model := filepath.Join(dir, "a.qmodel")
	if code, _, errs := qat(t, "export", "--checkpoint", a, "--out", model); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errs)
	}
	if code, _, errs := qat(t, "compare", "--checkpoint", a, "--model", model, "--limit", "100"); code != 0 {
		t.Errorf("compare with its own checkpoint: exit %d: %s", code, errs)
	}
	for ck, want := range map[string]string{float: "float model", b: "differs from the checkpoint's export"} {
		code, _, errs := qat(t, "compare", "--checkpoint", ck, "--model", model, "--limit", "100")
		if code != 1 || !strings.Contains(errs, "was not exported from") || !strings.Contains(errs, want) {
			t.Errorf("compare with %s: exit %d, %q; want 1 and %q", ck, code, errs, want)
		}
	}
}
