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

type convCase struct {
	n, c, h, w, o, kh, kw, s, p int
}

func (c convCase) String() string {
	return fmt.Sprintf("x=[%d,%d,%d,%d]/w=[%d,%d,%d,%d]/s=%d/p=%d", c.n, c.c, c.h, c.w, c.o, c.c, c.kh, c.kw, c.s, c.p)
}

func (c convCase) cfg() ConvConfig { return ConvConfig{Stride: c.s, Padding: c.p} }

var forwardCases = []convCase{
	{1, 1, 5, 5, 1, 3, 3, 1, 0},
	{3, 3, 7, 9, 4, 3, 3, 1, 1},
	{3, 3, 9, 7, 5, 3, 3, 2, 0},   // stride 2, odd sizes
	{2, 3, 8, 8, 4, 5, 5, 1, 2},   // padding 2
	{1, 3, 11, 9, 2, 5, 5, 2, 2},  // stride 2 and padding 2
	{3, 3, 6, 5, 4, 1, 1, 1, 0},   // 1x1, direct path
	{2, 2, 7, 7, 3, 1, 1, 2, 1},   // 1x1 with stride and padding
	{3, 1, 11, 13, 2, 5, 3, 2, 2}, // non-square kernel
	{3, 1, 28, 28, 16, 5, 5, 1, 0},
	{1, 16, 12, 12, 32, 5, 5, 1, 0},
	{1, 2, 3, 3, 2, 5, 5, 3, 1}, // kernel only fits the padded input
}

func randTensor(r *rand.Rand, shape ...int) *tensor.Dense {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

func cloneDense(t *tensor.Dense) *tensor.Dense { return t.Clone().(*tensor.Dense) }

// convGraph is one graph holding x, w, a convolution y (ours or gorgonia's)
// and, when withGrad, cost = sum(y .* dy) with gradients of x and w.
type convGraph struct {
	g          *gorgonia.ExprGraph
	x, w, y    *gorgonia.Node
	gradX, gwd *gorgonia.Node
	vm         gorgonia.VM
}

func buildConv(tb testing.TB, ours bool, x, w, dy *tensor.Dense, cfg ConvConfig, withGrad bool) *convGraph {
	tb.Helper()
	g := gorgonia.NewGraph()
	cg := &convGraph{g: g}
	cg.x = gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(x.Shape()...), gorgonia.WithName("x"), gorgonia.WithValue(x))
	cg.w = gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(w.Shape()...), gorgonia.WithName("w"), gorgonia.WithValue(w))
	var err error
	if ours {
		cg.y, err = Conv2d(cg.x, cg.w, cfg)
	} else {
		s := cfg.stride()
		ws := w.Shape()
		cg.y, err = gorgonia.Conv2d(cg.x, cg.w, tensor.Shape{ws[2], ws[3]}, []int{cfg.Padding, cfg.Padding}, []int{s, s}, []int{1, 1})
	}
	if err != nil {
		tb.Fatal(err)
	}
	if withGrad {
		dyn := gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(dy.Shape()...), gorgonia.WithName("dy"), gorgonia.WithValue(dy))
		cost := gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(cg.y, dyn))))
		grads, err := gorgonia.Grad(cost, cg.x, cg.w)
		if err != nil {
			tb.Fatal(err)
		}
		cg.gradX, cg.gwd = grads[0], grads[1]
	}
	cg.vm = gorgonia.NewTapeMachine(g)
	return cg
}

func (cg *convGraph) run(tb testing.TB) {
	tb.Helper()
	if err := cg.vm.RunAll(); err != nil {
		tb.Fatal(err)
	}
	cg.vm.Reset()
}

func valueOf(tb testing.TB, n *gorgonia.Node) []float32 {
	tb.Helper()
	d, _, err := graphval.Float32s(n.Value(), n.Name())
	if err != nil {
		tb.Fatal(err)
	}
	return append([]float32(nil), d...)
}

