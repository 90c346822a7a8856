package layers

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
)

// TestThreadsAreExact checks that Conv2d (forward, dX, dW) and Linear
// (forward, dX, dW) give the same bits with 1, 2, 3 and 7 threads, on
// geometries whose batches and products split unevenly (dW's column
// blocks starting inside a channel): padding, stride 2, and a 1×1 kernel
// read in place.
func TestThreadsAreExact(t *testing.T) {
	defer SetThreads(0)
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
	} {
		x, w := randTensor(r, c.n, c.c, c.h, c.h), randTensor(r, c.o, c.c, c.k, c.k)
		g, err := geometry(x.Shape(), w.Shape(), c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		dy := randTensor(r, g.outShape()...)
		cases = append(cases, struct {
			name string
			f    run
		}{fmt.Sprintf("conv %+v", c), func() [][]float32 {
			op := &convOp{id: graphval.NewID(), cfg: c.cfg}
			return doAll(t, []gorgonia.Op{op, &convGradOp{fwd: op}, &convGradOp{fwd: op, wrtW: true}},
				[][]gorgonia.Value{{x, w}, {x, w, dy}, {x, w, dy}})
		}})
	}
	x, w, b, dy := randTensor(r, 130, 300), randTensor(r, 70, 300), randTensor(r, 70), randTensor(r, 130, 70)
	cases = append(cases, struct {
		name string
		f    run
	}{"linear", func() [][]float32 {
		op := &linearOp{id: graphval.NewID(), bias: true}
		return doAll(t, []gorgonia.Op{op, &linearGradOp{fwd: op, wrt: linearWrtX}, &linearGradOp{fwd: op, wrt: linearWrtW}},
			[][]gorgonia.Value{{x, w, b}, {w, dy}, {x, dy}})
	}})
	for _, c := range cases {
		SetThreads(1)
		want := c.f()
		for _, threads := range []int{2, 3, 7} {
			SetThreads(threads)
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
