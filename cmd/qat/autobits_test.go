package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"qat/autobits"
	"qat/data"
	"qat/layers"
	"qat/train"
)

// smallCNN is the small model of package model's tests: two convs (one
// with BN and relu6) and a linear head, 1368 weights.
const smallCNN = "../../model/testdata/small-cnn.json"

// trainSmall trains smallCNN for one epoch on 256 embedded images.
func trainSmall(t *testing.T, dir string) string {
	t.Helper()
	float := filepath.Join(dir, "float.safetensors")
	qatOK(t, "train", "--model", smallCNN, "--limit", "256", "--epochs", "1", "--out", float, "--quiet")
	return float
}

// The bytes autobits counts for an assignment are the size of the file
// qat export writes for the checkpoint qat calibrate makes from the
// assignment's quant config (same data and batches), and qat finetune
// takes that quant config as it is.
func TestAutobitsBytesAreExportedSize(t *testing.T) {
	dir := t.TempDir()
	float := trainSmall(t, dir)
	a := autobits.Assignment{{Layer: "conv1", Weight: 8, Act: 4}, {Layer: "conv2", Weight: 2, Act: 6}, {Layer: "head", Weight: 4, Act: 8}}
	js, err := a.QuantConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	qc := filepath.Join(dir, "quant.json")
	if err := os.WriteFile(qc, js, 0o644); err != nil {
		t.Fatal(err)
	}
	ck, model := filepath.Join(dir, "ptq.safetensors"), filepath.Join(dir, "ptq.qmodel")
	qatOK(t, "calibrate", "--from", float, "--quant-config", qc, "--limit", "256", "--batches", "2", "--out", ck)
	qatOK(t, "export", "--checkpoint", ck, "--out", model)
	st, err := os.Stat(model)
	if err != nil {
		t.Fatal(err)
	}
	tr, _, _, err := data.Splits(data.SourceEmbedded, 256)
	if err != nil {
		t.Fatal(err)
	}
	qm, err := autobits.PTQ(float, a, tr, 2)
	if err != nil {
		t.Fatal(err)
	}
	n, err := autobits.Bytes(qm)
	if err != nil {
		t.Fatal(err)
	}
	if n != st.Size() {
		t.Errorf("autobits counts %d bytes for %s; qat export wrote %d", n, a, st.Size())
	}
	med, runs, err := autobits.Latency(qm, tr.Images[:3*tr.ImageSize()], 5)
	if err != nil || len(runs) != 5 || !(med >= slices.Min(runs) && med <= slices.Max(runs)) {
		t.Errorf("Latency: median %v of runs %v, %v", med, runs, err)
	}
	for _, c := range []struct {
		pixels []uint8
		runs   int
		want   string
	}{{tr.Images[:tr.ImageSize()], 0, "0 latency runs"}, {tr.Images[:tr.ImageSize()+1], 1, "785 pixels are not whole samples of 784"}} {
		if _, _, err := autobits.Latency(qm, c.pixels, c.runs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Latency of %d pixels, %d runs: %v, want an error containing %q", len(c.pixels), c.runs, err, c.want)
		}
	}

	ft := filepath.Join(dir, "qat.safetensors")
	qatOK(t, "finetune", "--from", float, "--quant-config", qc, "--limit", "256", "--epochs", "1", "--out", ft, "--quiet")
	got, err := train.LoadCheckpoint(ft)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range a {
		w, act := got.Model.Quant.WeightSpec(l.Layer), got.Model.Quant.ActSpec(l.Layer)
		if w.Bits != l.Weight || act.Bits != l.Act {
			t.Errorf("finetune --quant-config: %s at W%dA%d, want W%dA%d", l.Layer, w.Bits, act.Bits, l.Weight, l.Act)
		}
	}
}