// TestConv2dForwardMatchesGorgonia compares the forward pass with
// gorgonia.Conv2d (dilation 1) within 1e-5 relative (gradcheck.Normwise:
// normwise, as a sum of hundreds of terms may cancel to a small value
// whose float32 rounding error is that of the terms, not of the result).
// It runs our graph twice to check that reused scratch gives the same
// result.
func TestConv2dForwardMatchesGorgonia(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, c := range forwardCases {
		t.Run(c.String(), func(t *testing.T) {
			x := randTensor(r, c.n, c.c, c.h, c.w)
			w := randTensor(r, c.o, c.c, c.kh, c.kw)
			ours := buildConv(t, true, x, w, nil, c.cfg(), false)
			ref := buildConv(t, false, cloneDense(x), cloneDense(w), nil, c.cfg(), false)
			wantShape := tensor.Shape{c.n, c.o, (c.h+2*c.p-c.kh)/c.s + 1, (c.w+2*c.p-c.kw)/c.s + 1}
			if !ours.y.Shape().Eq(wantShape) || !ref.y.Shape().Eq(wantShape) {
				t.Fatalf("shapes %v (ours), %v (gorgonia), want %v", ours.y.Shape(), ref.y.Shape(), wantShape)
			}
			ref.run(t)
			want := valueOf(t, ref.y)
			for i := 0; i < 2; i++ {
				ours.run(t)
				if err := gradcheck.Normwise(valueOf(t, ours.y), to64s(want), 1e-5); err != nil {
					t.Fatalf("run %d: %v", i, err)
				}
			}
		})
	}
}

// TestConv2dStrideZeroIsOne checks ConvConfig's zero value.
func TestConv2dStrideZeroIsOne(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	x := randTensor(r, 2, 3, 6, 7)
	w := randTensor(r, 2, 3, 3, 3)
	a := buildConv(t, true, x, w, nil, ConvConfig{}, false)
	b := buildConv(t, true, x, w, nil, ConvConfig{Stride: 1}, false)
	a.run(t)
	b.run(t)
	if err := gradcheck.Normwise(valueOf(t, a.y), to64s(valueOf(t, b.y)), 0); err != nil {
		t.Fatal(err)
	}
}

