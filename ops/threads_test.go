package ops

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/par"
)

// TestThreadsAreExact checks that Conv2d (forward, dX, dW) and Linear
// (forward, dX, dW) give the same bits with 1, 2, 3 and 7 threads, on
// geometries whose batches and products split unevenly (dW's column
// blocks starting inside a channel): padding, stride 2, a 1×1 kernel
// read in place, groups (dW's blocks spanning groups) and a depthwise
// 3×3 kernel (the direct loops, split by planes and, for dW, channels).
func TestThreadsAreExact(t *testing.T) {
	defer par.SetThreads(0)
	r := rand.New(rand.NewSource(11))
	type run func() [][]float32
	var cases []struct {
		name string
		f    run
	}
	for _, c := range []struct {
		n, c, h, o, k int
		cfg           ConvConfig
	}{
		{7, 16, 20, 8, 3, ConvConfig{Padding: 1}},
		{9, 8, 33, 16, 5, ConvConfig{Stride: 2, Padding: 2}},
		{7, 100, 16, 32, 1, ConvConfig{}},
		{7, 32, 24, 32, 3, ConvConfig{Padding: 1, Groups: 4}},
		{5, 24, 33, 48, 3, ConvConfig{Stride: 2, Padding: 1, Groups: 4}},
		{9, 24, 19, 24, 3, ConvConfig{Stride: 2, Padding: 1, Groups: 24}},
		{7, 16, 23, 16, 3, ConvConfig{Padding: 1, Groups: 16}},
	} {
		x, w := randTensor(r, c.n, c.c, c.h, c.h), randTensor(r, c.o, c.c/c.cfg.groups(), c.k, c.k)
		g, err := geometry(x.Shape(), w.Shape(), c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		dy := randTensor(r, g.outShape()...)
		cases = append(cases, struct {
			name string
			f    run
		}{fmt.Sprintf("conv %+v", c), func() [][]float32 {
			op := newConv(c.cfg)
			return doAll(t, []gorgonia.Op{op, newConvGrad(op, false), newConvGrad(op, true)},
				[][]gorgonia.Value{{x, w}, {x, w, dy}, {x, w, dy}})
		}})
	}
	x, w, b, dy := randTensor(r, 130, 300), randTensor(r, 70, 300), randTensor(r, 70), randTensor(r, 130, 70)
	cases = append(cases, struct {
		name string
		f    run
	}{"linear", func() [][]float32 {
		op := newLinear(true)
		return doAll(t, []gorgonia.Op{op, newLinearGrad(op, linearWrtX), newLinearGrad(op, linearWrtW)},
			[][]gorgonia.Value{{x, w, b}, {w, dy}, {x, dy}})
	}})
	for _, c := range cases {
		par.SetThreads(1)
		want := c.f()
		for _, threads := range []int{2, 3, 7} {
			par.SetThreads(threads)
			for i, got := range c.f() {
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[i][j]) {
						t.Fatalf("%s, output %d, threads %d: [%d] = %v, one thread %v", c.name, i, threads, j, got[j], want[i][j])
					}
				}
			}
		}
	}
}

// doAll runs each op on its inputs and returns copies of the outputs.
func doAll(t *testing.T, ops []gorgonia.Op, inputs [][]gorgonia.Value) [][]float32 {
	t.Helper()
	var outs [][]float32
	for i, op := range ops {
		v, err := op.Do(inputs[i]...)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, append([]float32(nil), v.(*tensor.Dense).Float32s()...))
	}
	return outs
}

