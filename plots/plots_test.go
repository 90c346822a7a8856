package plots

import (
	"encoding/xml"
	"errors"
	"image"
	_ "image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"qat/quant"
)

// checkFigures checks that paths are exactly base.png and base.svg for
// each of bases, in that order, that every PNG decodes with the size of
// w x h at DPI and every SVG is well-formed XML with an svg root, and
// returns the SVG texts by base.
func checkFigures(t *testing.T, paths, bases []string, w, h vg.Length) map[string]string {
	t.Helper()
	var want []string
	for _, b := range bases {
		want = append(want, b+".png", b+".svg")
	}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths\n%v\nwant\n%v", paths, want)
	}
	svgs := map[string]string{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, ".png") {
			cfg, format, err := image.DecodeConfig(f)
			f.Close()
			if err != nil || format != "png" {
				t.Fatalf("%s: %v (format %q)", p, err, format)
			}
			wantW, wantH := int(math.Ceil(float64(w/vg.Inch)*DPI)), int(math.Ceil(float64(h/vg.Inch)*DPI))
			if cfg.Width != wantW || cfg.Height != wantH {
				t.Errorf("%s is %dx%d pixels, want %dx%d", p, cfg.Width, cfg.Height, wantW, wantH)
			}
			continue
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		svgs[strings.TrimSuffix(p, ".svg")] = string(b)
		dec := xml.NewDecoder(strings.NewReader(string(b)))
		root := ""
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if s, ok := tok.(xml.StartElement); ok && root == "" {
				root = s.Name.Local
			}
		}
		if root != "svg" {
			t.Errorf("%s: root element %q, want svg", p, root)
		}
	}
	return svgs
}

func TestSave(t *testing.T) {
	dir := t.TempDir()
	p := newPlot("title", "x", "y")
	l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 2}})
	if err != nil {
		t.Fatal(err)
	}
	p.Add(l)
	p.Legend.Add("a line", l)
	base := filepath.Join(dir, "sub", "fig")
	paths, err := Save(p, base, 4*vg.Inch, 3*vg.Inch)
	if err != nil {
		t.Fatal(err)
	}
	svgs := checkFigures(t, paths, []string{base}, 4*vg.Inch, 3*vg.Inch)
	for _, s := range []string{"title", "a line"} {
		if !strings.Contains(svgs[base], s) {
			t.Errorf("SVG lacks %q", s)
		}
	}
	if p.Title.Text != "title" || p.Legend.Rectangle(plotCanvas()).Size().X == 0 {
		t.Error("Save changed the plot's title or legend")
	}
	if _, err := Save(p, base, 0, vg.Inch); err == nil {
		t.Error("zero width accepted")
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Save(p, filepath.Join(file, "fig"), Width, Height); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("unwritable directory: error %v, want one naming it", err)
	}
}

// plotCanvas is a canvas to measure legends on.
func plotCanvas() draw.Canvas {
	return draw.New(vgimg.New(Width, Height))
}

func TestLogTicks(t *testing.T) {
	ticks := logTicks{}.Ticks(-2, 0)
	var labels []string
	for _, tk := range ticks {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if !slices.Equal(labels, []string{"0.01", "0.1", "1"}) || len(ticks) != 19 {
		t.Errorf("ticks of [0.01, 1]: %d ticks labelled %v, want 19 labelled 0.01 0.1 1", len(ticks), labels)
	}
	if l := pow10Label(5); l != "1e5" {
		t.Errorf("pow10Label(5) = %q", l)
	}
	// Within one decade: the default ticks of the values, at their logs.
	for _, tk := range (logTicks{}).Ticks(math.Log10(2), math.Log10(5)) {
		if tk.Label != "" && math.Abs(math.Pow(10, tk.Value)-mustParse(t, tk.Label)) > 1e-9 {
			t.Errorf("tick %q at log value %v", tk.Label, tk.Value)
		}
	}
}

func mustParse(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("tick label %q: %v", s, err)
	}
	return v
}

func TestEMA(t *testing.T) {
	if got := ema([]float64{1, 2, 3}, 0.5); !slices.Equal(got, []float64{1, 1.5, 2.25}) {
		t.Errorf("ema = %v, want [1 1.5 2.25]", got)
	}
	if got := ema(nil, 0.5); len(got) != 0 {
		t.Errorf("ema(nil) = %v", got)
	}
}

func ptr(v float64) *float64 { return &v }

