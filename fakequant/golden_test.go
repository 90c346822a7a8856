package fakequant_test

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/fakequant"
	"qat/internal/golden"
	"qat/quant"
)

// TestGolden runs every conformance vector through a gorgonia graph and a
// TapeMachine: the forward output, the input gradient and the learnable
// parameter gradients come out of the machine, the observer params out of
// the FakeQuant after one run per batch.
func TestGolden(t *testing.T) {
	passed := map[string]int{}
	total, ok := 0, 0
	for _, set := range golden.Sets(t) {
		for _, c := range set.Cases {
			total++
			if t.Run(c.ID(), func(t *testing.T) { runGolden(t, c) }) {
				passed[c.Op]++
				ok++
			}
		}
	}
	ops := make([]string, 0, len(passed))
	for op := range passed {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, " %s=%d", op, passed[op])
	}
	t.Logf("golden: %d of %d cases pass through the graph:%s", ok, total, b.String())
}

func runGolden(t *testing.T, c *golden.Case) {
	switch c.Op {
	case "fake_quant_per_tensor", "fake_quant_per_channel":
		goldenFixed(t, c)
	case "learnable_fake_quant_per_tensor", "learnable_fake_quant_per_channel":
		goldenLearnable(t, c)
	case "observer_minmax", "observer_moving_average_minmax", "observer_per_channel_minmax":
		goldenObserver(t, c)
	default:
		t.Errorf("%s: unknown op %q", c.ID(), c.Op)
	}
}

// graphRun is a graph with input x (bound to the case's x) and the
// quantizer's output y, read after each run.
type graphRun struct {
	g    *gorgonia.ExprGraph
	x, y *gorgonia.Node
	yv   gorgonia.Value
	wrt  gorgonia.Nodes
}

func dense(shape []int, data []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), data...)))
}

func newInput(g *gorgonia.ExprGraph, name string, shape []int, data []float32) *gorgonia.Node {
	opts := []gorgonia.NodeConsOpt{gorgonia.WithShape(shape...), gorgonia.WithName(name)}
	if data != nil {
		opts = append(opts, gorgonia.WithValue(dense(shape, data)))
	}
	return gorgonia.NewTensor(g, tensor.Float32, len(shape), opts...)
}

// finish adds loss = Sum(y * gradY) when gradY is given (so that dL/dy =
// gradY), the gradients with respect to wrt, and a Read of y, and returns
// a machine that binds the gradients of wrt.
func (r *graphRun) finish(t *testing.T, shape []int, gradY []float32) gorgonia.VM {
	t.Helper()
	if gradY != nil {
		gy := newInput(r.g, "grad_y", shape, gradY)
		loss := gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(r.y, gy))))
		if _, err := gorgonia.Grad(loss, r.wrt...); err != nil {
			t.Fatalf("Grad: %v", err)
		}
	}
	gorgonia.Read(r.y, &r.yv)
	if gradY == nil {
		return gorgonia.NewTapeMachine(r.g)
	}
	return gorgonia.NewTapeMachine(r.g, gorgonia.BindDualValues(r.wrt...))
}

func runOnce(t *testing.T, m gorgonia.VM) {
	t.Helper()
	if err := m.RunAll(); err != nil {
		t.Fatalf("RunAll: %v", err)
	}
	m.Reset()
}

func valueData(t *testing.T, v gorgonia.Value, what string) []float32 {
	t.Helper()
	if v == nil {
		t.Fatalf("%s: no value", what)
	}
	d, ok := v.Data().([]float32)
	if !ok {
		t.Fatalf("%s: %T, want []float32", what, v.Data())
	}
	return d
}

func gradData(t *testing.T, n *gorgonia.Node) []float32 {
	t.Helper()
	g, err := n.Grad()
	if err != nil {
		t.Fatalf("%v.Grad(): %v", n, err)
	}
	return valueData(t, g, "gradient of "+n.Name())
}

// sameFloat is bitwise equality, except that -0 equals +0.
func sameFloat(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a == 0 && b == 0)
}

