package experiment

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"qat/data"
	"qat/layers"
	"qat/model"
	"qat/plots"
	"qat/qmodel"
	"qat/safetensors"
	"qat/train"
)

// tinySpec is a conv with folded BN and a linear layer on 28x28 inputs.
const tinySpec = `{"name":"tiny","input":[1,28,28],"classes":10,"layers":[
	{"type":"conv","name":"c","out":4,"kernel":5,"stride":4,"bn":"b","act":"relu"},
	{"type":"flatten"},
	{"type":"linear","name":"fc","out":10}]}`

// saveCheckpoint writes a checkpoint of the tiny model to path, quantized
// W4A4 and calibrated on embedded data unless float, recording dataset.
func saveCheckpoint(t *testing.T, path string, float bool, dataset string) {
	t.Helper()
	s, err := model.Parse([]byte(tinySpec))
	if err != nil {
		t.Fatal(err)
	}
	m, err := layers.NewModel(s, 3)
	if err != nil {
		t.Fatal(err)
	}
	norm := model.Norm{Mean: data.MNISTMean, Std: data.MNISTStd}
	if !float {
		qc, err := layers.ParseBits("W4A4")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Quantize(qc); err != nil {
			t.Fatal(err)
		}
		ds, err := data.LoadEmbedded("train")
		if err != nil {
			t.Fatal(err)
		}
		if err := train.Calibrate(m, ds, train.CalibrateConfig{Batches: 1, Batch: 32, Norm: norm}); err != nil {
			t.Fatal(err)
		}
	}
	ck := &train.Checkpoint{Model: m, Norm: norm, Dataset: dataset}
	if err := ck.Save(path); err != nil {
		t.Fatal(err)
	}
}

// writeMetrics writes the records to path as JSON lines.
func writeMetrics(t *testing.T, path string, steps []train.StepRecord, epochs []train.EpochRecord) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, s := range steps {
		s.Type = "step"
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range epochs {
		e.Type = "epoch"
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
}

func ptr(v float64) *float64 { return &v }

// quantSteps are the step records of a QAT run: an activation quantizer
// whose scale and zero point change, a per-channel weight quantizer whose
// scales change and an input quantizer that stays fixed and has zero
// error.
func quantSteps() []train.StepRecord {
	q := func(step int64, as float32, az int32, ws float32) train.StepRecord {
		return train.StepRecord{Step: step, Loss: 1, Accuracy: 0.5, Quant: []train.QuantRecord{
			{Name: "input_fake_quant", Role: layers.RoleInput, Scale: []float32{0.02}, ZeroPoint: []int32{3}},
			{Name: "fc.weight_fake_quant", Role: layers.RoleWeight, Scale: []float32{0.1, ws}, ZeroPoint: []int32{0, 0}, MSE: 1e-4, SQNR: ptr(20)},
			{Name: "fc.activation_post_process", Role: layers.RoleAct, Scale: []float32{as}, ZeroPoint: []int32{az}, MSE: 1e-2, SQNR: ptr(15)},
		}}
	}
	return []train.StepRecord{q(10, 0.5, 3, 0.2), q(20, 0.45, 4, 0.18), q(30, 0.4, 4, 0.16)}
}

// svgs checks that paths are exactly base.png and base.svg for each of
// bases, in that order, and returns the SVG texts by base.
func svgs(t *testing.T, paths, bases []string) map[string]string {
	t.Helper()
	var want []string
	for _, b := range bases {
		want = append(want, b+".png", b+".svg")
	}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths\n%v\nwant\n%v", paths, want)
	}
	out := map[string]string{}
	for _, b := range bases {
		s, err := os.ReadFile(b + ".svg")
		if err != nil {
			t.Fatal(err)
		}
		out[b] = string(s)
	}
	return out
}

