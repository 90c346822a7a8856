package fakequant_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/fakequant"
	"qat/quant"
	"qat/ste"
)

// fqGraph is x -> quantizer -> y with loss Sum(y * gy), the gradient of x
// and Reads of y and gradX after every run.
type fqGraph struct {
	g         *gorgonia.ExprGraph
	x, gy, y  *gorgonia.Node
	yv, gradv gorgonia.Value
	m         gorgonia.VM
}

func newFQGraph(t *testing.T, shape []int, apply func(x *gorgonia.Node) (*gorgonia.Node, error)) *fqGraph {
	t.Helper()
	f := &fqGraph{g: gorgonia.NewGraph()}
	f.x = newInput(f.g, "x", shape, nil)
	f.gy = newInput(f.g, "gy", shape, nil)
	var err error
	if f.y, err = apply(f.x); err != nil {
		t.Fatal(err)
	}
	loss := gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(f.y, f.gy))))
	grads, err := gorgonia.Grad(loss, f.x)
	if err != nil {
		t.Fatal(err)
	}
	gorgonia.Read(f.y, &f.yv)
	gorgonia.Read(grads[0], &f.gradv)
	f.m = gorgonia.NewTapeMachine(f.g)
	return f
}

// run binds x and gy and runs the machine once, returning y and gradX.
func (f *fqGraph) run(t *testing.T, x, gy []float32) (y, gradX []float32) {
	t.Helper()
	if err := f.runErr(x, gy); err != nil {
		t.Fatalf("RunAll: %v", err)
	}
	return append([]float32(nil), valueData(t, f.yv, "y")...), append([]float32(nil), valueData(t, f.gradv, "gradX")...)
}

func (f *fqGraph) runErr(x, gy []float32) error {
	defer f.m.Reset()
	if err := gorgonia.Let(f.x, dense(f.x.Shape(), x)); err != nil {
		return err
	}
	if err := gorgonia.Let(f.gy, dense(f.gy.Shape(), gy)); err != nil {
		return err
	}
	return f.m.RunAll()
}

// pattern returns n deterministic values spread over [lo, hi] with some
// exact half-step ties for a scale of 1/8.
func pattern(n int, lo, hi float32, seed uint32) []float32 {
	v := make([]float32, n)
	s := seed
	for i := range v {
		s = s*1664525 + 1013904223
		u := float32(s>>8) / float32(1<<24)
		v[i] = lo + (hi-lo)*u
		if i%7 == 3 {
			v[i] = float32(int(v[i]*8)) / 8 // on a step
		}
		if i%11 == 5 {
			v[i] = (float32(int(v[i]*8)) + 0.5) / 8 // a tie
		}
	}
	return v
}

