package train

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// What the trainer's writer writes, ReadMetrics reads back unchanged.
func TestReadMetricsRoundTrip(t *testing.T) {
	sqnr, vl, va, ce, kd := 21.5, 0.25, 0.93, 1.375, 0.0
	steps := []StepRecord{
		{Type: "step", Step: 10, Epoch: 1, Loss: 1.5, LR: 1e-3, Accuracy: 0.5, SamplesPerSec: 900, RSSMB: 120,
			Quant: []QuantRecord{
				{Name: "input_fake_quant", Role: "input", Scale: []float32{0.02}, ZeroPoint: []int32{3}, MSE: 1e-4, SQNR: &sqnr, MaxAbs: 0.01},
				{Name: "fc.weight_fake_quant", Role: "weight", Scale: []float32{0.1, 0.2}, ZeroPoint: []int32{0, 0}, Clipped: 0.125},
			}},
		{Type: "step", Step: 20, Epoch: 1, Loss: 1.25, LossCE: &ce, LossKD: &kd, LR: 1e-3, Accuracy: 0.625, SamplesPerSec: 950},
	}
	// A distilling run's terms (loss_ce, loss_kd; a KD term of 0 too).
	epochs := []EpochRecord{{Type: "epoch", Epoch: 1, Step: 20, TrainLoss: 1.3, TrainLossCE: &ce, TrainLossKD: &kd, TrainAccuracy: 0.6,
		ValLoss: &vl, ValAccuracy: &va, ValN: 100, SamplesPerSec: 800}}
	var buf bytes.Buffer
	w := newMetricsWriter(&buf)
	for _, v := range []any{steps[0], epochs[0], steps[1]} {
		if err := w.write(v); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("\n") // a blank line is skipped
	gotS, gotE, err := ReadMetrics(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotS, steps) || !reflect.DeepEqual(gotE, epochs) {
		t.Errorf("read back\n%+v\n%+v\nwant\n%+v\n%+v", gotS, gotE, steps, epochs)
	}
	// The last line needs no newline.
	gotS, _, err = ReadMetrics(strings.NewReader(`{"type":"step","step":3}`))
	if err != nil || len(gotS) != 1 || gotS[0].Step != 3 {
		t.Errorf("unterminated last line: %+v, %v", gotS, err)
	}
}

func TestReadMetricsErrors(t *testing.T) {
	good := `{"type":"step","step":1,"loss":2}` + "\n"
	for _, c := range []struct{ name, in, want string }{
		{"corrupt", good + "{\"type\":\"step\",x}\n" + good, "line 2:"},
		{"truncated", good + good + `{"type":"epoch","epoch":1,"train_lo`, "line 3:"},
		{"unknown type", good + `{"type":"eval","n":3}`, `line 2: unknown record type "eval"`},
		{"no type", `{"step":1}`, `line 1: unknown record type ""`},
		{"unknown field", good + good + good + `{"type":"step","step":4,"los":1}`, `line 4: step record: json: unknown field "los"`},
		{"epoch field in a step", `{"type":"step","train_loss":1}`, `line 1: step record: json: unknown field "train_loss"`},
		{"wrong type of value", `{"type":"epoch","epoch":"one"}`, "line 1: epoch record:"},
		{"two records on a line", good[:len(good)-1] + good, "line 1:"},
		{"not an object", "[1,2]\n", "line 1:"},
	} {
		_, _, err := ReadMetrics(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestReadMetricsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.metrics.jsonl")
	content := `{"type":"step","step":1,"loss":2}` + "\n" + `{"type":"epoch","epoch":1,"step":1,"train_loss":2,"train_accuracy":0.5,"samples_per_sec":10}` + "\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	steps, epochs, err := ReadMetricsFile(path)
	if err != nil || len(steps) != 1 || len(epochs) != 1 || epochs[0].TrainAccuracy != 0.5 || epochs[0].ValAccuracy != nil {
		t.Errorf("ReadMetricsFile = %+v, %+v, %v", steps, epochs, err)
	}
	bad := filepath.Join(dir, "bad.metrics.jsonl")
	if err := os.WriteFile(bad, []byte(content+"{\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadMetricsFile(bad); err == nil || !strings.Contains(err.Error(), bad+": metrics line 3") {
		t.Errorf("corrupt file: error %v, want one naming the file and line 3", err)
	}
	missing := filepath.Join(dir, "missing.jsonl")
	if _, _, err := ReadMetricsFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: error %v, want one naming it", err)
	}
}