func TestCurves(t *testing.T) {
	dir := t.TempDir()
	float := Run{Label: "float", Steps: []Step{
		{Step: 10, Loss: 2, Accuracy: 0.3}, {Step: 20, Loss: 1, Accuracy: 0.6},
		{Step: 30, Loss: 0.5, Accuracy: 0.8},
	}, Epochs: []Epoch{{Step: 30, ValLoss: ptr(0.6), ValAccuracy: ptr(0.78)}}}
	qat := Run{Label: "w4a4", Steps: []Step{{Step: 10, Loss: 0.4, Accuracy: 0.85}}}
	paths, err := Curves(dir, []Run{float, qat})
	if err != nil {
		t.Fatal(err)
	}
	svgs := checkFigures(t, paths, []string{filepath.Join(dir, "loss"), filepath.Join(dir, "accuracy")}, Width, Height)
	for base, svg := range svgs {
		for _, s := range []string{"moving average", "float train", "float val", "w4a4 train", "step"} {
			if !strings.Contains(svg, s) {
				t.Errorf("%s lacks %q", base, s)
			}
		}
		if strings.Contains(svg, "w4a4 val") {
			t.Errorf("%s has validation points of a run without them", base)
		}
	}
	if !strings.Contains(svgs[filepath.Join(dir, "loss")], "log scale") {
		t.Error("positive losses are not on a log scale")
	}
	// A zero loss cannot go on a log scale.
	zero := Run{Label: "z", Steps: []Step{{Step: 1, Loss: 0}, {Step: 2, Loss: 1}}}
	if _, err := Curves(dir, []Run{zero}); err != nil {
		t.Errorf("zero loss: %v", err)
	}
	if _, err := Curves(dir, []Run{{Label: "empty"}}); !errors.Is(err, ErrNoData) {
		t.Errorf("runs without records: error %v, want ErrNoData", err)
	}
}

// quantRun has an activation quantizer whose scale and zero point change,
// a per-channel weight quantizer whose scales change (mean 0.15 at first)
// and an input quantizer that stays fixed and has zero error once.
func quantRun() Run {
	q := func(step int64, as float32, az int32, ws float32) Step {
		return Step{Step: step, Loss: 1, Accuracy: 0.5, Quant: []Quantizer{
			{Name: "input_fake_quant", Role: RoleInput, Scale: []float32{0.02}, ZeroPoint: []int32{3}, MSE: 0, SQNR: math.Inf(1)},
			{Name: "fc.weight_fake_quant", Role: RoleWeight, Scale: []float32{0.1, ws}, ZeroPoint: []int32{0, 0}, MSE: 1e-4, SQNR: 20},
			{Name: "fc.activation_post_process", Role: RoleAct, Scale: []float32{as}, ZeroPoint: []int32{az}, MSE: 1e-2, SQNR: 15},
		}}
	}
	return Run{Label: "qat run", Steps: []Step{q(10, 0.5, 3, 0.2), q(20, 0.45, 4, 0.18), q(30, 0.4, 4, 0.16)}}
}

func TestQuantError(t *testing.T) {
	dir := t.TempDir()
	paths, err := QuantError(dir, quantRun())
	if err != nil {
		t.Fatal(err)
	}
	mse, sqnr := filepath.Join(dir, "qat_run_quant_mse"), filepath.Join(dir, "qat_run_quant_sqnr")
	svgs := checkFigures(t, paths, []string{mse, sqnr}, Width, Height)
	for base, svg := range svgs {
		for _, s := range []string{"fc.weight_fake_quant", "fc.activation_post_process", "qat run"} {
			if !strings.Contains(svg, s) {
				t.Errorf("%s lacks %q", base, s)
			}
		}
		// The input quantizer has no error to draw.
		if strings.Contains(svg, "input_fake_quant") {
			t.Errorf("%s draws the error-free input quantizer", base)
		}
	}
	if _, err := QuantError(dir, Run{Label: "float", Steps: []Step{{Step: 1, Loss: 1}}}); !errors.Is(err, ErrNoData) {
		t.Errorf("run without quantizers: error %v, want ErrNoData", err)
	}
}