func checkExact(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	bad := 0
	for i := range want {
		if !sameFloat(got[i], want[i]) {
			if bad++; bad <= 3 {
				t.Errorf("%s[%d] = %g (%#08x), want %g (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(want))
	}
}

func caseParams(c *golden.Case) quant.Params {
	return quant.Params{
		Scale:     append([]float32(nil), c.Scale...),
		ZeroPoint: c.ZeroPoints(),
		QMin:      c.QuantMin,
		QMax:      c.QuantMax,
		Axis:      c.Axis,
	}
}

func goldenFixed(t *testing.T, c *golden.Case) {
	p := caseParams(c)
	fq, err := fakequant.NewFixed(p, fakequant.Named(c.Name))
	if err != nil {
		t.Fatal(err)
	}
	r := &graphRun{g: gorgonia.NewGraph()}
	r.x = newInput(r.g, "x", c.Shape, c.X)
	if r.y, err = fq.Apply(r.x); err != nil {
		t.Fatal(err)
	}
	r.wrt = gorgonia.Nodes{r.x}
	runOnce(t, r.finish(t, c.Shape, c.GradY))

	checkExact(t, "y", valueData(t, r.yv, "y"), c.Y)
	if c.GradX != nil {
		checkExact(t, "grad_x", gradData(t, r.x), c.GradX)
	}
	if c.Q != nil {
		q := make([]int32, len(c.X))
		quant.Quantize(q, c.X, c.Shape, p)
		checkCodes(t, q, c.Q)
	}
}

func checkCodes(t *testing.T, got, want []int32) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("q = %v, want %v", got, want)
	}
}

func goldenLearnable(t *testing.T, c *golden.Case) {
	lq, err := fakequant.NewLearnable(fakequant.LearnableConfig{
		Name:           c.Name,
		QMin:           c.QuantMin,
		QMax:           c.QuantMax,
		PerChannel:     c.Axis >= 0,
		Axis:           max(c.Axis, 0),
		GradFactor:     c.GradFactor,
		LearnZeroPoint: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	zp := make([]float32, len(c.ZeroPoint))
	for i, z := range c.ZeroPoint {
		zp[i] = float32(z)
	}
	r := &graphRun{g: gorgonia.NewGraph()}
	r.x = newInput(r.g, "x", c.Shape, c.X)
	s, z, err := lq.NewParamNodes(r.g, c.Scale, zp)
	if err != nil {
		t.Fatal(err)
	}
	if r.y, err = lq.Apply(r.x, s, z); err != nil {
		t.Fatal(err)
	}
	r.wrt = gorgonia.Nodes{r.x, s, z}
	runOnce(t, r.finish(t, c.Shape, c.GradY))

	checkExact(t, "y", valueData(t, r.yv, "y"), c.Y)
	checkExact(t, "grad_x", gradData(t, r.x), c.GradX)

	p, err := lq.ParamsOf(s.Value(), z.Value())
	if err != nil {
		t.Fatal(err)
	}
	bs, bz := c.SumBounds(p)
	golden.CheckSums(t, "grad_scale", gradData(t, s), c.GradScale, bs)
	golden.CheckSums(t, "grad_zero_point", gradData(t, z), c.GradZeroPoint, bz)
}

// schemeOf derives the quant.Scheme of an observer case from its code range:
// a signed range [-m, m] is narrow, and the code count gives the bits.
func schemeOf(c *golden.Case) (quant.Scheme, error) {
	s := quant.Scheme{Signed: c.Signed, Symmetric: c.Symmetric}
	if c.Op == "observer_per_channel_minmax" {
		s.PerChannel, s.Axis = true, c.Axis
	}
	codes := int64(c.QuantMax) - int64(c.QuantMin) + 1
	if c.Signed && c.QuantMin == -c.QuantMax {
		s.NarrowRange = true
		codes++
	}
	if codes < 2 || codes&(codes-1) != 0 {
		return s, fmt.Errorf("range [%d, %d] is not a power-of-two code count", c.QuantMin, c.QuantMax)
	}
	s.Bits = bits.Len64(uint64(codes)) - 1
	if err := s.Validate(); err != nil {
		return s, err
	}
	if s.QMin() != c.QuantMin || s.QMax() != c.QuantMax {
		return s, fmt.Errorf("scheme %v has range [%d, %d], case [%d, %d]", s, s.QMin(), s.QMax(), c.QuantMin, c.QuantMax)
	}
	return s, nil
}

func goldenObserver(t *testing.T, c *golden.Case) {
	s, err := schemeOf(c)
	if err != nil {
		t.Fatal(err)
	}
	var obs quant.Observer
	if c.Op == "observer_moving_average_minmax" {
		if c.AveragingConstant == nil {
			t.Fatal("no averaging_constant")
		}
		obs = quant.NewMovingAverageMinMax(s, *c.AveragingConstant)
	} else {
		obs = quant.NewMinMax(s)
	}
	fq := fakequant.New(obs, fakequant.Named(c.Name))
	if fq.Mode() != fakequant.Observing {
		t.Fatalf("new quantizer is %v, want observing", fq.Mode())
	}
	r := &graphRun{g: gorgonia.NewGraph()}
	r.x = newInput(r.g, "x", c.Shape, nil)
	if r.y, err = fq.Apply(r.x); err != nil {
		t.Fatal(err)
	}
	m := r.finish(t, c.Shape, nil)
	if len(c.Batches) == 0 {
		t.Fatal("no batches")
	}
	for _, b := range c.Batches {
		if err := gorgonia.Let(r.x, dense(c.Shape, b)); err != nil {
			t.Fatal(err)
		}
		runOnce(t, m)
	}

	p, ok := fq.Params()
	if !ok {
		t.Fatal("no params after observing")
	}
	if len(p.Scale) != len(c.Scale) || len(p.ZeroPoint) != len(c.ZeroPoint) {
		t.Fatalf("%d scales and %d zero points, want %d", len(p.Scale), len(p.ZeroPoint), len(c.Scale))
	}
	for i := range c.Scale {
		if d := golden.ULPDiff(p.Scale[i], c.Scale[i]); d > 1 {
			t.Errorf("scale[%d] = %g, want %g (%d ulp)", i, p.Scale[i], c.Scale[i], d)
		}
	}
	if fmt.Sprint(p.ZeroPoint) != fmt.Sprint(c.ZeroPoints()) {
		t.Errorf("zero point = %v, want %v", p.ZeroPoint, c.ZeroPoints())
	}
	last := c.Batches[len(c.Batches)-1]
	if c.Q != nil {
		q := make([]int32, len(last))
		quant.Quantize(q, last, c.Shape, p)
		checkCodes(t, q, c.Q)
	}
	if c.Y != nil {
		// The forward pass of the last batch observes it first, so its
		// output is under the final params.
		checkExact(t, "y", valueData(t, r.yv, "y"), c.Y)
	}
}
