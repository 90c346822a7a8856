package ops

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gradcheck"
)

// channel64 is y = x op s[c] along axis, in float64.
func channel64(x, s []float64, shape []int, axis, kind int) []float64 {
	inner := size(shape[axis+1:])
	c := shape[axis]
	y := make([]float64, len(x))
	for i, v := range x {
		sc := s[(i/inner)%c]
		switch kind {
		case chanMul:
			y[i] = v * sc
		case chanDiv:
			y[i] = v / sc
		default:
			y[i] = v + sc
		}
	}
	return y
}

func TestChannelOpsForwardAndGrad(t *testing.T) {
	r := rand.New(rand.NewSource(40))
	cases := []struct {
		shape []int
		axis  int
	}{
		{[]int{5, 3, 3, 3}, 0}, // a conv weight [O, C, KH, KW]
		{[]int{3, 4, 5, 7}, 1}, // an activation [N, C, H, W]
		{[]int{7, 3}, 1},       // [N, C]
		{[]int{2, 3, 5}, 2},    // last axis
		{[]int{5}, 0},          // a vector
	}
	for _, kind := range []int{chanMul, chanDiv, chanAdd} {
		for _, c := range cases {
			if kind == chanAdd && c.axis != 1 {
				continue
			}
			t.Run(fmt.Sprintf("%s/%v/axis%d", chanNames[kind], c.shape, c.axis), func(t *testing.T) {
				x := normal(r, c.shape...)
				s := normal(r, c.shape[c.axis])
				if kind == chanDiv {
					for i, v := range s.data { // keep |s| >= 0.5
						s.data[i] = float64(float32(math.Copysign(0.5+math.Abs(v), v)))
					}
				}
				og := buildOp(t, 41, true, []dense64{x, s}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
					switch kind {
					case chanMul:
						return ChannelMul(in[0], in[1], c.axis)
					case chanDiv:
						return ChannelDiv(in[0], in[1], c.axis)
					}
					return AddChannelBias(in[0], in[1])
				})
				f := func(p [][]float64) []float64 { return channel64(p[0], p[1], c.shape, c.axis, kind) }
				checkGrads(t, og, f, []dense64{x, s}, 1e-5, 1e-3)
			})
		}
	}
}

// TestChannelDivByZero: x / 0 is IEEE, ±Inf or NaN, and not an error;
// dX = dY / 0 likewise, and ds is -Inf/+Inf/NaN per channel.
func TestChannelDivByZero(t *testing.T) {
	x := dense64{[]int{1, 2, 2}, []float64{1, -2, 0, 3}}
	s := dense64{[]int{2}, []float64{0, 2}}
	og := buildOp(t, 42, true, []dense64{x, s}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		return ChannelDiv(in[0], in[1], 1)
	})
	og.run(t)
	inf := math.Inf(1)
	if err := gradcheck.Normwise(f32Of(t, og.y), []float64{inf, -inf, 0, 1.5}, 0); err != nil {
		t.Error(err)
	}
	for i, v := range f32Of(t, og.grads[0])[:2] {
		if !math.IsInf(float64(v), 0) {
			t.Errorf("dX[%d] = %v, want ±Inf", i, v)
		}
	}
	if v := f32Of(t, og.grads[1])[0]; !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) {
		t.Errorf("ds[0] = %v, want ±Inf or NaN", v)
	}
}

func TestChannelErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := testGraphNode(g, tensor.Float32, 2, 3, 4)
	s3 := testGraphNode(g, tensor.Float32, 3)
	cases := []struct {
		name string
		x, s *gorgonia.Node
		axis int
		want string
	}{
		{"nil x", nil, s3, 1, "nil input"},
		{"nil s", x, nil, 1, "nil scale"},
		{"axis 3", x, s3, 3, "axis 3 outside"},
		{"axis -1", x, s3, -1, "axis -1 outside"},
		{"length", x, s3, 0, "want [2]"},
		{"2-D s", x, testGraphNode(g, tensor.Float32, 1, 3), 1, "want 1-D"},
		{"float64 s", x, testGraphNode(g, tensor.Float64, 3), 1, "want float32"},
	}
	for _, c := range cases {
		_, err := ChannelMul(c.x, c.s, c.axis)
		wantErr(t, "mul "+c.name, err, "ops.ChannelMul", c.want)
		_, err = ChannelDiv(c.x, c.s, c.axis)
		wantErr(t, "div "+c.name, err, "ops.ChannelDiv", c.want)
	}
	_, err := AddChannelBias(x, testGraphNode(g, tensor.Float32, 4))
	wantErr(t, "bias length", err, "ops.AddChannelBias", "want [3]")
	_, err = AddChannelBias(testGraphNode(g, tensor.Float32, 3), s3)
	wantErr(t, "1-D bias input", err, "ops.AddChannelBias", "axis 1 outside")

	r := rand.New(rand.NewSource(43))
	op := newChannel(1, chanMul)
	_, err = op.Do(normal(r, 2, 4).f32(), normal(r, 3).f32())
	wantErr(t, "run-time length", err, "ChannelMul(axis=1)#", "want [4]")
	gop := newChannelGrad(op, true)
	_, err = gop.Do(normal(r, 2, 3).f32(), normal(r, 3).f32(), normal(r, 3, 2).f32())
	wantErr(t, "run-time dY", err, "ChannelMulGradS#", "output gradient")
}

// foldScale32 is PyTorch's float32 sequence gamma / sqrt(rv + eps).
func foldScale32(gamma, rv []float32, eps float32) []float64 {
	out := make([]float64, len(gamma))
	for i := range gamma {
		std := float32(math.Sqrt(float64(rv[i] + eps)))
		out[i] = float64(gamma[i] / std)
	}
	return out
}

