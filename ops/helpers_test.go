package ops

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gradcheck"
	"qat/internal/graphval"
)

// Shared helpers for the tests of the ops: float64 test tensors, a graph
// of one op with the gradients of a random weighting of its output, and
// the finite-difference check of those gradients (internal/gradcheck).

// dense64 is a float64 test tensor: the reference implementations work on
// these, and f32 converts one into an op input.
type dense64 struct {
	shape []int
	data  []float64
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// normal returns a tensor of standard normal values rounded to float32,
// so that the float64 reference and the float32 op see the same input.
func normal(r *rand.Rand, shape ...int) dense64 {
	d := make([]float64, size(shape))
	for i := range d {
		d[i] = float64(float32(r.NormFloat64()))
	}
	return dense64{shape: shape, data: d}
}

func (d dense64) f32() *tensor.Dense {
	s := make([]float32, len(d.data))
	for i, v := range d.data {
		s[i] = float32(v)
	}
	return graphval.NewDense(tensor.Shape(d.shape), s)
}

func (d dense64) clone() dense64 {
	return dense64{shape: append([]int(nil), d.shape...), data: append([]float64(nil), d.data...)}
}

// opGraph is one graph holding an input node per test tensor, an output y
// built from them and, when it has gradients, cost = sum(y .* r) for a
// random r (or cost = y when y is a scalar) with the gradients of cost
// with respect to every input.
type opGraph struct {
	g     *gorgonia.ExprGraph
	in    []*gorgonia.Node
	y     *gorgonia.Node
	r     []float64 // cost weights, len(y); [1] for a scalar y
	grads []*gorgonia.Node
	vm    gorgonia.VM
}

func buildOp(tb testing.TB, seed int64, withGrad bool, ins []dense64, build func(in []*gorgonia.Node) (*gorgonia.Node, error)) *opGraph {
	tb.Helper()
	g := gorgonia.NewGraph()
	og := &opGraph{g: g}
	for i, d := range ins {
		og.in = append(og.in, gorgonia.NewTensor(g, tensor.Float32, len(d.shape), gorgonia.WithShape(d.shape...),
			gorgonia.WithName(fmt.Sprintf("in%d", i)), gorgonia.WithValue(d.f32())))
	}
	var err error
	if og.y, err = build(og.in); err != nil {
		tb.Fatal(err)
	}
	if withGrad {
		cost := og.y
		og.r = []float64{1}
		if !og.y.IsScalar() {
			rt := normal(rand.New(rand.NewSource(seed)), og.y.Shape()...)
			og.r = rt.data
			rn := gorgonia.NewTensor(g, tensor.Float32, len(rt.shape), gorgonia.WithShape(rt.shape...), gorgonia.WithName("r"), gorgonia.WithValue(rt.f32()))
			cost = gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(og.y, rn))))
		}
		if og.grads, err = gorgonia.Grad(cost, og.in...); err != nil {
			tb.Fatal(err)
		}
	}
	og.vm = gorgonia.NewTapeMachine(g)
	return og
}

func (og *opGraph) run(tb testing.TB) {
	tb.Helper()
	if err := og.tryRun(); err != nil {
		tb.Fatal(err)
	}
}

func (og *opGraph) tryRun() error {
	defer og.vm.Reset()
	return og.vm.RunAll()
}

// f32Of returns a copy of a node's float32 value (tensor or scalar).
func f32Of(tb testing.TB, n *gorgonia.Node) []float32 {
	tb.Helper()
	if n.Value() == nil {
		tb.Fatalf("%v has no value", n)
	}
	if v, ok := n.Value().Data().(float32); ok {
		return []float32{v}
	}
	d, _, err := graphval.Float32s(n.Value(), n.Name())
	if err != nil {
		tb.Fatal(err)
	}
	return append([]float32(nil), d...)
}

// fdGrads returns the central differences (gradcheck.Partials, step h)
// of L(p) = sum(f(p) .* r) with respect to every element of every p[i].
func fdGrads(f func(p [][]float64) []float64, p [][]float64, r []float64, h float64) [][]float64 {
	loss := func() float64 {
		var s float64
		for i, v := range f(p) {
			s += v * r[i]
		}
		return s
	}
	return gradcheck.Partials(loss, h, p...)
}

// checkGrads runs og once and compares its output with f(p) and its
// gradients with fdGrads of f, within tol (gradcheck.Normwise). p holds
// the inputs in og's order.
func checkGrads(t *testing.T, og *opGraph, f func(p [][]float64) []float64, ins []dense64, tol, h float64) {
	t.Helper()
	p := make([][]float64, len(ins))
	for i, d := range ins {
		p[i] = append([]float64(nil), d.data...)
	}
	og.run(t)
	if err := gradcheck.Normwise(f32Of(t, og.y), f(p), tol); err != nil {
		t.Fatalf("forward: %v", err)
	}
	fd := fdGrads(f, p, og.r, h)
	for i := range ins {
		if err := gradcheck.Normwise(f32Of(t, og.grads[i]), fd[i], tol); err != nil {
			t.Fatalf("gradient of input %d: %v", i, err)
		}
	}
}

// wantErr checks that err is non-nil and mentions every part.
func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not mention %q", what, err, p)
		}
	}
}

// testGraphNode makes a float32 (or dt) input node of the given shape in g.
func testGraphNode(g *gorgonia.ExprGraph, dt tensor.Dtype, shape ...int) *gorgonia.Node {
	return gorgonia.NewTensor(g, dt, len(shape), gorgonia.WithShape(shape...))
}
