package fakequant_test

import (
	"math"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/fakequant"
	"qat/quant"
	"qat/ste"
)

// lGraph is x -> learnable quantizer(scale, zp) -> y, loss Sum(y * gy).
type lGraph struct {
	g           *gorgonia.ExprGraph
	x, gy, s, z *gorgonia.Node
	y           *gorgonia.Node
	yv          gorgonia.Value
	m           gorgonia.VM
}

func newLGraph(t *testing.T, lq *fakequant.LearnableFakeQuant, x, gy []float32, shape []int, scale, zp []float32, wrtZ bool) *lGraph {
	t.Helper()
	l := &lGraph{g: gorgonia.NewGraph()}
	l.x = newInput(l.g, "x", shape, x)
	l.gy = newInput(l.g, "gy", shape, gy)
	var err error
	if l.s, l.z, err = lq.NewParamNodes(l.g, scale, zp); err != nil {
		t.Fatal(err)
	}
	if l.y, err = lq.Apply(l.x, l.s, l.z); err != nil {
		t.Fatal(err)
	}
	loss := gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(l.y, l.gy))))
	wrt := gorgonia.Nodes{l.x, l.s}
	if wrtZ {
		wrt = append(wrt, l.z)
	}
	if _, err := gorgonia.Grad(loss, wrt...); err != nil {
		t.Fatal(err)
	}
	gorgonia.Read(l.y, &l.yv)
	l.m = gorgonia.NewTapeMachine(l.g, gorgonia.BindDualValues(wrt...))
	return l
}

func (l *lGraph) run(t *testing.T) {
	t.Helper()
	if err := l.runErr(); err != nil {
		t.Fatalf("RunAll: %v", err)
	}
}

// runErr runs once with fresh gradients (the machine accumulates them).
func (l *lGraph) runErr() error {
	defer l.m.Reset()
	for _, n := range []*gorgonia.Node{l.x, l.s, l.z} {
		if dv, err := n.Grad(); err == nil {
			if d, ok := dv.(*tensor.Dense); ok {
				d.Zero()
			}
		}
	}
	return l.m.RunAll()
}

func learnParams(scale, zp []float32, qmin, qmax int32, axis int) quant.Params {
	p := quant.Params{Scale: scale, ZeroPoint: make([]int32, len(zp)), QMin: qmin, QMax: qmax, Axis: axis}
	for i, z := range zp {
		p.ZeroPoint[i] = quant.RoundZeroPoint(z, qmin, qmax)
	}
	return p
}

func TestLearnablePerChannelNCHW(t *testing.T) {
	shape := []int{2, 3, 4, 5}
	n := numel(shape)
	x := pattern(n, -3, 3, 5)
	gy := pattern(n, -1, 1, 6)
	scale := []float32{0.02, 0.01, 0.015}
	zp := []float32{10.4, -3.6, 0}
	lq, err := fakequant.NewLearnable(fakequant.LearnableConfig{Name: "act", QMin: -16, QMax: 15, PerChannel: true, Axis: 1, LearnZeroPoint: true})
	if err != nil {
		t.Fatal(err)
	}
	l := newLGraph(t, lq, x, gy, shape, scale, zp, true)
	l.run(t)

	p := learnParams(scale, zp, -16, 15, 1)
	gx, gs, gz := make([]float32, n), make([]float32, 3), make([]float32, 3)
	ste.LSQPlus(gx, gs, gz, gy, x, shape, p, ste.GradFactor(n, 15))
	checkExact(t, "y", valueData(t, l.yv, "y"), wantFQ(x, shape, p))
	checkExact(t, "gradX", gradData(t, l.x), gx)
	checkExact(t, "gradScale", gradData(t, l.s), gs)
	checkExact(t, "gradZeroPoint", gradData(t, l.z), gz)
	if countZero(gx) == 0 || countZero(gx) == n {
		t.Errorf("%d of %d input gradients clipped; the test data should clip some", countZero(gx), n)
	}
	got, err := lq.ParamsOf(l.s.Value(), l.z.Value())
	if err != nil {
		t.Fatal(err)
	}
	sameParams(t, "ParamsOf", got, p)
}

