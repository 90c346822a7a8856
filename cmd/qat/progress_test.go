package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// progressClock is a manually advanced clock for newProgressMode.
type progressClock struct{ t time.Time }

func (c *progressClock) now() time.Time          { return c.t }
func (c *progressClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newProgressClock() *progressClock {
	return &progressClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func progressLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestProgressPlainEveryTenPercent(t *testing.T) {
	var buf bytes.Buffer
	clk := newProgressClock()
	p := newProgressMode(&buf, progressConfig{Label: "epoch 2/5", Total: 100, Every: time.Hour}, false, clk.now)
	for i := 1; i <= 100; i++ {
		clk.advance(time.Second)
		p.Update(i, 1.0/float64(i), 0.5+float64(i)/1000, 2560)
	}
	p.Finish()
	p.Finish() // idempotent
	p.Update(100, 0, 0, 0)
	ls := progressLines(buf.String())
	if len(ls) != 10 { // steps 10, 20, ..., 100; Finish adds nothing new
		t.Fatalf("got %d lines, want 10:\n%s", len(ls), buf.String())
	}
	first := ls[0]
	for _, want := range []string{"epoch 2/5", "step 10/100", "(10.0%)", "loss 0.1000", "acc 51.00%", "2560 samples/s", "elapsed 10s", "eta 1m30s"} {
		if !strings.Contains(first, want) {
			t.Errorf("first line %q lacks %q", first, want)
		}
	}
	last := ls[9]
	for _, want := range []string{"step 100/100", "(100.0%)", "loss 0.0100", "acc 60.00%", "elapsed 1m40s"} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q lacks %q", last, want)
		}
	}
	if strings.Contains(last, "eta") {
		t.Errorf("finished line shows an eta: %q", last)
	}
}

func TestProgressPlainEvery(t *testing.T) {
	var buf bytes.Buffer
	clk := newProgressClock()
	p := newProgressMode(&buf, progressConfig{Label: "train", Total: 1000}, false, clk.now) // Every 0 -> 10s
	for i := 1; i <= 25; i++ {
		clk.advance(time.Second)
		p.Update(i, 2.5, -1, 0)
	}
	p.Finish()
	ls := progressLines(buf.String())
	// lines at 10s and 20s, and the final one at Finish (step 25)
	if len(ls) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(ls), buf.String())
	}
	if !strings.Contains(ls[0], "step 10/1000") || !strings.Contains(ls[1], "step 20/1000") || !strings.Contains(ls[2], "step 25/1000") {
		t.Errorf("unexpected lines:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "acc") || strings.Contains(buf.String(), "samples/s") {
		t.Errorf("unknown accuracy / zero rate shown:\n%s", buf.String())
	}
	if !strings.Contains(ls[0], "loss 2.5000") {
		t.Errorf("line lacks loss: %q", ls[0])
	}
}

func TestProgressPlainUnknownTotal(t *testing.T) {
	var buf bytes.Buffer
	clk := newProgressClock()
	p := newProgressMode(&buf, progressConfig{Every: 5 * time.Second}, false, clk.now)
	for i := 1; i <= 12; i++ {
		clk.advance(time.Second)
		p.Update(i, 0.25, 0.75, 123456)
	}
	p.Finish()
	ls := progressLines(buf.String())
	if len(ls) != 3 || !strings.HasPrefix(ls[0], "step 5 loss 0.2500 acc 75.00% 123.5k samples/s") {
		t.Errorf("unexpected output:\n%s", buf.String())
	}
	// Finish without any Update still reports.
	buf.Reset()
	newProgressMode(&buf, progressConfig{Label: "x", Total: 3}, false, clk.now).Finish()
	if got := buf.String(); !strings.HasPrefix(got, "x: step 0/3") {
		t.Errorf("Finish without Update = %q", got)
	}
}

