package ops

import (
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gradcheck"
)

// concat64 joins [N, C_i, H, W] tensors along axis 1 by the definition:
// sample n holds the channels of each input in turn.
func concat64(xs [][]float64, chans []int, n, hw int) []float64 {
	var y []float64
	for s := range n {
		for i, x := range xs {
			m := chans[i] * hw
			y = append(y, x[s*m:(s+1)*m]...)
		}
	}
	return y
}

// TestAddAndConcatGrad checks Add and Concat, forward and input
// gradients, against their float64 definitions and the central
// differences (step 1e-3) of sum(y .* r): both are linear, so the
// differences are exact up to float64 rounding; the tolerance is that of
// one float32 rounding of a sum of two terms. Each graph runs twice.
func TestAddAndConcatGrad(t *testing.T) {
	r := rand.New(rand.NewSource(40))
	a, b := normal(r, 2, 3, 5, 7), normal(r, 2, 3, 5, 7)
	og := buildOp(t, 41, true, []dense64{a, b}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Add(in[0], in[1]) })
	add := func(p [][]float64) []float64 {
		y := make([]float64, len(p[0]))
		for i := range y {
			y[i] = p[0][i] + p[1][i]
		}
		return y
	}
	for range 2 {
		checkGrads(t, og, add, []dense64{a, b}, 1e-6, 1e-3)
	}
	v := normal(r, 3, 5) // rank 2: Add takes any rank
	og = buildOp(t, 42, true, []dense64{v, v}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Add(in[0], in[1]) })
	checkGrads(t, og, add, []dense64{v, v}, 1e-6, 1e-3)

	chans := []int{1, 3, 2}
	ins := []dense64{normal(r, 2, 1, 3, 5), normal(r, 2, 3, 3, 5), normal(r, 2, 2, 3, 5)}
	og = buildOp(t, 43, true, ins, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Concat(in...) })
	if !og.y.Shape().Eq(tensor.Shape{2, 6, 3, 5}) {
		t.Fatalf("concat shape %v, want [2 6 3 5]", og.y.Shape())
	}
	for range 2 {
		checkGrads(t, og, func(p [][]float64) []float64 { return concat64(p, chans, 2, 15) }, ins, 1e-6, 1e-3)
	}
}

// TestGradFanOut checks gradients through nodes with several consumers:
// c = ChannelMul(x, s, 1), y = Concat(Add(c, x), c). x feeds ChannelMul
// and the Add, c the Add and the Concat, and the Add passes the same
// gradient node (the Concat's gradient of its first input) on to both c
// and x, where gorgonia.Grad adds it to their other gradients: each sum
// must see that node's value, not one the other sum wrote in place.
// Forward and gradients against the float64 definition and central
// differences (step 1e-3), over two runs; the function is bilinear in x
// and s, so the differences are exact up to float64 rounding.
func TestGradFanOut(t *testing.T) {
	r := rand.New(rand.NewSource(44))
	ins := []dense64{normal(r, 2, 3, 4, 5), normal(r, 3)}
	og := buildOp(t, 45, true, ins, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		c, err := ChannelMul(in[0], in[1], 1)
		if err != nil {
			return nil, err
		}
		y, err := Add(c, in[0])
		if err != nil {
			return nil, err
		}
		return Concat(y, c)
	})
	f := func(p [][]float64) []float64 {
		x, s := p[0], p[1]
		c, y := make([]float64, len(x)), make([]float64, len(x))
		for i, v := range x {
			c[i] = v * s[i/20%3]
			y[i] = c[i] + v
		}
		return concat64([][]float64{y, c}, []int{3, 3}, 2, 20)
	}
	for range 2 {
		checkGrads(t, og, f, ins, 1e-5, 1e-3)
	}
}

// gap64 is the mean of each [H, W] plane, in float64.
func gap64(x []float64, plane int) []float64 {
	y := make([]float64, len(x)/plane)
	for p := range y {
		for _, v := range x[p*plane : (p+1)*plane] {
			y[p] += v
		}
		y[p] /= float64(plane)
	}
	return y
}