// conv64 is a naive float64 convolution of groups groups, by PyTorch's
// definition: output channel o reads input channels
// g*C/G .. (g+1)*C/G-1 of its group g = o/(O/G), with weight
// w[o, ch - g*C/G]. It is the reference for finite differences.
func conv64(x, w []float64, c convCase, groups int) []float64 {
	oh, ow := (c.h+2*c.p-c.kh)/c.s+1, (c.w+2*c.p-c.kw)/c.s+1
	cg := c.c / groups
	y := make([]float64, c.n*c.o*oh*ow)
	for n := 0; n < c.n; n++ {
		for o := 0; o < c.o; o++ {
			first := o / (c.o / groups) * cg
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var s float64
					for ch := first; ch < first+cg; ch++ {
						for a := 0; a < c.kh; a++ {
							for b := 0; b < c.kw; b++ {
								hi, wi := i*c.s+a-c.p, j*c.s+b-c.p
								if hi < 0 || hi >= c.h || wi < 0 || wi >= c.w {
									continue
								}
								s += x[((n*c.c+ch)*c.h+hi)*c.w+wi] * w[((o*cg+ch-first)*c.kh+a)*c.kw+b]
							}
						}
					}
					y[((n*c.o+o)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return y
}

func to64(d *tensor.Dense) []float64 {
	s := d.Data().([]float32)
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

var gradCases = []convCase{
	{1, 1, 4, 4, 1, 3, 3, 1, 0},
	{2, 3, 5, 6, 2, 3, 3, 1, 1},
	{3, 2, 7, 5, 3, 3, 2, 2, 2},
	{2, 3, 4, 5, 2, 1, 1, 1, 0},
	{2, 2, 5, 5, 3, 1, 1, 2, 1},
	{1, 2, 3, 3, 2, 5, 5, 3, 1},
}

// TestConv2dGradFiniteDiff checks dX and dW from gorgonia.Grad through our
// ops against central differences (gradcheck.Partials) of
// L(x, w) = sum(dY .* conv(x, w)), evaluated in float64 by conv64 with
// step h = 1e-3. L is bilinear, so the difference quotient is exact up to
// float64 rounding (~1e-13/h); the tolerance, 1e-5 relative
// (gradcheck.Normwise), covers the float32 sums of our ops. It also checks
// the forward pass against conv64.
func TestConv2dGradFiniteDiff(t *testing.T) {
	const h, tol = 1e-3, 1e-5
	r := rand.New(rand.NewSource(3))
	for _, c := range gradCases {
		t.Run(c.String(), func(t *testing.T) {
			oh, ow := (c.h+2*c.p-c.kh)/c.s+1, (c.w+2*c.p-c.kw)/c.s+1
			x := randTensor(r, c.n, c.c, c.h, c.w)
			w := randTensor(r, c.o, c.c, c.kh, c.kw)
			dy := randTensor(r, c.n, c.o, oh, ow)
			cg := buildConv(t, true, x, w, dy, c.cfg(), true)
			cg.run(t)
			x64, w64, dy64 := to64(x), to64(w), to64(dy)
			loss := func() float64 {
				var s float64
				for i, v := range conv64(x64, w64, c, 1) {
					s += v * dy64[i]
				}
				return s
			}
			if err := gradcheck.Normwise(valueOf(t, cg.y), conv64(x64, w64, c, 1), tol); err != nil {
				t.Fatalf("forward: %v", err)
			}
			fd := gradcheck.Partials(loss, h, x64, w64)
			if err := gradcheck.Normwise(valueOf(t, cg.gradX), fd[0], tol); err != nil {
				t.Fatalf("dX: %v", err)
			}
			if err := gradcheck.Normwise(valueOf(t, cg.gwd), fd[1], tol); err != nil {
				t.Fatalf("dW: %v", err)
			}
		})
	}
}

// TestConv2dGradMatchesGorgonia compares dX and dW with those gorgonia.Grad
// computes through gorgonia.Conv2d, within 1e-5 relative
// (gradcheck.Normwise), over two runs of each machine.
func TestConv2dGradMatchesGorgonia(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	for _, c := range forwardCases {
		t.Run(c.String(), func(t *testing.T) {
			oh, ow := (c.h+2*c.p-c.kh)/c.s+1, (c.w+2*c.p-c.kw)/c.s+1
			x := randTensor(r, c.n, c.c, c.h, c.w)
			w := randTensor(r, c.o, c.c, c.kh, c.kw)
			dy := randTensor(r, c.n, c.o, oh, ow)
			ours := buildConv(t, true, x, w, dy, c.cfg(), true)
			ref := buildConv(t, false, cloneDense(x), cloneDense(w), cloneDense(dy), c.cfg(), true)
			for i := 0; i < 2; i++ {
				ours.run(t)
				ref.run(t)
				if err := gradcheck.Normwise(valueOf(t, ours.gradX), to64s(valueOf(t, ref.gradX)), 1e-5); err != nil {
					t.Fatalf("run %d: dX: %v", i, err)
				}
				if err := gradcheck.Normwise(valueOf(t, ours.gwd), to64s(valueOf(t, ref.gwd)), 1e-5); err != nil {
					t.Fatalf("run %d: dW: %v", i, err)
				}
			}
		})
	}
}

func TestConv2dBuildErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	node := func(dt tensor.Dtype, shape ...int) *gorgonia.Node {
		if len(shape) == 2 {
			return gorgonia.NewMatrix(g, dt, gorgonia.WithShape(shape...))
		}
		return gorgonia.NewTensor(g, dt, len(shape), gorgonia.WithShape(shape...))
	}
	x := node(tensor.Float32, 2, 3, 8, 8)
	w := node(tensor.Float32, 4, 3, 3, 3)
	cases := []struct {
		name string
		x, w *gorgonia.Node
		cfg  ConvConfig
		want string
	}{
		{"nil input", nil, w, ConvConfig{}, "nil"},
		{"nil weight", x, nil, ConvConfig{}, "nil"},
		{"float64 input", node(tensor.Float64, 2, 3, 8, 8), w, ConvConfig{}, "want float32"},
		{"float64 weight", x, node(tensor.Float64, 4, 3, 3, 3), ConvConfig{}, "want float32"},
		{"3-D input", node(tensor.Float32, 3, 8, 8), w, ConvConfig{}, "want 4-D"},
		{"2-D input", node(tensor.Float32, 24, 8), w, ConvConfig{}, "want 4-D"},
		{"3-D weight", x, node(tensor.Float32, 4, 3, 3), ConvConfig{}, "want 4-D"},
		{"channel mismatch", x, node(tensor.Float32, 4, 2, 3, 3), ConvConfig{}, "channel mismatch"},
		{"kernel too large", x, node(tensor.Float32, 4, 3, 9, 3), ConvConfig{}, "larger than the padded input"},
		{"kernel too large with padding", x, node(tensor.Float32, 4, 3, 3, 11), ConvConfig{Padding: 1}, "larger than the padded input"},
		{"negative stride", x, w, ConvConfig{Stride: -1}, "stride -1 is negative"},
		{"negative padding", x, w, ConvConfig{Padding: -2}, "padding -2 is negative"},
		{"negative groups", x, w, ConvConfig{Groups: -1}, "groups -1 is negative"},
		{"grouped channel mismatch", x, node(tensor.Float32, 3, 3, 3, 3), ConvConfig{Groups: 3}, "channel mismatch: input (2, 3, 8, 8) has 3 channels, weight (3, 3, 3, 3) has 3 per group, 9 in 3 groups"},
		{"outputs not a multiple of groups", node(tensor.Float32, 2, 4, 8, 8), node(tensor.Float32, 3, 2, 3, 3), ConvConfig{Groups: 2}, "3 output channels, not a multiple of the 2 groups"},
	}
	for _, c := range cases {
		y, err := Conv2d(c.x, c.w, c.cfg)
		if err == nil {
			t.Errorf("%s: no error, got node %v", c.name, y)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to mention %q", c.name, err, c.want)
		}
	}
	// The kernel fits once padded.
	if _, err := Conv2d(x, node(tensor.Float32, 4, 3, 9, 10), ConvConfig{Padding: 1}); err != nil {
		t.Errorf("9x10 kernel on padded 10x10 input: %v", err)
	}
}

// TestConv2dRunShapeError checks that a run whose values disagree with
// the geometry returns an error instead of panicking.
func TestConv2dRunShapeError(t *testing.T) {
	op := newConv(ConvConfig{})
	r := rand.New(rand.NewSource(5))
	if _, err := op.Do(randTensor(r, 1, 2, 5, 5), randTensor(r, 1, 3, 3, 3)); err == nil || !strings.Contains(err.Error(), "channel mismatch") {
		t.Errorf("channel mismatch at run time: err = %v", err)
	}
	gop := newConvGrad(op, true)
	if _, err := gop.Do(randTensor(r, 1, 2, 5, 5), randTensor(r, 1, 2, 3, 3), randTensor(r, 1, 1, 2, 3)); err == nil || !strings.Contains(err.Error(), "output gradient") {
		t.Errorf("wrong dY shape: err = %v", err)
	}
	f64 := tensor.New(tensor.WithShape(1, 2, 5, 5), tensor.WithBacking(make([]float64, 50)))
	if _, err := op.Do(f64, randTensor(r, 1, 2, 3, 3)); err == nil || !strings.Contains(err.Error(), "want float32") {
		t.Errorf("float64 value: err = %v", err)
	}
}