// TestTrainingOpsThreadsAreExact checks that the ops split by par.Range
// (the per-channel scaling ops and their gradients, BatchNorm in training
// and evaluation mode with its running statistics, ReLU and ReLU6, max
// pooling with and without padding, average and global average pooling,
// Add and Concat, each with its gradients) give the same bits with
// 1, 2, 3 and 7 threads. The input [9, 7, 61, 63] is large enough to be
// split seven ways, by elements, planes and channels alike, and its
// channels and planes split unevenly.
func TestTrainingOpsThreadsAreExact(t *testing.T) {
	defer par.SetThreads(0)
	shape := []int{9, 7, 61, 63}
	r := rand.New(rand.NewSource(12))
	x, s := normal(r, shape...), normal(r, shape[1])
	for i := range x.data {
		// Values on both sides of ReLU6's kinks at 0 and 6.
		x.data[i] = float64(float32(x.data[i]*4 + 1))
	}
	w := dense64{shape: []int{7, 9, 61, 63}, data: x.data} // channels on axis 0
	one := func(f func(x *gorgonia.Node) (*gorgonia.Node, error)) func(*BatchNorm, []*gorgonia.Node) (*gorgonia.Node, error) {
		return func(_ *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error) { return f(in[0]) }
	}
	cases := []struct {
		name  string
		ins   []dense64
		train bool // BatchNorm mode, for the BatchNorm cases
		build func(bn *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error)
	}{
		{"ChannelMul", []dense64{x, s}, false, func(_ *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error) { return ChannelMul(in[0], in[1], 1) }},
		{"ChannelMul axis 0", []dense64{w, s}, false, func(_ *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error) { return ChannelMul(in[0], in[1], 0) }},
		{"ChannelDiv", []dense64{x, s}, false, func(_ *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error) { return ChannelDiv(in[0], in[1], 1) }},
		{"AddChannelBias", []dense64{x, s}, false, func(_ *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error) { return AddChannelBias(in[0], in[1]) }},
		{"BatchNorm train", []dense64{x, s, s}, true, func(bn *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error) { return bn.Apply(in[0], in[1], in[2]) }},
		{"BatchNorm eval", []dense64{x, s, s}, false, func(bn *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error) { return bn.Apply(in[0], in[1], in[2]) }},
		{"ReLU", []dense64{x}, false, one(ReLU)},
		{"ReLU6", []dense64{x}, false, one(ReLU6)},
		{"MaxPool2d 2", []dense64{x}, false, one(func(x *gorgonia.Node) (*gorgonia.Node, error) { return MaxPool2d(x, 2, 2) })},
		{"MaxPool2d 3/2", []dense64{x}, false, one(func(x *gorgonia.Node) (*gorgonia.Node, error) { return MaxPool2d(x, 3, 2) })},
		{"AvgPool2d 3/2", []dense64{x}, false, one(func(x *gorgonia.Node) (*gorgonia.Node, error) { return AvgPool2d(x, 3, 2) })},
		{"MaxPool2dPadded 3/2/1", []dense64{x}, false, one(func(x *gorgonia.Node) (*gorgonia.Node, error) { return MaxPool2dPadded(x, 3, 2, 1) })},
		{"GlobalAvgPool", []dense64{x}, false, one(GlobalAvgPool)},
		{"Add", []dense64{x, x}, false, func(_ *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error) { return Add(in[0], in[1]) }},
		{"Concat", []dense64{x, x}, false, func(_ *BatchNorm, in []*gorgonia.Node) (*gorgonia.Node, error) { return Concat(in[0], in[1]) }},
	}
	// run returns the op's output, its inputs' gradients and the running
	// statistics of its BatchNorm after two runs.
	run := func(threads int, i int) [][]float32 {
		par.SetThreads(threads)
		c := cases[i]
		bn, err := NewBatchNorm(shape[1], BatchNormConfig{})
		if err != nil {
			t.Fatal(err)
		}
		bn.Training = c.train
		og := buildOp(t, 13, true, c.ins, func(in []*gorgonia.Node) (*gorgonia.Node, error) { return c.build(bn, in) })
		og.run(t)
		og.run(t)
		outs := [][]float32{f32Of(t, og.y), bn.RunningMean, bn.RunningVar}
		for _, g := range og.grads {
			outs = append(outs, f32Of(t, g))
		}
		return outs
	}
	for i, c := range cases {
		want := run(1, i)
		for _, threads := range []int{2, 3, 7} {
			for j, got := range run(threads, i) {
				for k := range got {
					if math.Float32bits(got[k]) != math.Float32bits(want[j][k]) {
						t.Fatalf("%s, output %d, threads %d: [%d] = %v, one thread %v", c.name, j, threads, k, got[k], want[j][k])
					}
				}
			}
		}
	}
}