func TestQuantParams(t *testing.T) {
	dir := t.TempDir()
	paths, err := QuantParams(dir, quantRun())
	if err != nil {
		t.Fatal(err)
	}
	scale, zp := filepath.Join(dir, "qat_run_quant_scale"), filepath.Join(dir, "qat_run_quant_zero_point")
	svgs := checkFigures(t, paths, []string{scale, zp}, Width, Height)
	for _, s := range []string{"fc.activation_post_process (s0 0.5)", "fc.weight_fake_quant (s0 0.15; 2 ch)", "mean over channels"} {
		if !strings.Contains(svgs[scale], s) {
			t.Errorf("scale figure lacks %q", s)
		}
	}
	if strings.Contains(svgs[scale], "input_fake_quant") {
		t.Error("scale figure draws the fixed input quantizer")
	}
	if !strings.Contains(svgs[zp], "fc.activation_post_process") || strings.Contains(svgs[zp], "fc.weight_fake_quant") {
		t.Error("zero-point figure should draw the activation quantizer only")
	}
	// Fixed params: nothing to draw.
	fixed := quantRun()
	fixed.Steps = fixed.Steps[:1]
	if _, err := QuantParams(dir, fixed); !errors.Is(err, ErrNoData) {
		t.Errorf("fixed params: error %v, want ErrNoData", err)
	}
}