// TestFoldScale checks sf bit for bit against the float32 sequence, within
// 1e-6 of the float64 formula, its gradient by finite differences (sf is
// linear in gamma), and that it reads RunningVar on every run.
func TestFoldScale(t *testing.T) {
	r := rand.New(rand.NewSource(44))
	bn, err := NewBatchNorm(5, BatchNormConfig{Eps: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range bn.RunningVar {
		bn.RunningVar[i] = float32(0.1 + r.Float64()*3)
	}
	gamma := normal(r, 5)
	og := buildOp(t, 45, true, []dense64{gamma}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		return FoldScale(in[0], bn)
	})
	f := func(p [][]float64) []float64 {
		out := make([]float64, len(p[0]))
		for i, g := range p[0] {
			out[i] = g / math.Sqrt(float64(bn.RunningVar[i])+float64(bn.Eps()))
		}
		return out
	}
	checkGrads(t, og, f, []dense64{gamma}, 1e-6, 1e-3)
	g32 := gamma.f32().Data().([]float32)
	if err := gradcheck.Normwise(f32Of(t, og.y), foldScale32(g32, bn.RunningVar, bn.Eps()), 0); err != nil {
		t.Errorf("not PyTorch's float32 sequence: %v", err)
	}
	bn.RunningVar[2] = 4 - bn.Eps()
	og.run(t)
	if got, want := f32Of(t, og.y)[2], g32[2]/2; got != want {
		t.Errorf("after changing RunningVar: sf[2] = %v, want %v", got, want)
	}

	g := gorgonia.NewGraph()
	_, err = FoldScale(testGraphNode(g, tensor.Float32, 4), bn)
	wantErr(t, "gamma length", err, "ops.FoldScale", "5 channels")
	_, err = FoldScale(testGraphNode(g, tensor.Float32, 5), nil)
	wantErr(t, "nil bn", err, "ops.FoldScale", "nil BatchNorm")
	_, err = FoldScale(testGraphNode(g, tensor.Float32, 1, 5), bn)
	wantErr(t, "2-D gamma", err, "ops.FoldScale", "want 1-D")

	bn.RunningVar = bn.RunningVar[:4]
	err = og.tryRun()
	wantErr(t, "run-time RunningVar length", err, "FoldScale#", "RunningVar has 4 elements")
}

// TestConvBnFoldingOrder builds the folding pattern around a training-mode
// BatchNorm: sf = FoldScale(gamma, bn), z = bn.Apply(ChannelMul(x, sf, 1),
// gamma, beta), cost = sum(z .* r) + sum(sf .* r2). FoldScale runs before
// the BatchNorm forward (its output feeds it), so sf must use the running
// variance from before this run's update, and its gamma gradient must
// divide by that same std even though the update has happened by then.
// The float64 reference fixes sf at the pre-update variance; the gradient
// of gamma sums the BatchNorm path, the sf path through the BatchNorm
// (nearly 0: training-mode BatchNorm is invariant to per-channel scale up
// to eps) and r2/std.
func TestConvBnFoldingOrder(t *testing.T) {
	const n, c, h, w = 3, 4, 3, 2
	r := rand.New(rand.NewSource(46))
	bn, err := NewBatchNorm(c, BatchNormConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range bn.RunningVar {
		bn.RunningVar[i] = float32(0.5 + r.Float64())
	}
	rv0 := append([]float32(nil), bn.RunningVar...)
	x, gamma, beta := normal(r, n, c, h, w), normal(r, c), normal(r, c)
	r2 := normal(r, c)
	for i := range x.data {
		x.data[i] = float64(float32(x.data[i]*3 + 1)) // batch variance far from rv0
	}

	g := gorgonia.NewGraph()
	node := func(d dense64, name string) *gorgonia.Node {
		return gorgonia.NewTensor(g, tensor.Float32, len(d.shape), gorgonia.WithShape(d.shape...), gorgonia.WithName(name), gorgonia.WithValue(d.f32()))
	}
	xn, gn, bnode, rn, r2n := node(x, "x"), node(gamma, "gamma"), node(beta, "beta"), node(normal(r, n, c, h, w), "r"), node(r2, "r2")
	sf := gorgonia.Must(FoldScale(gn, bn))
	z := gorgonia.Must(bn.Apply(gorgonia.Must(ChannelMul(xn, sf, 1)), gn, bnode))
	cost := gorgonia.Must(gorgonia.Add(
		gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(z, rn)))),
		gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(sf, r2n))))))
	grads, err := gorgonia.Grad(cost, xn, gn, bnode)
	if err != nil {
		t.Fatal(err)
	}
	if err := gorgonia.NewTapeMachine(g).RunAll(); err != nil {
		t.Fatal(err)
	}
	if bn.NumBatchesTracked != 1 {
		t.Fatalf("NumBatchesTracked = %d", bn.NumBatchesTracked)
	}
	if err := gradcheck.Normwise(f32Of(t, sf), foldScale32(gamma.f32().Data().([]float32), rv0, bn.Eps()), 0); err != nil {
		t.Errorf("sf did not use the pre-update running variance: %v", err)
	}
	rw := f32Of(t, rn)
	eps := float64(bn.Eps())
	loss := func(p [][]float64) []float64 {
		xs, gs, bs := p[0], p[1], p[2]
		sf := make([]float64, c)
		for i := range sf {
			sf[i] = gs[i] / math.Sqrt(float64(rv0[i])+eps)
		}
		u := channel64(xs, sf, []int{n, c, h, w}, 1, chanMul)
		y := bnTrain64(u, gs, bs, n, c, h*w, eps)
		var s float64
		for i, v := range y {
			s += v * float64(rw[i])
		}
		for i, v := range sf {
			s += v * r2.data[i]
		}
		return []float64{s}
	}
	p := [][]float64{append([]float64(nil), x.data...), append([]float64(nil), gamma.data...), append([]float64(nil), beta.data...)}
	fd := fdGrads(loss, p, []float64{1}, 1e-3)
	for i, name := range []string{"x", "gamma", "beta"} {
		if err := gradcheck.Normwise(f32Of(t, grads[i]), fd[i], 1e-4); err != nil {
			t.Errorf("d%s: %v", name, err)
		}
	}
}