func TestLearnableFixedZeroPoint(t *testing.T) {
	shape := []int{5, 7}
	n := numel(shape)
	x := pattern(n, -1, 4, 7)
	gy := pattern(n, -1, 1, 8)
	scale, zp := []float32{0.05}, []float32{-100} // zero point clamps to QMin
	lq, err := fakequant.NewLearnable(fakequant.LearnableConfig{QMin: -8, QMax: 7})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(lq.Name(), "lfq") {
		t.Errorf("default name %q", lq.Name())
	}
	l := newLGraph(t, lq, x, gy, shape, scale, zp, false)
	l.run(t)
	p := learnParams(scale, zp, -8, 7, -1)
	if p.ZeroPoint[0] != -8 {
		t.Fatalf("zero point %d, want -8", p.ZeroPoint[0])
	}
	gx, gs := make([]float32, n), make([]float32, 1)
	ste.LSQ(gx, gs, gy, x, shape, p, ste.GradFactor(n, 7))
	checkExact(t, "y", valueData(t, l.yv, "y"), wantFQ(x, shape, p))
	checkExact(t, "gradX", gradData(t, l.x), gx)
	checkExact(t, "gradScale", gradData(t, l.s), gs)

	// The zero point is not differentiable, so asking for it fails.
	g := gorgonia.NewGraph()
	x2 := newInput(g, "x", shape, x)
	s2, z2, err := lq.NewParamNodes(g, scale, zp)
	if err != nil {
		t.Fatal(err)
	}
	y2, err := lq.Apply(x2, s2, z2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gorgonia.Grad(gorgonia.Must(gorgonia.Sum(y2)), x2, s2, z2); err == nil {
		t.Error("gradient with respect to a fixed zero point was built")
	}
	if _, _, err := lq.NewParamNodes(g, scale, zp); err == nil {
		t.Error("second parameter nodes with the same names accepted")
	}
}

func TestLearnableDisabled(t *testing.T) {
	shape := []int{3, 4}
	x := pattern(12, -2, 2, 11)
	x[0] = float32(math.Copysign(0, -1))
	gy := pattern(12, -1, 1, 12)
	lq, err := fakequant.NewLearnable(fakequant.LearnableConfig{QMin: 0, QMax: 3, PerChannel: true, Axis: 0, LearnZeroPoint: true, GradFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	scale, zp := []float32{0.5, 0.25, 0.1}, []float32{1, 2, 0}
	l := newLGraph(t, lq, x, gy, shape, scale, zp, true)
	lq.SetEnabled(false)
	if lq.Enabled() {
		t.Fatal("still enabled")
	}
	l.run(t)
	bitsEqual(t, "disabled y", valueData(t, l.yv, "y"), x)
	bitsEqual(t, "disabled gradX", gradData(t, l.x), gy)
	checkExact(t, "disabled gradScale", gradData(t, l.s), []float32{0, 0, 0})
	checkExact(t, "disabled gradZeroPoint", gradData(t, l.z), []float32{0, 0, 0})

	lq.SetEnabled(true)
	l.run(t)
	p := learnParams(scale, zp, 0, 3, 0)
	gx, gs, gz := make([]float32, 12), make([]float32, 3), make([]float32, 3)
	ste.LSQPlus(gx, gs, gz, gy, x, shape, p, 1)
	checkExact(t, "enabled y", valueData(t, l.yv, "y"), wantFQ(x, shape, p))
	checkExact(t, "enabled gradX", gradData(t, l.x), gx)
	checkExact(t, "enabled gradScale", gradData(t, l.s), gs)
	checkExact(t, "enabled gradZeroPoint", gradData(t, l.z), gz)
}

func TestLearnableScaleChecks(t *testing.T) {
	shape := []int{4}
	x := []float32{-1, 0, 1, 2}
	for _, bad := range []float32{0, -0.5, float32(math.NaN()), float32(math.Inf(1))} {
		lq, _ := fakequant.NewLearnable(fakequant.LearnableConfig{Name: "w.q", QMin: -8, QMax: 7})
		l := newLGraph(t, lq, x, x, shape, []float32{bad}, []float32{0}, false)
		err := l.runErr()
		if err == nil || !strings.Contains(err.Error(), "w.q") {
			t.Errorf("scale %g: error %v, want one naming w.q", bad, err)
		}
	}
	// ClampScale raises small finite scales to Eps in the node's value.
	for _, small := range []float32{0, -3, 1e-9} {
		lq, _ := fakequant.NewLearnable(fakequant.LearnableConfig{QMin: -8, QMax: 7, ClampScale: true})
		l := newLGraph(t, lq, x, x, shape, []float32{small}, []float32{0}, false)
		l.run(t)
		if got := l.s.Value().Data().([]float32)[0]; got != quant.Eps {
			t.Errorf("scale %g clamped to %g, want %g", small, got, quant.Eps)
		}
		p := quant.Params{Scale: []float32{quant.Eps}, ZeroPoint: []int32{0}, QMin: -8, QMax: 7, Axis: -1}
		checkExact(t, "clamped y", valueData(t, l.yv, "y"), wantFQ(x, shape, p))
	}
	lq, _ := fakequant.NewLearnable(fakequant.LearnableConfig{Name: "nan", QMin: -8, QMax: 7, ClampScale: true})
	l := newLGraph(t, lq, x, x, shape, []float32{float32(math.NaN())}, []float32{0}, false)
	if err := l.runErr(); err == nil || !strings.Contains(err.Error(), "nan") {
		t.Errorf("NaN scale under ClampScale: %v", err)
	}
}

// TestLearnableSolverStep checks that the gradients bind where a solver
// finds them, with the parameters' shapes.
func TestLearnableSolverStep(t *testing.T) {
	shape := []int{2, 6}
	x := pattern(12, -1, 3, 13)
	gy := pattern(12, -1, 1, 14)
	obs := quant.NewMinMax(quant.Scheme{PerChannel: true})
	if err := obs.Observe(x, shape); err != nil {
		t.Fatal(err)
	}
	scale, zp, err := fakequant.InitFrom(obs)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := obs.Params()
	lq, err := fakequant.NewLearnable(fakequant.LearnableConfig{QMin: 0, QMax: 255, PerChannel: true, LearnZeroPoint: true})
	if err != nil {
		t.Fatal(err)
	}
	l := newLGraph(t, lq, x, gy, shape, scale, zp, true)
	got, err := lq.ParamsOf(l.s.Value(), l.z.Value())
	if err != nil {
		t.Fatal(err)
	}
	sameParams(t, "InitFrom", got, want)
	l.run(t)
	gs := append([]float32(nil), gradData(t, l.s)...)
	gz := append([]float32(nil), gradData(t, l.z)...)
	const lr = 0.5
	solver := gorgonia.NewVanillaSolver(gorgonia.WithLearnRate(lr))
	if err := solver.Step(gorgonia.NodesToValueGrads(gorgonia.Nodes{l.s, l.z})); err != nil {
		t.Fatal(err)
	}
	ns, nz := l.s.Value().Data().([]float32), l.z.Value().Data().([]float32)
	for c := range scale {
		if ws := scale[c] - lr*gs[c]; math.Abs(float64(ns[c]-ws)) > 1e-7*math.Abs(float64(ws)) {
			t.Errorf("scale[%d] = %g after the step, want %g", c, ns[c], ws)
		}
		if wz := zp[c] - lr*gz[c]; math.Abs(float64(nz[c]-wz)) > 1e-6 {
			t.Errorf("zero point[%d] = %g after the step, want %g", c, nz[c], wz)
		}
	}
	if gs[0] == 0 && gs[1] == 0 {
		t.Error("zero scale gradients; the step tested nothing")
	}
	// The next run uses the updated values.
	l.run(t)
	p, _ := lq.ParamsOf(l.s.Value(), l.z.Value())
	checkExact(t, "y after the step", valueData(t, l.yv, "y"), wantFQ(x, shape, p))
}

func TestTwoLearnableOneInput(t *testing.T) {
	g := gorgonia.NewGraph()
	x := newInput(g, "x", []int{8}, pattern(8, -1, 1, 15))
	cfg := fakequant.LearnableConfig{Name: "twin", QMin: 0, QMax: 15, LearnZeroPoint: true}
	l1, _ := fakequant.NewLearnable(cfg)
	cfg.Name = "twin2"
	l2, _ := fakequant.NewLearnable(cfg)
	s, z, err := l1.NewParamNodes(g, []float32{0.1}, []float32{8})
	if err != nil {
		t.Fatal(err)
	}
	y1, err := l1.Apply(x, s, z)
	if err != nil {
		t.Fatal(err)
	}
	y2, err := l2.Apply(x, s, z)
	if err != nil {
		t.Fatal(err)
	}
	if y1 == y2 {
		t.Fatal("two learnable quantizers on the same inputs share a node")
	}
	if y3, _ := l1.Apply(x, s, z); y3 == y1 {
		t.Fatal("two applications of one learnable quantizer share a node")
	}
	l2.SetEnabled(false)
	var v1, v2 gorgonia.Value
	gorgonia.Read(y1, &v1)
	gorgonia.Read(y2, &v2)
	runOnce(t, gorgonia.NewTapeMachine(g))
	xs := x.Value().Data().([]float32)
	p := quant.Params{Scale: []float32{0.1}, ZeroPoint: []int32{8}, QMin: 0, QMax: 15, Axis: -1}
	checkExact(t, "y1", valueData(t, v1, "y1"), wantFQ(xs, []int{8}, p))
	bitsEqual(t, "y2", valueData(t, v2, "y2"), xs)
}