func TestPrefix(t *testing.T) {
	for in, want := range map[string]string{"": "", "lenet-w4a4": "lenet-w4a4_", "a b/c": "a_b_c_"} {
		if got := prefix(in); got != want {
			t.Errorf("prefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGridOf(t *testing.T) {
	g, err := GridOf(quant.Params{Scale: []float32{0.5}, ZeroPoint: []int32{3}, QMin: 0, QMax: 15, Axis: -1})
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := g.Range(); lo != -1.5 || hi != 6 || g.Levels() != 16 || g.Channel != -1 {
		t.Errorf("uint4 grid: range [%v, %v], %d levels, channel %d; want [-1.5, 6], 16, -1", lo, hi, g.Levels(), g.Channel)
	}
	if v, step := g.Lines(64); step != 1 || len(v) != 16 || v[0] != -1.5 || v[15] != 6 {
		t.Errorf("Lines(64) = %v, step %d; want all 16 levels", v, step)
	}
	// Every 4th level from the zero point: codes 3, 7, 11, 15.
	if v, step := g.Lines(4); step != 4 || !slices.Equal(v, []float64{0, 2, 4, 6}) {
		t.Errorf("Lines(4) = %v, step %d; want [0 2 4 6], step 4", v, step)
	}

	pc := quant.Params{Scale: []float32{0.125, 0.5, 0.25}, ZeroPoint: []int32{0, 0, 0}, QMin: -127, QMax: 127, Axis: 0}
	g, err = GridOf(pc)
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := g.Range(); g.Channel != 1 || g.Channels != 3 || lo != -63.5 || hi != 63.5 || g.Levels() != 255 {
		t.Errorf("per-channel grid: channel %d of %d, range [%v, %v], %d levels", g.Channel, g.Channels, lo, hi, g.Levels())
	}
	// 255 levels: every 3rd gives 85 lines, every 4th codes -124..124.
	if v, step := g.Lines(64); step != 4 || len(v) != 63 || v[0] != -62 || v[62] != 62 {
		t.Errorf("Lines(64) of 255 levels: %d lines from %v, step %d", len(v), v[0], step)
	}
	pc.Scale = []float32{0.5, 0.5, 0.25}
	if g, _ := GridOf(pc); g.Channel != 0 {
		t.Errorf("tie: channel %d, want the first", g.Channel)
	}
	if _, err := GridOf(quant.Params{Scale: []float32{0}, ZeroPoint: []int32{0}, QMax: 15, Axis: -1}); !errors.Is(err, quant.ErrParams) {
		t.Errorf("zero scale: error %v", err)
	}
}

func TestHistogramBins(t *testing.T) {
	bins := histogram([]float32{0, 0.1, 0.5, 0.99, 1, -1, 2}, 0, 1, 4)
	want := []bin{{0, 0.25, 2}, {0.25, 0.5, 0}, {0.5, 0.75, 1}, {0.75, 1, 2}}
	if !slices.Equal(bins, want) {
		t.Errorf("bins %v, want %v", bins, want)
	}
}

func TestBinsFor(t *testing.T) {
	for n, want := range map[int]int{1: 20, 100: 20, 400: 40, 3600: 120, 1e6: 120} {
		if got := binsFor(n); got != want {
			t.Errorf("binsFor(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd", 112: "112th"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHistogram(t *testing.T) {
	dir := t.TempDir()
	// A per-channel int8 weight [3, 4]: channel 1 has the largest scale.
	w := []float32{0.1, -0.2, 0.3, 0, 50, -60, 70, -80, 1, 2, 3, 40}
	pc := quant.Params{Scale: []float32{0.01, 0.5, 0.25}, ZeroPoint: []int32{0, 0, 0}, QMin: -127, QMax: 127, Axis: 0}
	base := filepath.Join(dir, "w")
	paths, err := Histogram(base, "fc weight", Tensor{Values: w, Shape: []int{3, 4}, Params: pc}, "weight value")
	if err != nil {
		t.Fatal(err)
	}
	svg := checkFigures(t, paths, []string{base}, Width, Height)[base]
	// Channel 1 clips 70 and -80 (beyond 127*0.5), channel 2 clips 40
	// (beyond 127*0.25): 3 of 12.
	for _, s := range []string{"fc weight", "grid of channel 1 (largest of 3 scales)", "every 4th grid level (63 of 255)",
		"clipping range [-63.5, 63.5]", "25.00% clipped", "SQNR", "weight value", "count (log scale)"} {
		if !strings.Contains(svg, s) {
			t.Errorf("SVG lacks %q", s)
		}
	}
	// Activations: per tensor, no shape needed; a 4-bit grid is drawn whole.
	act := []float32{0, 0, 0, 0.5, 1, 1.5, 9}
	ap := quant.Params{Scale: []float32{0.5}, ZeroPoint: []int32{0}, QMin: 0, QMax: 15, Axis: -1}
	base = filepath.Join(dir, "a")
	paths, err = Histogram(base, "act", Tensor{Values: act, Params: ap}, "activation value")
	if err != nil {
		t.Fatal(err)
	}
	svg = checkFigures(t, paths, []string{base}, Width, Height)[base]
	for _, s := range []string{"grid: 16 levels, scale 0.5, zero point 0", "grid levels (16 of 16)", "clipping range [0, 7.5]", "14.29% clipped"} {
		if !strings.Contains(svg, s) {
			t.Errorf("SVG lacks %q", s)
		}
	}

	for _, c := range []struct {
		name string
		t    Tensor
		want string
	}{
		{"no values", Tensor{Params: ap}, "no values"},
		{"NaN", Tensor{Values: []float32{1, float32(math.NaN())}, Params: ap}, "value 1 is NaN"},
		{"per-channel without shape", Tensor{Values: w, Params: pc}, "does not hold 12 values"},
		{"wrong shape", Tensor{Values: w, Shape: []int{4, 3}, Params: pc}, "has 4 channels, params have 3"},
		{"axis outside shape", Tensor{Values: w, Shape: []int{12}, Params: quant.Params{Scale: []float32{1}, ZeroPoint: []int32{0}, QMax: 3, Axis: 1}}, "outside shape"},
		{"per-tensor shape mismatch", Tensor{Values: act, Shape: []int{2}, Params: ap}, "does not hold 7 values"},
		{"invalid params", Tensor{Values: act, Params: quant.Params{Scale: []float32{1}, ZeroPoint: []int32{0}, QMin: 3, QMax: 3, Axis: -1}}, "empty code range"},
	} {
		_, err := Histogram(filepath.Join(dir, "bad"), "bad", c.t, "x")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad") {
			t.Errorf("%s: error %v, want one naming the figure and containing %q", c.name, err, c.want)
		}
	}
}

func TestHistograms(t *testing.T) {
	dir := t.TempDir()
	w := Tensor{Values: []float32{0.1, -0.2, 0.3, 0}, Shape: []int{2, 2},
		Params: quant.Params{Scale: []float32{0.01, 0.02}, ZeroPoint: []int32{0, 0}, QMin: -7, QMax: 7, Axis: 0}}
	a := Tensor{Values: []float32{0, 0.5, 1, 3}, Params: quant.Params{Scale: []float32{0.1}, ZeroPoint: []int32{0}, QMin: 0, QMax: 15, Axis: -1}}
	m := Model{Label: "net w4", Source: "4 samples of test", Tensors: []QuantTensor{
		{Name: "input_fake_quant", Role: RoleInput, Tensor: a},
		{Name: "c/1.weight_fake_quant", Layer: "c/1", Role: RoleWeight, Folded: true, Tensor: w},
		{Name: "c/1.activation_post_process", Layer: "c/1", Role: RoleAct, Tensor: a},
		{Name: "fc.weight_fake_quant", Layer: "fc", Role: RoleWeight, Tensor: w},
	}}
	paths, err := Histograms(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	pre := filepath.Join(dir, "net_w4_hist_")
	svgs := checkFigures(t, paths, []string{pre + "input", pre + "c_1_weight", pre + "c_1_act", pre + "fc_weight"}, Width, Height)
	for base, want := range map[string]string{
		"input":      "net w4: input (4 samples of test)",
		"c_1_weight": "net w4: c/1 weight as quantized (BN folded)",
		"c_1_act":    "net w4: c/1 output before quantization (4 samples of test)",
		"fc_weight":  "net w4: fc weight",
	} {
		if !strings.Contains(svgs[pre+base], want) {
			t.Errorf("%s lacks %q", base, want)
		}
	}
	if strings.Contains(svgs[pre+"fc_weight"], "BN folded") {
		t.Error("fc weight is not folded")
	}

	// Without a source only the weights are drawn.
	m.Source = ""
	paths, err = Histograms(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, paths, []string{pre + "c_1_weight", pre + "fc_weight"}, Width, Height)

	// An error names the quantizer.
	m.Tensors[1].Values = nil
	if _, err := Histograms(dir, m); !errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), "quantizer c/1.weight_fake_quant") {
		t.Errorf("empty tensor: error %v, want ErrNoData naming the quantizer", err)
	}
}

func TestCharts(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "bits")
	paths, err := BitsAccuracy(base, "LeNet accuracy by bit width", []Series{
		{Label: "PTQ", X: []float64{8, 4, 2}, Y: []float64{0.99, 0.9, 0.3}},
		{Label: "QAT", X: []float64{2, 4, 8}, Y: []float64{0.8, 0.98, 0.99}},
	})
	if err != nil {
		t.Fatal(err)
	}
	svg := checkFigures(t, paths, []string{base}, Width, Height)[base]
	for _, s := range []string{"PTQ", "QAT", "bit width", "accuracy (%)"} {
		if !strings.Contains(svg, s) {
			t.Errorf("bits figure lacks %q", s)
		}
	}

	names, drops := []string{"c1", "c2", "fc1", "fc2"}, []float64{0.5, 2.25, -0.1, 1}
	sorted, values := ascending(names, drops)
	if !slices.Equal(sorted, []string{"fc1", "c1", "fc2", "c2"}) || !slices.Equal([]float64(values), []float64{-0.1, 0.5, 1, 2.25}) {
		t.Errorf("ascending: %v %v", sorted, values)
	}
	base = filepath.Join(dir, "sens")
	paths, err = Sensitivity(base, names, drops)
	if err != nil {
		t.Fatal(err)
	}
	svg = checkFigures(t, paths, []string{base}, Width, Height)[base]
	for _, s := range []string{"percentage points", "2.25", "fc1"} {
		if !strings.Contains(svg, s) {
			t.Errorf("sensitivity figure lacks %q", s)
		}
	}
	many := make([]string, 20)
	for i := range many {
		many[i] = "layer" + string(rune('a'+i))
	}
	paths, err = Sensitivity(base, many, make([]float64, 20))
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, paths, []string{base}, Width, 20*0.3*vg.Inch+1.5*vg.Inch)

	base = filepath.Join(dir, "bars")
	paths, err = Bars(base, "Accuracy by method", []string{"float", "PTQ W8A8", "QAT W8A8 (LSQ)"}, []float64{99.1, 98.7, 99}, "accuracy (%)")
	if err != nil {
		t.Fatal(err)
	}
	svg = checkFigures(t, paths, []string{base}, Width, Height)[base]
	for _, s := range []string{"Accuracy by method", "QAT W8A8 (LSQ)", "98.7"} {
		if !strings.Contains(svg, s) {
			t.Errorf("bars figure lacks %q", s)
		}
	}

	for name, err := range map[string]error{
		"no series":         second(BitsAccuracy(base, "t", nil)),
		"ragged series":     second(BitsAccuracy(base, "t", []Series{{Label: "s", X: []float64{8}, Y: []float64{}}})),
		"NaN accuracy":      second(BitsAccuracy(base, "t", []Series{{Label: "s", X: []float64{8}, Y: []float64{math.NaN()}}})),
		"no bars":           second(Bars(base, "t", nil, nil, "y")),
		"labels and values": second(Bars(base, "t", []string{"a"}, []float64{1, 2}, "y")),
		"infinite bar":      second(Sensitivity(base, []string{"a"}, []float64{math.Inf(1)})),
	} {
		if err == nil || !strings.Contains(err.Error(), base) {
			t.Errorf("%s: error %v, want one naming %s", name, err, base)
		}
	}
}

func second(_ []string, err error) error { return err }