func extrema(x []float32) (lo, hi float32) {
	lo, hi = x[0], x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

func wantFQ(x []float32, shape []int, p quant.Params) []float32 {
	y := make([]float32, len(x))
	quant.FakeQuantize(y, x, shape, p)
	return y
}

func wantClipped(gy, x []float32, shape []int, p quant.Params) []float32 {
	g := make([]float32, len(x))
	ste.Clipped(g, gy, x, shape, p)
	return g
}

func sameParams(t *testing.T, what string, got, want quant.Params) {
	t.Helper()
	if len(got.Scale) != len(want.Scale) || got.QMin != want.QMin || got.QMax != want.QMax || got.Axis != want.Axis {
		t.Fatalf("%s: params %+v, want %+v", what, got, want)
	}
	for i := range want.Scale {
		if got.Scale[i] != want.Scale[i] || got.ZeroPoint[i] != want.ZeroPoint[i] {
			t.Fatalf("%s: params %+v, want %+v", what, got, want)
		}
	}
}

func bitsEqual(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %g (%#08x), want %g (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// TestModes switches one quantizer through all modes between runs of one
// compiled graph.
func TestModes(t *testing.T) {
	shape := []int{4, 8}
	fq := fakequant.New(quant.NewMinMax(quant.Uint8Affine), fakequant.Named("act"))
	f := newFQGraph(t, shape, fq.Apply)
	gy := pattern(32, -1, 1, 9)

	// Observing: params from the first batch, used in the same pass.
	x1 := pattern(32, -1, 2, 1)
	y, gx := f.run(t, x1, gy)
	lo, hi := extrema(x1)
	p1 := quant.ParamsFromRange(quant.Uint8Affine, lo, hi)
	got, ok := fq.Params()
	if !ok {
		t.Fatal("no params after an observing run")
	}
	sameParams(t, "observing", got, p1)
	checkExact(t, "observing y", y, wantFQ(x1, shape, p1))
	checkExact(t, "observing gradX", gx, wantClipped(gy, x1, shape, p1))

	// Frozen: a wider batch neither changes the params nor escapes them.
	if err := fq.SetMode(fakequant.Frozen); err != nil {
		t.Fatal(err)
	}
	x2 := pattern(32, -4, 6, 2)
	y, gx = f.run(t, x2, gy)
	got, _ = fq.Params()
	sameParams(t, "frozen", got, p1)
	checkExact(t, "frozen y", y, wantFQ(x2, shape, p1))
	checkExact(t, "frozen gradX", gx, wantClipped(gy, x2, shape, p1))
	if n := countZero(gx); n == 0 {
		t.Error("frozen run clipped nothing; the test batch is too narrow")
	}

	// Disabled: exact identity both ways, even for NaN, Inf and -0, and
	// nothing observed.
	if err := fq.SetMode(fakequant.Disabled); err != nil {
		t.Fatal(err)
	}
	x3 := append([]float32(nil), x2...)
	x3[0], x3[1], x3[2] = float32(math.NaN()), float32(math.Inf(-1)), float32(math.Copysign(0, -1))
	y, gx = f.run(t, x3, gy)
	bitsEqual(t, "disabled y", y, x3)
	bitsEqual(t, "disabled gradX", gx, gy)
	got, _ = fq.Params()
	sameParams(t, "disabled", got, p1)

	// Observing again: the observer has seen x1 and now x4 only.
	if err := fq.SetMode(fakequant.Observing); err != nil {
		t.Fatal(err)
	}
	x4 := pattern(32, -3, 0.5, 4)
	y, gx = f.run(t, x4, gy)
	lo4, hi4 := extrema(x4)
	p4 := quant.ParamsFromRange(quant.Uint8Affine, min(lo, lo4), max(hi, hi4))
	got, _ = fq.Params()
	sameParams(t, "observing again", got, p4)
	checkExact(t, "observing again y", y, wantFQ(x4, shape, p4))
	checkExact(t, "observing again gradX", gx, wantClipped(gy, x4, shape, p4))

	// SetParams freezes an observing quantizer on the given params.
	pSet := quant.Params{Scale: []float32{0.25}, ZeroPoint: []int32{3}, QMin: 0, QMax: 15, Axis: -1}
	if err := fq.SetParams(pSet); err != nil {
		t.Fatal(err)
	}
	if fq.Mode() != fakequant.Frozen {
		t.Errorf("mode after SetParams = %v, want frozen", fq.Mode())
	}
	y, gx = f.run(t, x4, gy)
	checkExact(t, "set y", y, wantFQ(x4, shape, pSet))
	checkExact(t, "set gradX", gx, wantClipped(gy, x4, shape, pSet))
}

func countZero(x []float32) int {
	n := 0
	for _, v := range x {
		if v == 0 {
			n++
		}
	}
	return n
}

func TestParamsIsACopy(t *testing.T) {
	p := quant.Params{Scale: []float32{0.5}, ZeroPoint: []int32{0}, QMin: -8, QMax: 7, Axis: -1}
	fq, err := fakequant.NewFixed(p)
	if err != nil {
		t.Fatal(err)
	}
	p.Scale[0] = 9 // NewFixed copied p
	got, _ := fq.Params()
	got.Scale[0] = 7 // Params returns a copy
	again, _ := fq.Params()
	if again.Scale[0] != 0.5 {
		t.Errorf("scale = %g, want 0.5", again.Scale[0])
	}
	if !strings.HasPrefix(fq.Name(), "fq") {
		t.Errorf("default name %q", fq.Name())
	}
}

// TestTwoQuantizersOneInput: gorgonia merges nodes with equal hashes and
// children, so each application must hash differently even for identical
// quantizers with the same name.
func TestTwoQuantizersOneInput(t *testing.T) {
	shape := []int{16}
	p := quant.Params{Scale: []float32{0.1}, ZeroPoint: []int32{0}, QMin: -128, QMax: 127, Axis: -1}
	q1, err := fakequant.NewFixed(p, fakequant.Named("same"))
	if err != nil {
		t.Fatal(err)
	}
	q2, err := fakequant.NewFixed(p, fakequant.Named("same"))
	if err != nil {
		t.Fatal(err)
	}
	g := gorgonia.NewGraph()
	x := newInput(g, "x", shape, pattern(16, -2, 2, 3))
	y1, err := q1.Apply(x)
	if err != nil {
		t.Fatal(err)
	}
	y2, err := q2.Apply(x)
	if err != nil {
		t.Fatal(err)
	}
	if y1 == y2 || y1.ID() == y2.ID() {
		t.Fatalf("two quantizers on one input share node %v", y1)
	}
	// Observing quantizers with identical observers too.
	o1 := fakequant.New(quant.NewMinMax(quant.Uint8Affine), fakequant.Named("obs"))
	o2 := fakequant.New(quant.NewMinMax(quant.Uint8Affine), fakequant.Named("obs"))
	z1, _ := o1.Apply(x)
	z2, _ := o2.Apply(x)
	if z1 == z2 {
		t.Fatal("two observing quantizers on one input share a node")
	}
	// The same quantizer applied twice gives two nodes as well.
	w1, _ := q1.Apply(x)
	if w1 == y1 {
		t.Fatal("a second application of one quantizer reuses the first node")
	}

	// Different params after SetParams on one of them; the gradients
	// through both arrive at x.
	p2 := quant.Params{Scale: []float32{0.5}, ZeroPoint: []int32{2}, QMin: 0, QMax: 3, Axis: -1}
	if err := q2.SetParams(p2); err != nil {
		t.Fatal(err)
	}
	loss := gorgonia.Must(gorgonia.Add(gorgonia.Must(gorgonia.Sum(y1)), gorgonia.Must(gorgonia.Sum(y2))))
	grads, err := gorgonia.Grad(loss, x)
	if err != nil {
		t.Fatal(err)
	}
	var v1, v2, vg gorgonia.Value
	gorgonia.Read(y1, &v1)
	gorgonia.Read(y2, &v2)
	gorgonia.Read(grads[0], &vg)
	m := gorgonia.NewTapeMachine(g)
	runOnce(t, m)
	xs := x.Value().Data().([]float32)
	checkExact(t, "y1", valueData(t, v1, "y1"), wantFQ(xs, shape, p))
	checkExact(t, "y2", valueData(t, v2, "y2"), wantFQ(xs, shape, p2))
	ones := make([]float32, 16)
	for i := range ones {
		ones[i] = 1
	}
	g1, g2 := wantClipped(ones, xs, shape, p), wantClipped(ones, xs, shape, p2)
	for i := range g1 {
		g1[i] += g2[i]
	}
	checkExact(t, "gradX", valueData(t, vg, "gradX"), g1)
	if fq1, _ := q1.Params(); fq1.Scale[0] != 0.1 {
		t.Errorf("q1 scale changed to %g", fq1.Scale[0])
	}
	if o1.Mode() != fakequant.Observing || o2.Mode() != fakequant.Observing {
		t.Error("observing quantizers changed mode")
	}
	if _, ok := o1.Params(); !ok {
		t.Error("o1 did not observe")
	}
}

// channelRanges returns per-channel extrema of x of the given shape along
// axis, computed from multi-indices rather than quant's layout.
func channelRanges(x []float32, shape []int, axis int) (lo, hi []float32) {
	c := shape[axis]
	lo, hi = make([]float32, c), make([]float32, c)
	for i := range lo {
		lo[i], hi[i] = float32(math.Inf(1)), float32(math.Inf(-1))
	}
	stride := 1
	for _, d := range shape[axis+1:] {
		stride *= d
	}
	for i, v := range x {
		ch := (i / stride) % c
		lo[ch], hi[ch] = min(lo[ch], v), max(hi[ch], v)
	}
	return lo, hi
}

func TestPerChannel4D(t *testing.T) {
	cases := []struct {
		name   string
		shape  []int
		scheme quant.Scheme
	}{
		{"conv weight [Cout,Cin,kh,kw] axis 0", []int{4, 3, 3, 3}, quant.Int8SymmetricPerChannel},
		{"activation [N,C,H,W] axis 1", []int{2, 3, 4, 5}, quant.Scheme{PerChannel: true, Axis: 1}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := numel(c.shape)
			fq := fakequant.New(quant.NewMinMax(c.scheme))
			f := newFQGraph(t, c.shape, fq.Apply)
			x := pattern(n, -2, 3, uint32(10+i))
			// give every channel its own range
			stride := numel(c.shape[c.scheme.Axis+1:])
			for j := range x {
				x[j] *= float32(1 + (j/stride)%c.shape[c.scheme.Axis])
			}
			gy := pattern(n, -1, 1, uint32(20+i))
			y, gx := f.run(t, x, gy)
			lo, hi := channelRanges(x, c.shape, c.scheme.Axis)
			want := quant.ParamsFromRanges(c.scheme, lo, hi)
			got, _ := fq.Params()
			sameParams(t, "params", got, want)
			if len(got.Scale) != c.shape[c.scheme.Axis] || got.Scale[0] == got.Scale[len(got.Scale)-1] {
				t.Fatalf("scales %v are not per channel", got.Scale)
			}
			checkExact(t, "y", y, wantFQ(x, c.shape, want))
			checkExact(t, "gradX", gx, wantClipped(gy, x, c.shape, want))
		})
	}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// unwrap digs the op's error out of gorgonia's VM error, which has Err
// instead of Unwrap.
func unwrap(err error) error {
	for {
		e, ok := err.(interface{ Err() error })
		if !ok {
			return err
		}
		err = e.Err()
	}
}

func TestErrors(t *testing.T) {
	t.Run("NaN while observing names the quantizer", func(t *testing.T) {
		fq := fakequant.New(quant.NewMinMax(quant.Uint8Affine), fakequant.Named("block3.act"))
		f := newFQGraph(t, []int{6}, fq.Apply)
		f.run(t, []float32{0, 1, 2, 3, 4, 5}, make([]float32, 6))
		before, _ := fq.Params()
		err := f.runErr([]float32{0, 1, float32(math.NaN()), 3, 4, 5}, make([]float32, 6))
		if err == nil {
			t.Fatal("RunAll accepted NaN input")
		}
		if !strings.Contains(err.Error(), "block3.act") {
			t.Errorf("error %q does not name the quantizer", err)
		}
		if !errors.Is(unwrap(err), quant.ErrNonFinite) {
			t.Errorf("error %q does not wrap quant.ErrNonFinite", err)
		}
		after, _ := fq.Params()
		sameParams(t, "after NaN", after, before)
		// the graph still works
		f.run(t, []float32{0, 1, 2, 3, 4, 5}, make([]float32, 6))
		if err := f.runErr([]float32{float32(math.Inf(1)), 1, 2, 3, 4, 5}, make([]float32, 6)); err == nil || !strings.Contains(err.Error(), "block3.act") {
			t.Errorf("Inf input: error %v", err)
		}
	})
	t.Run("frozen without params", func(t *testing.T) {
		fq := fakequant.New(nil, fakequant.Named("empty"))
		f := newFQGraph(t, []int{3}, fq.Apply)
		err := f.runErr([]float32{1, 2, 3}, make([]float32, 3))
		if err == nil || !strings.Contains(err.Error(), "empty") || !errors.Is(unwrap(err), fakequant.ErrNoParams) {
			t.Errorf("error %v, want ErrNoParams naming the quantizer", err)
		}
		if err := fq.SetMode(fakequant.Observing); err == nil {
			t.Error("observing without an observer accepted")
		}
		if err := fq.SetMode(fakequant.Mode(7)); err == nil {
			t.Error("unknown mode accepted")
		}
	})
	t.Run("float64 input", func(t *testing.T) {
		g := gorgonia.NewGraph()
		x := gorgonia.NewTensor(g, tensor.Float64, 1, gorgonia.WithShape(4), gorgonia.WithName("x"))
		fq := fakequant.New(quant.NewMinMax(quant.Uint8Affine))
		if _, err := fq.Apply(x); err == nil {
			t.Error("FakeQuant.Apply accepted a float64 input")
		}
		lq, _ := fakequant.NewLearnable(fakequant.LearnableConfig{QMin: 0, QMax: 255})
		s := gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(1), gorgonia.WithName("s"))
		if _, err := lq.Apply(x, s, s); err == nil {
			t.Error("LearnableFakeQuant.Apply accepted a float64 input")
		}
		// Do itself rejects float64 values.
		x32 := newInput(g, "x32", []int{4}, nil)
		y, err := fq.Apply(x32)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := y.Op().Do(tensor.New(tensor.WithBacking([]float64{1, 2, 3, 4}))); err == nil || !strings.Contains(err.Error(), "float64") {
			t.Errorf("Do on float64: %v", err)
		}
		z := newInput(g, "z", []int{1}, nil)
		ly, err := lq.Apply(x32, s, z)
		if err != nil {
			t.Fatal(err)
		}
		f32 := tensor.New(tensor.WithBacking([]float32{1}), tensor.WithShape(1))
		if _, err := ly.Op().Do(tensor.New(tensor.WithBacking([]float64{1, 2, 3, 4})), f32, f32); err == nil {
			t.Error("learnable Do accepted float64")
		}
	})
	t.Run("per-channel shape mismatch at Apply", func(t *testing.T) {
		g := gorgonia.NewGraph()
		x := newInput(g, "x", []int{2, 3, 4, 4}, nil)
		p := quant.Params{Scale: []float32{1, 1}, ZeroPoint: []int32{0, 0}, QMin: -127, QMax: 127, Axis: 1}
		fq, err := fakequant.NewFixed(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fq.Apply(x); err == nil {
			t.Error("2 channels for axis 1 of size 3 accepted")
		}
		deep := fakequant.New(quant.NewMinMax(quant.Scheme{PerChannel: true, Axis: 4}))
		if _, err := deep.Apply(x); err == nil {
			t.Error("channel axis 4 of a 4-D input accepted")
		}
		lq, err := fakequant.NewLearnable(fakequant.LearnableConfig{QMin: 0, QMax: 255, PerChannel: true, Axis: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, shape := range [][]int{{2}, {4}, {1}} {
			s := newInput(g, "s"+strings.Repeat("x", shape[0]), shape, nil)
			if _, err := lq.Apply(x, s, s); err == nil {
				t.Errorf("scale of shape %v for 3 channels accepted", shape)
			}
		}
		m := newInput(g, "m", []int{3, 1}, nil)
		if _, err := lq.Apply(x, m, m); err == nil {
			t.Error("matrix scale accepted")
		}
		pt, _ := fakequant.NewLearnable(fakequant.LearnableConfig{QMin: 0, QMax: 255})
		s3 := newInput(g, "s3", []int{3}, nil)
		if _, err := pt.Apply(x, s3, s3); err == nil {
			t.Error("per-tensor quantizer with 3 scales accepted")
		}
	})
	t.Run("per-channel params changed after Apply", func(t *testing.T) {
		p := quant.Params{Scale: []float32{1, 1, 1}, ZeroPoint: []int32{0, 0, 0}, QMin: -127, QMax: 127, Axis: 0}
		fq, err := fakequant.NewFixed(p, fakequant.Named("resized"))
		if err != nil {
			t.Fatal(err)
		}
		f := newFQGraph(t, []int{3, 2}, fq.Apply)
		p.Scale, p.ZeroPoint = p.Scale[:2], p.ZeroPoint[:2]
		if err := fq.SetParams(p); err != nil {
			t.Fatal(err)
		}
		err = f.runErr(make([]float32, 6), make([]float32, 6))
		if err == nil || !strings.Contains(err.Error(), "resized") {
			t.Errorf("2 channels for 3: %v", err)
		}
	})
	t.Run("invalid params and configs", func(t *testing.T) {
		if _, err := fakequant.NewFixed(quant.Params{Scale: []float32{0}, ZeroPoint: []int32{0}, QMin: 0, QMax: 1, Axis: -1}); err == nil {
			t.Error("zero scale accepted")
		}
		for _, cfg := range []fakequant.LearnableConfig{
			{QMin: 0, QMax: 0},
			{QMin: 0, QMax: 255, Axis: 1},
			{QMin: 0, QMax: 255, PerChannel: true, Axis: -1},
			{QMin: 0, QMax: 255, GradFactor: -1},
			{QMin: 0, QMax: 255, GradFactor: float32(math.NaN())},
		} {
			if _, err := fakequant.NewLearnable(cfg); err == nil {
				t.Errorf("config %+v accepted", cfg)
			}
		}
	})
}

func TestModeString(t *testing.T) {
	for m, want := range map[fakequant.Mode]string{fakequant.Observing: "observing", fakequant.Frozen: "frozen", fakequant.Disabled: "disabled", 9: "Mode(9)"} {
		if m.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(m), m, want)
		}
	}
}