func TestPlotDir(t *testing.T) {
	dir := t.TempDir()
	writeMetrics(t, filepath.Join(dir, "tiny-float.metrics.jsonl"),
		[]train.StepRecord{{Step: 10, Loss: 2, Accuracy: 0.3}, {Step: 20, Loss: 1, Accuracy: 0.7}},
		[]train.EpochRecord{{Epoch: 1, Step: 20, ValLoss: ptr(0.9), ValAccuracy: ptr(0.72)}})
	writeMetrics(t, filepath.Join(dir, "tiny-w4a4.metrics.jsonl"), quantSteps(), nil)
	saveCheckpoint(t, filepath.Join(dir, "tiny-float.safetensors"), true, "embedded")
	// A dataset that is not there: the activations come from the embedded sample.
	saveCheckpoint(t, filepath.Join(dir, "tiny-w4a4.safetensors"), false, filepath.Join(dir, "no-such-data"))
	// Other safetensors files are skipped: an int8 model file (even a
	// broken one) and a file without checkpoint metadata.
	for name, meta := range map[string]map[string]string{
		"tiny.int8.safetensors": {qmodel.MetaFormat: "qat-int8/1"},
		"tensors.safetensors":   {},
	} {
		f := &safetensors.File{Metadata: meta, Tensors: map[string]safetensors.Tensor{"x": safetensors.FromFloat32([]int{1}, []float32{1})}}
		if err := f.WriteFile(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a run file"), 0o644); err != nil {
		t.Fatal(err)
	}

	paths, err := PlotDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "plots")
	var bases []string
	for _, b := range []string{"loss", "accuracy", "tiny-w4a4_quant_mse", "tiny-w4a4_quant_sqnr", "tiny-w4a4_quant_scale",
		"tiny-w4a4_quant_zero_point", "tiny-w4a4_hist_input", "tiny-w4a4_hist_c_weight", "tiny-w4a4_hist_c_act",
		"tiny-w4a4_hist_fc_weight", "tiny-w4a4_hist_fc_act"} {
		bases = append(bases, filepath.Join(out, b))
	}
	figs := svgs(t, paths, bases)
	for base, want := range map[string][]string{
		"loss":                    {"tiny-float train", "tiny-float val", "tiny-w4a4 train"},
		"tiny-w4a4_hist_c_weight": {"c weight as quantized (BN folded)", "grid of channel", "16 levels"},
		"tiny-w4a4_hist_fc_act":   {"fc output before quantization (256 samples of embedded test)"},
		"tiny-w4a4_hist_input":    {"256 samples of embedded test", "input value (normalised)"},
	} {
		for _, s := range want {
			if !strings.Contains(figs[filepath.Join(out, base)], s) {
				t.Errorf("%s lacks %q", base, s)
			}
		}
	}
	if strings.Contains(figs[filepath.Join(out, "tiny-w4a4_hist_fc_weight")], "BN folded") {
		t.Error("fc has no BN to fold")
	}
}

func TestPlotDirErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := PlotDir(empty); !errors.Is(err, plots.ErrNoData) || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty directory: error %v, want ErrNoData naming it", err)
	}
	missing := filepath.Join(empty, "missing")
	if _, err := PlotDir(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing directory: error %v", err)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "run.metrics.jsonl")
	if err := os.WriteFile(bad, []byte(`{"type":"step","step":1}`+"\n"+`{"type":"step",`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PlotDir(dir); err == nil || !strings.Contains(err.Error(), bad+": metrics line 2") {
		t.Errorf("corrupt metrics: error %v, want one naming the file and line", err)
	}

	// Metrics without records.
	if err := os.WriteFile(bad, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PlotDir(dir); !errors.Is(err, plots.ErrNoData) {
		t.Errorf("empty metrics: error %v, want ErrNoData", err)
	}

	// A damaged checkpoint is an error naming it.
	writeMetrics(t, bad, quantSteps(), nil)
	ck := filepath.Join(dir, "run.safetensors")
	if err := os.WriteFile(ck, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PlotDir(dir); err == nil || !strings.Contains(err.Error(), ck) {
		t.Errorf("damaged checkpoint: error %v, want one naming it", err)
	}
}

// Without test data that fits the model, the capture runs on a zero
// sample and only weight histograms are drawn.
func TestTestBatch(t *testing.T) {
	s, err := model.Parse([]byte(`{"name":"small","input":[1,8,8],"classes":2,"layers":[{"type":"flatten"},{"type":"linear","name":"fc","out":2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := layers.NewModel(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	x, from := testBatch(&train.Checkpoint{Model: m, Dataset: "embedded"})
	if len(x) != 64 || from != "" || slices.ContainsFunc(x, func(v float32) bool { return v != 0 }) {
		t.Errorf("unfitting data: %d values from %q, want one zero sample", len(x), from)
	}
}