// Budgets that are missing, doubled, not positive or below the smallest
// model (every layer at W2A2) are usage errors naming the flag and the
// problem.
func TestAutobitsBudgetErrors(t *testing.T) {
	dir := t.TempDir()
	float := trainSmall(t, dir)
	out := filepath.Join(dir, "ab.safetensors")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "a budget is required: --budget-bytes N or --budget-latency MS"},
		{[]string{"--budget-bytes", "5000", "--budget-latency", "1"}, "--budget-bytes and --budget-latency: give one budget, not both"},
		{[]string{"--budget-bytes", "0"}, "--budget-bytes 0: want a positive number of bytes"},
		{[]string{"--budget-bytes", "-5"}, "--budget-bytes -5: want a positive number of bytes"},
		{[]string{"--budget-latency", "0"}, "--budget-latency 0: want a positive, finite number of milliseconds"},
		{[]string{"--budget-latency", "-1.5"}, "--budget-latency -1.5: want a positive, finite number of milliseconds"},
		{[]string{"--budget-latency", "Inf"}, "--budget-latency +Inf: want a positive, finite number of milliseconds"},
		{[]string{"--budget-bytes", "100"}, "--budget-bytes: autobits: budget 100 bytes is below the smallest achievable"},
		{[]string{"--budget-bytes", "5000", "--latency-runs", "0"}, "--latency-runs 0: want at least 1 each"},
	} {
		args := append([]string{"autobits", "--from", float, "--out", out, "--limit", "256", "--quiet"}, c.args...)
		code, _, errs := qat(t, args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and an error containing %q", c.args, code, errs, c.want)
		}
	}
	if code, _, errs := qat(t, "autobits", "--from", float, "--out", float, "--budget-bytes", "5000"); code != 2 || !strings.Contains(errs, "is the same file as --from") {
		t.Errorf("--out over --from: exit %d, %q", code, errs)
	}
}

// A whole run on the small model at 85% of W8A8's bytes (its file is
// mostly scales, biases and JSON: all-W2A2 takes 73%): the fine-tuned
// model's file is within budget and is the size reported, the report's
// files are written, and its quant config is the chosen assignment.
func TestAutobitsRun(t *testing.T) {
	dir := t.TempDir()
	float := trainSmall(t, dir)
	tr, _, _, err := data.Splits(data.SourceEmbedded, 256)
	if err != nil {
		t.Fatal(err)
	}
	w8, err := autobits.PTQ(float, autobits.Uniform([]string{"conv1", "conv2", "head"}, 8, 8), tr, 1)
	if err != nil {
		t.Fatal(err)
	}
	full, err := autobits.Bytes(w8)
	if err != nil {
		t.Fatal(err)
	}
	budget := full * 85 / 100
	out, report := filepath.Join(dir, "work", "ab.safetensors"), filepath.Join(dir, "report")
	code, stdout, errs := qat(t, "autobits", "--from", float, "--budget-bytes", fmt.Sprint(budget), "--out", out, "--report", report,
		"--limit", "256", "--test-limit", "100", "--batches", "1", "--candidates", "2", "--latency-batch", "10", "--latency-runs", "1", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("autobits: exit %d: %s", code, errs)
	}
	var rep autobits.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("autobits printed %q: %v", stdout, err)
	}
	st, err := os.Stat(rep.Final.Int8Model)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Met || rep.Final.Bytes != st.Size() || float64(st.Size()) > float64(budget) {
		t.Errorf("met %t, reported %d bytes, file %d bytes, budget %d", rep.Met, rep.Final.Bytes, st.Size(), budget)
	}
	// The reference's file holds its own scales, whose text is a few bytes
	// longer or shorter than the post-training model's.
	st, err = os.Stat(rep.Reference.Int8Model)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reference.Bits.String() != "W8A8" || rep.Reference.Bytes != st.Size() || rep.Reference.Bytes < full-32 || rep.Reference.Bytes > full+32 {
		t.Errorf("reference %s of %d bytes (file %d), want W8A8 of about %d", rep.Reference.Bits, rep.Reference.Bytes, st.Size(), full)
	}
	for _, f := range []string{autobits.SummaryJSON, autobits.SummaryMarkdown, autobits.QuantConfigFile, "pareto-bytes.png", "pareto-bytes.svg",
		"pareto-latency.png", "pareto-latency.svg"} {
		if _, err := os.Stat(filepath.Join(report, f)); err != nil {
			t.Error(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(report, autobits.QuantConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	qc, err := layers.ParseQuantConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range rep.Chosen {
		if qc.WeightSpec(l.Layer).Bits != l.Weight || qc.ActSpec(l.Layer).Bits != l.Act {
			t.Errorf("quant config of %s: W%dA%d, chosen W%dA%d", l.Layer, qc.WeightSpec(l.Layer).Bits, qc.ActSpec(l.Layer).Bits, l.Weight, l.Act)
		}
	}
}
