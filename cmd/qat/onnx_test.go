package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"qat/data"
	"qat/infer"
	"qat/onnx"
	"qat/onnx/onnxtest"
	"qat/qmodel"
	"qat/train"
)

// The ONNX export on the embedded data (1000 test images), through the
// CLI, for mlp and lenet: the int8 ONNX models run in onnxruntime give
// the int8 runtime's output codes (W8A8 with float and with fixed
// requantization, W4A4 with LSQ), and the float ONNX model the float
// checkpoint's evaluation up to float32 rounding. docs/onnxruntime.md
// quotes the figures this test logs.
func TestExportONNX(t *testing.T) {
	ort := onnxtest.Require(t)
	t.Logf("onnxruntime-node %s on %s", ort.Version, onnxtest.CPU())
	ds, err := data.LoadEmbedded("test")
	if err != nil {
		t.Fatal(err)
	}
	pixels := onnxtest.Pixels(ds.Images)
	shape := [4]int{ds.N, 1, ds.H, ds.W}
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
	readONNX := func(r map[string]any, path, form string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if r["onnx"] != path || r["onnx_bytes"] != float64(len(b)) || r["onnx_model"] != form {
			t.Errorf("export reported %v, wrote %d bytes of a %s model to %s", r, len(b), form, path)
		}
		onnxtest.Check(t, b)
		return b
	}
	// A graph too: a residual block, a depthwise conv, a concat and
	// global average pooling (model/testdata/residual-mnist.json).
	for _, spec := range []string{"mlp", "lenet", "../../model/testdata/residual-mnist.json"} {
		arch := strings.TrimSuffix(filepath.Base(spec), ".json")
		t.Run(arch, func(t *testing.T) {
			float := filepath.Join(dir, arch+".safetensors")
			run("train", "--model", spec, "--limit", "512", "--epochs", "1", "--out", float, "--json", "--quiet")

			// The float model: no int8 model, no --out.
			fo := filepath.Join(dir, arch+"-float.onnx")
			fb := readONNX(run("export", "--checkpoint", float, "--onnx", fo, "--json"), fo, "float")
			ck, err := train.LoadCheckpoint(float)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := train.Evaluate(ck.Model, ds, train.EvalConfig{Norm: ck.Norm, KeepLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			maxRel, agree := onnxtest.CloseLogits(ort.Run(t, fb, pixels, shape), ev.Logits, 10)
			t.Logf("%s float: n %d, argmax agreement %v, max |diff| / max |logit| %.3g", arch, ds.N, agree, maxRel)
			if maxRel > 1e-4 || agree < 0.999 {
				t.Errorf("float ONNX: max relative difference %.3g, argmax agreement %v", maxRel, agree)
			}

			var floatLogits []float32 // the W8A8 float-requantization model's
			for _, c := range []struct {
				name, requant string
				finetune      []string
			}{
				{"w8a8", "float", []string{"--bits", "W8A8"}},
				{"w8a8-fixed", "fixed", nil}, // the w8a8 checkpoint
				{"w4a4-lsq", "float", []string{"--bits", "W4A4", "--learnable", "lsq", "--calibration-batches", "2"}},
			} {
				ckpt := filepath.Join(dir, arch+"-"+c.name+".safetensors")
				if c.finetune == nil {
					ckpt = filepath.Join(dir, arch+"-w8a8.safetensors")
				} else {
					run(append([]string{"finetune", "--from", float, "--limit", "256", "--out", ckpt, "--json", "--quiet"}, c.finetune...)...)
				}
				model, onnxFile := filepath.Join(dir, arch+"-"+c.name+".qmodel"), filepath.Join(dir, arch+"-"+c.name+".onnx")
				r := run("export", "--checkpoint", ckpt, "--out", model, "--requant", c.requant, "--onnx", onnxFile, "--json")
				b := readONNX(r, onnxFile, "int8")
				if exact := r["onnx_exact"]; exact != (c.requant != "fixed") {
					t.Errorf("export --requant %s reported onnx_exact %v (%v)", c.requant, exact, r["onnx_inexact"])
				}
				t.Logf("%s %s: layers with uint8 ONNX weights: %v", arch, c.name, r["onnx_uint8_weights"])
				m, err := qmodel.ReadFile(model)
				if err != nil {
					t.Fatal(err)
				}
				net, err := infer.New(m)
				if err != nil {
					t.Fatal(err)
				}
				rn := net.NewRunner(ds.N)
				rn.Pixels(ds.Images)
				logits := ort.Run(t, b, pixels, shape)
				a, err := onnxtest.Compare(net.OutputQuant(), net.Classes(), rn.Run(ds.N), logits)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s %s (%s requantization): %+v", arch, c.name, c.requant, a)
				switch {
				case c.requant == "fixed":
					// The multipliers of a qat export are float32 values, so
					// their Q31 form converts back to the same floats: the
					// ONNX model is the float-requantization one.
					if !slices.Equal(logits, floatLogits) {
						t.Errorf("the ONNX model of the fixed export computes other logits than the float export's")
					}
				case a.ArgmaxAgreement != 1 || a.MaxLSB != 0 || a.ExactFraction != 1:
					t.Errorf("onnxruntime and the int8 runtime differ: %+v", a)
				}
				if c.name == "w8a8" {
					floatLogits = logits
				}
				if c.requant == "float" {
					exportQDQ(t, ort, ckpt, filepath.Join(dir, arch+"-"+c.name), m, ds.Images)
				}
			}
		})
	}
}

// exportQDQ exports ckpt with --onnx-format qdq and, for 4-bit weights,
// qdq-int4 (to files that start with prefix), checks the report, and
// compares onnxruntime's output codes on pixels with the int8 runtime's
// for m, the int8 model of ckpt: not the same arithmetic
// (onnx.QDQInexact), so within the tolerance of the onnx package's
// TestQDQMatchesRuntime (2 LSB, 90% exact samples, 99% argmax
// agreement).
func exportQDQ(t *testing.T, ort *onnxtest.ORT, ckpt, prefix string, m *qmodel.Model, pixels []uint8) {
	t.Helper()
	forms := []string{"qdq"}
	if len(int4Layers(m)) > 0 {
		forms = append(forms, "qdq-int4")
	}
	net, err := infer.New(m)
	if err != nil {
		t.Fatal(err)
	}
	n := len(pixels) / net.InputLen()
	rn := net.NewRunner(n)
	rn.Pixels(pixels)
	want := rn.Run(n)
	for _, f := range forms {
		out := prefix + "-" + f + ".onnx"
		code, stdout, errs := qat(t, "export", "--checkpoint", ckpt, "--out", prefix+"-"+f+".qmodel", "--onnx", out, "--onnx-format", f, "--json")
		if code != 0 {
			t.Fatalf("export --onnx-format %s: exit %d: %s", f, code, errs)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		opset := float64(onnx.Opset)
		if f == "qdq-int4" {
			opset = onnx.OpsetInt4
			if ws, _ := r["onnx_int4_weights"].([]any); len(ws) != len(int4Layers(m)) {
				t.Errorf("export --onnx-format %s reported int4 weights %v", f, r["onnx_int4_weights"])
			}
		}
		if r["onnx_format"] != f || r["onnx_opset"] != opset || r["onnx_exact"] != false || r["onnx_inexact"] != onnx.QDQInexact {
			t.Errorf("export --onnx-format %s reported %v", f, r)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if f == "qdq" {
			onnxtest.Check(t, b)
		}
		a, err := onnxtest.Compare(net.OutputQuant(), net.Classes(), want, ort.Run(t, b, onnxtest.Pixels(pixels), [4]int{n, m.Input[0], m.Input[1], m.Input[2]}))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s %s: %+v", filepath.Base(prefix), f, a)
		if a.MaxLSB > 2 || a.ExactFraction < 0.9 || a.ArgmaxAgreement < 0.99 {
			t.Errorf("%s %s: onnxruntime is farther from the int8 runtime than measured: %+v", filepath.Base(prefix), f, a)
		}
	}
}

// Usage of --onnx: a float checkpoint needs no --out, a quantized one
// does, and --header needs an int8 model. --onnx-format needs --onnx and
// an int8 model, QDQ float requantization, and qdq-int4 weights of 4 bits
// or fewer (q's are 8-bit).
func TestExportONNXUsage(t *testing.T) {
	dir := t.TempDir()
	float := filepath.Join(dir, "float.safetensors")
	if code, _, errs := qat(t, "train", "--model", "mlp", "--limit", "256", "--epochs", "1", "--out", float, "--json", "--quiet"); code != 0 {
		t.Fatalf("train: %s", errs)
	}
	q := filepath.Join(dir, "q.safetensors")
	if code, _, errs := qat(t, "calibrate", "--from", float, "--out", q, "--batches", "2", "--json"); code != 0 {
		t.Fatalf("calibrate: %s", errs)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"export", "--checkpoint", float}, 2},
		{[]string{"export", "--checkpoint", q, "--onnx", filepath.Join(dir, "q.onnx")}, 2},
		{[]string{"export", "--checkpoint", float, "--onnx", filepath.Join(dir, "f.onnx"), "--header", filepath.Join(dir, "f.h")}, 2},
		{[]string{"export", "--checkpoint", float, "--out", filepath.Join(dir, "f.qmodel"), "--onnx", filepath.Join(dir, "f.onnx")}, 1},
		{[]string{"export", "--checkpoint", float, "--onnx", filepath.Join(dir, "f.onnx")}, 0},
		{[]string{"export", "--checkpoint", q, "--out", filepath.Join(dir, "q.qmodel"), "--onnx", filepath.Join(dir, "q.onnx")}, 0},
		{[]string{"export", "--checkpoint", q, "--out", filepath.Join(dir, "x.qmodel"), "--onnx-format", "qdq"}, 2},
		{[]string{"export", "--checkpoint", q, "--out", filepath.Join(dir, "x.qmodel"), "--onnx", filepath.Join(dir, "x.onnx"), "--onnx-format", "qoperator"}, 2},
		{[]string{"export", "--checkpoint", q, "--out", filepath.Join(dir, "x.qmodel"), "--onnx", filepath.Join(dir, "x.onnx"), "--onnx-format", "qdq", "--requant", "fixed"}, 2},
		{[]string{"export", "--checkpoint", float, "--onnx", filepath.Join(dir, "x.onnx"), "--onnx-format", "qlinear"}, 2},
		{[]string{"export", "--checkpoint", q, "--out", filepath.Join(dir, "x.qmodel"), "--onnx", filepath.Join(dir, "x.onnx"), "--onnx-format", "qdq-int4"}, 2},
		{[]string{"export", "--checkpoint", q, "--out", filepath.Join(dir, "qdq.qmodel"), "--onnx", filepath.Join(dir, "qdq.onnx"), "--onnx-format", "qdq"}, 0},
	} {
		if code, out, errs := qat(t, c.args...); code != c.code {
			t.Errorf("qat %v: exit %d (%s%s), want %d", c.args, code, out, errs, c.code)
		}
	}
	for _, f := range []string{"f.onnx", "q.onnx", "q.qmodel", "qdq.onnx"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "f.qmodel")); err == nil {
		t.Error("export of a float checkpoint wrote an int8 model")
	}
	for _, f := range []string{"x.qmodel", "x.onnx"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("a refused export wrote %s", f)
		}
	}
}