// TestGlobalAvgPool checks GlobalAvgPool against the float64 mean and its
// gradient against central differences (step 1e-3; linear, so exact up to
// rounding), on odd, non-square and 1x1 planes; by hand (the mean of
// 0..15 is 7.5); and, on a square plane, against AvgPool2d with the
// plane's size as kernel bit for bit, forward and gradient (the same
// float64 sum and scaling, the same float32 division of dY).
func TestGlobalAvgPool(t *testing.T) {
	r := rand.New(rand.NewSource(46))
	for _, shape := range [][]int{{2, 3, 5, 7}, {1, 2, 1, 1}, {3, 1, 4, 4}} {
		x := normal(r, shape...)
		og := buildOp(t, 47, true, []dense64{x}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return GlobalAvgPool(in[0]) })
		if !og.y.Shape().Eq(tensor.Shape{shape[0], shape[1], 1, 1}) {
			t.Fatalf("%v: shape %v", shape, og.y.Shape())
		}
		for range 2 {
			checkGrads(t, og, func(p [][]float64) []float64 { return gap64(p[0], shape[2]*shape[3]) }, []dense64{x}, 1e-6, 1e-3)
		}
	}

	hand := dense64{shape: []int{1, 1, 4, 4}, data: make([]float64, 16)}
	for i := range hand.data {
		hand.data[i] = float64(i)
	}
	og := buildOp(t, 0, false, []dense64{hand}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return GlobalAvgPool(in[0]) })
	og.run(t)
	if err := gradcheck.Normwise(f32Of(t, og.y), []float64{7.5}, 0); err != nil {
		t.Errorf("mean of 0..15: %v", err)
	}

	x := normal(r, 2, 3, 6, 6)
	outs := [2][][]float32{}
	for i, f := range []func(*gorgonia.Node) (*gorgonia.Node, error){
		GlobalAvgPool,
		func(x *gorgonia.Node) (*gorgonia.Node, error) { return AvgPool2d(x, 6, 0) },
	} {
		og := buildOp(t, 48, true, []dense64{x}, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return f(in[0]) })
		og.run(t)
		outs[i] = [][]float32{f32Of(t, og.y), f32Of(t, og.grads[0])}
	}
	for k, what := range []string{"forward", "gradient"} {
		for i, v := range outs[0][k] {
			if math.Float32bits(v) != math.Float32bits(outs[1][k][i]) {
				t.Fatalf("%s [%d]: GlobalAvgPool %v, AvgPool2d(6) %v", what, i, v, outs[1][k][i])
			}
		}
	}
}

func TestJoinErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := testGraphNode(g, tensor.Float32, 2, 3, 4, 5)
	_, err := Add(x, testGraphNode(g, tensor.Float32, 2, 3, 5, 4))
	wantErr(t, "add shapes", err, "ops.Add", "want one shape")
	_, err = Add(x, nil)
	wantErr(t, "add nil", err, "ops.Add", "nil")
	_, err = Add(x, testGraphNode(g, tensor.Float64, 2, 3, 4, 5))
	wantErr(t, "add float64", err, "ops.Add", "want float32")
	_, err = Concat()
	wantErr(t, "concat of none", err, "ops.Concat", "no inputs")
	_, err = Concat(x, testGraphNode(g, tensor.Float32, 2, 1, 4, 6))
	wantErr(t, "concat W", err, "ops.Concat", "input 1 has shape (2, 1, 4, 6)", "one N, H and W")
	_, err = Concat(x, testGraphNode(g, tensor.Float32, 3, 1, 4, 5))
	wantErr(t, "concat N", err, "ops.Concat", "input 1")
	_, err = Concat(x, testGraphNode(g, tensor.Float32, 2, 4, 5))
	wantErr(t, "concat 3-D", err, "ops.Concat", "input 1", "want 4-D")
	_, err = GlobalAvgPool(testGraphNode(g, tensor.Float32, 2, 3, 4))
	wantErr(t, "gap 3-D", err, "ops.GlobalAvgPool", "want 4-D")

	r := rand.New(rand.NewSource(49))
	_, err = newAdd().Do(normal(r, 2, 3).f32(), normal(r, 3, 2).f32())
	wantErr(t, "run-time add shapes", err, "Add#", "differ")
	cop := newConcat([]tensor.Shape{{1, 2, 3, 3}, {1, 1, 3, 3}})
	_, err = cop.Do(normal(r, 1, 2, 3, 3).f32(), normal(r, 1, 2, 3, 3).f32())
	wantErr(t, "run-time concat channels", err, "Concat#", "input 1", "want 1 channels")
	_, err = newConcatGrad(cop, 1).Do(normal(r, 1, 4, 3, 3).f32())
	wantErr(t, "run-time concat dY", err, "ConcatGrad1#", "output gradient", "want [N, 3, H, W]")
	gop := &globalPoolGradOp{base: named("GlobalAvgPoolGrad#0"), fwd: newGlobalPool()}
	_, err = gop.Do(normal(r, 2, 3, 4, 4).f32(), normal(r, 2, 3, 2, 1).f32())
	wantErr(t, "run-time gap dY", err, "GlobalAvgPoolGrad#", "output gradient")
}