func TestProgressTTY(t *testing.T) {
	var buf bytes.Buffer
	clk := newProgressClock()
	p := newProgressMode(&buf, progressConfig{Label: "epoch 1", Total: 50}, true, clk.now)
	for i := 1; i <= 50; i++ {
		clk.advance(30 * time.Millisecond)
		p.Update(i, 0.123456, 0.9, 999)
	}
	p.Finish()
	out := buf.String()
	for _, want := range []string{"epoch 1", "loss 0.1235", "acc 90.00%", "999 samples/s", "50/50", "100%"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("terminal output does not end with a newline")
	}

	// Unknown total (spinner) and an unfinished run must not panic either.
	buf.Reset()
	p = newProgressMode(&buf, progressConfig{Label: "eval"}, true, clk.now)
	for i := 1; i <= 5; i++ {
		clk.advance(time.Second)
		p.Update(i, 1, -1, 10)
	}
	p.Finish()
	if !strings.Contains(buf.String(), "eval loss 1.0000") {
		t.Errorf("spinner output lacks description:\n%q", buf.String())
	}
	buf.Reset()
	p = newProgressMode(&buf, progressConfig{Total: 10}, true, clk.now)
	clk.advance(time.Second)
	p.Update(3, 1, 0.5, 10)
	p.Finish()
	if !strings.Contains(buf.String(), "3/10") {
		t.Errorf("unfinished bar lacks count:\n%q", buf.String())
	}
}

func TestNewProgressNonTerminalFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := newProgress(f, progressConfig{Label: "file", Total: 2})
	if p.bar != nil {
		t.Fatal("regular file detected as a terminal")
	}
	p.Update(2, 0.5, 1, 100)
	p.Finish()
	b, _ := os.ReadFile(f.Name())
	if !strings.Contains(string(b), "file: step 2/2") {
		t.Errorf("file output = %q", b)
	}
}

func TestProgressUpdateCheap(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, progressConfig{Label: "x", Total: 1 << 30, Every: time.Hour})
	i := 0
	if n := testing.AllocsPerRun(1000, func() { i++; p.Update(i, 0.5, 0.5, 100) }); n != 0 {
		t.Errorf("Update allocates %v times per call", n)
	}
	if buf.Len() != 0 {
		t.Errorf("unexpected output %q", buf.String())
	}
	clk := newProgressClock()
	tp := newProgressMode(&buf, progressConfig{Label: "x", Total: 1 << 30}, true, clk.now)
	if n := testing.AllocsPerRun(1000, func() { i++; tp.Update(i, 0.5, 0.5, 100) }); n != 0 {
		t.Errorf("terminal Update between redraws allocates %v times per call", n)
	}
}

func BenchmarkProgressUpdate(b *testing.B) {
	var buf bytes.Buffer
	p := newProgress(&buf, progressConfig{Label: "x", Total: 1 << 30, Every: time.Hour})
	for i := 0; i < b.N; i++ {
		p.Update(i, 0.5, 0.5, 100)
	}
}

func TestFormatRate(t *testing.T) {
	for _, c := range []struct {
		r    float64
		want string
	}{{0.5, "0.5"}, {12.34, "12.3"}, {999.6, "1000"}, {1234, "1234"}, {45678, "45.7k"}, {1234567, "1.23M"}} {
		if got := formatRate(c.r); got != c.want {
			t.Errorf("formatRate(%v) = %q, want %q", c.r, got, c.want)
		}
	}
}

// trainProgress opens a display per Fit call with the trainer's label
// and total.
func TestTrainProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &trainProgress{w: &buf}
	p.Start("qat W8A8", 4)
	p.Update(4, 0.5, 0.25, 100)
	p.Finish()
	if got := buf.String(); !strings.HasPrefix(got, "qat W8A8: step 4/4 (100.0%) loss 0.5000 acc 25.00% 100 samples/s") {
		t.Errorf("output %q", got)
	}
}

// qat train without --quiet shows its progress on stderr, and its
// metrics hold the resident memory (on Linux, where rssMB reads it).
func TestTrainShowsProgressAndRSS(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "run.safetensors")
	code, _, errs := qat(t, "train", "--model", "mlp", "--limit", "128", "--epochs", "1", "--batch", "64", "--out", ck)
	if code != 0 {
		t.Fatalf("train: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "train: step 2/2 (100.0%)") {
		t.Errorf("stderr lacks the progress lines:\n%s", errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "run.metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && !strings.Contains(string(b), `"rss_mb":`) {
		t.Errorf("metrics without rss_mb:\n%s", b)
	}
}

func TestRSSMB(t *testing.T) {
	if mb := rssMB(); runtime.GOOS == "linux" && !(mb > 1) {
		t.Errorf("rssMB() = %v on Linux", mb)
	}
}
