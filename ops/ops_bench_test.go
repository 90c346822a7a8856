package ops

import (
	"math/rand"
	"testing"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
)

// BenchmarkOps times the non-convolution ops at batch 128 on a
// TapeMachine, forward alone ("fwd") and forward plus every input's
// gradient through gorgonia.Grad ("fwdbwd"). The cost of fwdbwd is
// dotCost(y, r) = sum(y .* r), a test op whose gradient is r*g in one
// pass: gorgonia's Sum and HadamardProd would cost more than most of the
// ops measured (their backward repeats the scalar gradient into a full
// tensor and multiplies through generic code). CrossEntropy is its own
// cost. samples/s is batch size times runs per second.
func BenchmarkOps(b *testing.B) {
	const batch = 128
	r := rand.New(rand.NewSource(1))
	bn, err := NewBatchNorm(16, BatchNormConfig{})
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name  string
		ins   []dense64
		build func(in []*gorgonia.Node) (*gorgonia.Node, error)
	}{
		{"Linear784x256", []dense64{normal(r, batch, 784), normal(r, 256, 784), normal(r, 256)},
			func(in []*gorgonia.Node) (*gorgonia.Node, error) { return Linear(in[0], in[1], in[2]) }},
		{"BatchNorm16x24x24", []dense64{normal(r, batch, 16, 24, 24), normal(r, 16), normal(r, 16)},
			func(in []*gorgonia.Node) (*gorgonia.Node, error) { return bn.Apply(in[0], in[1], in[2]) }},
		{"MaxPool16x24x24k2", []dense64{normal(r, batch, 16, 24, 24)},
			func(in []*gorgonia.Node) (*gorgonia.Node, error) { return MaxPool2d(in[0], 2, 0) }},
		{"ReLU16x24x24", []dense64{normal(r, batch, 16, 24, 24)},
			func(in []*gorgonia.Node) (*gorgonia.Node, error) { return ReLU(in[0]) }},
	}
	for _, c := range cases {
		for _, pass := range []struct {
			name     string
			withGrad bool
		}{{"fwd", false}, {"fwdbwd", true}} {
			b.Run(c.name+"/"+pass.name, func(b *testing.B) {
				og := buildBench(b, pass.withGrad, c.ins, c.build)
				og.run(b)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					og.run(b)
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}

	labels := make([]int, batch)
	for i := range labels {
		labels[i] = r.Intn(10)
	}
	for _, withGrad := range []bool{false, true} {
		name := "CrossEntropy10/fwd"
		if withGrad {
			name = "CrossEntropy10/fwdbwd"
		}
		b.Run(name, func(b *testing.B) {
			var l *CrossEntropy
			og := buildBench(b, withGrad, []dense64{normal(r, batch, 10)}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
				var err error
				if l, err = NewCrossEntropy(in[0]); err != nil {
					return nil, err
				}
				return l.Node(), nil
			})
			l.SetLabels(labels)
			og.run(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.SetLabels(labels)
				og.run(b)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// buildBench is buildOp with dotCost in place of gorgonia's Sum and
// HadamardProd (a scalar y is its own cost).
func buildBench(b *testing.B, withGrad bool, ins []dense64, build func(in []*gorgonia.Node) (*gorgonia.Node, error)) *opGraph {
	b.Helper()
	og := buildOp(b, 0, false, ins, build)
	if withGrad {
		cost := og.y
		if !og.y.IsScalar() {
			rt := normal(rand.New(rand.NewSource(4)), og.y.Shape()...)
			rn := gorgonia.NewTensor(og.g, tensor.Float32, len(rt.shape), gorgonia.WithShape(rt.shape...), gorgonia.WithName("r"), gorgonia.WithValue(rt.f32()))
			var err error
			if cost, err = gorgonia.ApplyOp(newDotCost(graphval.NewID(), false), og.y, rn); err != nil {
				b.Fatal(err)
			}
		}
		var err error
		if og.grads, err = gorgonia.Grad(cost, og.in...); err != nil {
			b.Fatal(err)
		}
		og.vm = gorgonia.NewTapeMachine(og.g)
	}
	return og
}

// dotCost is sum(y .* r) as a float32 scalar; its gradient wrt y is r*g
// (r, the second input, gets none).
type dotCost struct {
	base
	id   uint64
	grad bool // the gradient op: inputs (other factor, g)
}

func newDotCost(id uint64, grad bool) *dotCost {
	return &dotCost{base: named("dotCost(%t)#%d", grad, id), id: id, grad: grad}
}

func (op *dotCost) Arity() int { return 2 }
func (op *dotCost) Type() hm.Type {
	if op.grad {
		return hm.NewFnType(graphval.TypeAny, tensor.Float32, graphval.TypeAny)
	}
	return hm.NewFnType(graphval.TypeAny, graphval.TypeAny, tensor.Float32)
}
func (op *dotCost) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	if op.grad {
		return graphval.ShapeArg(ds, 0)
	}
	return tensor.ScalarShape(), nil
}

func (op *dotCost) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	a, as, err := graphval.ReadFloat32s(op, vals[0], "a")
	if err != nil {
		return nil, err
	}
	if op.grad {
		g, err := readScalar(op, vals[1], "g")
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(a))
		for i, v := range a {
			out[i] = v * g
		}
		return graphval.NewDense(as, out), nil
	}
	r, _, err := graphval.ReadFloat32s(op, vals[1], "r")
	if err != nil {
		return nil, err
	}
	var s [4]float32
	r = r[:len(a)]
	for i, v := range a {
		s[i&3] += v * r[i]
	}
	return gorgonia.NewF32((s[0] + s[1]) + (s[2] + s[3])), nil
}

func (op *dotCost) DiffWRT(int) []bool { return []bool{true, false} }

func (op *dotCost) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	gy, err := gorgonia.ApplyOp(newDotCost(op.id, true), inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return gorgonia.Nodes{gy, nil}, nil
}
