package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/internal/par"
)

// GlobalAvgPool returns the mean of each [H, W] plane of x [N, C, H, W]
// (float32, known shape): y is [N, C, 1, 1], PyTorch's
// adaptive_avg_pool2d(x, 1). Each plane is summed in float64 in row-major
// order, the sum multiplied by 1/(H*W) in float64 and rounded once to
// float32: AvgPool2d's arithmetic, so that on a square plane it equals
// AvgPool2d(x, H, 0) bit for bit. Inputs that are not 4-D float32 are
// errors here; a run checks the value's shape again and returns an error
// naming the op.
//
// The gradient op takes x (for its shape) and dY and writes
// dY/(H*W), divided in float32, to every element of the plane. Each op
// node owns its output tensor and overwrites it on every run (see Buffers
// in the package doc); inputs are never written.
func GlobalAvgPool(x *gorgonia.Node) (*gorgonia.Node, error) {
	if err := checkNode(x, "input", 4); err != nil {
		return nil, fmt.Errorf("ops.GlobalAvgPool: %w", err)
	}
	y, err := gorgonia.ApplyOp(newGlobalPool(), x)
	if err != nil {
		return nil, fmt.Errorf("ops.GlobalAvgPool: %w", err)
	}
	return y, nil
}

// globalPoolOp is GlobalAvgPool: input x.
type globalPoolOp struct {
	base
	id  uint64
	out graphval.Buffer
}

func newGlobalPool() *globalPoolOp {
	id := graphval.NewID()
	return &globalPoolOp{base: named("GlobalAvgPool#%d", id), id: id}
}

func (op *globalPoolOp) Arity() int    { return 1 }
func (op *globalPoolOp) Type() hm.Type { return hm.NewFnType(graphval.TypeImg, graphval.TypeImg) }
func (op *globalPoolOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	xs, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	if len(xs) != 4 {
		return nil, fmt.Errorf("%v: input shape %v is %d-D, want 4-D [N, C, H, W]", op, xs, len(xs))
	}
	return tensor.Shape{xs[0], xs[1], 1, 1}, nil
}

// readInput reads vals[0], a 4-D input, for op or its gradient who.
func (op *globalPoolOp) readInput(who fmt.Stringer, v gorgonia.Value) ([]float32, tensor.Shape, error) {
	x, xs, err := graphval.ReadFloat32s(who, v, "input")
	if err != nil {
		return nil, nil, err
	}
	if len(xs) != 4 {
		return nil, nil, fmt.Errorf("%v: input shape %v is %d-D, want 4-D [N, C, H, W]", who, xs, len(xs))
	}
	return x, xs, nil
}

func (op *globalPoolOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, xs, err := op.readInput(op, vals[0])
	if err != nil {
		return nil, err
	}
	out, y := op.out.Dense(tensor.Shape{xs[0], xs[1], 1, 1})
	plane := xs[2] * xs[3]
	inv := 1 / float64(plane)
	// Planes are independent: split across goroutines.
	par.Range(len(y), plane, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			var s float64
			for _, v := range x[p*plane : (p+1)*plane] {
				s += float64(v)
			}
			y[p] = float32(s * inv)
		}
	})
	return out, nil
}

func (op *globalPoolOp) DiffWRT(inputs int) []bool { return []bool{true} }

func (op *globalPoolOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%v: %d inputs, want 1", op, len(inputs))
	}
	gx, err := gorgonia.ApplyOp(&globalPoolGradOp{base: named("GlobalAvgPoolGrad#%d", op.id), fwd: op}, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("%v: input gradient: %w", op, err)
	}
	return gorgonia.Nodes{gx}, nil
}

var _ gorgonia.SDOp = (*globalPoolOp)(nil)

// globalPoolGradOp is the input gradient of a globalPoolOp: inputs x, dY.
type globalPoolGradOp struct {
	base
	fwd *globalPoolOp
	out graphval.Buffer
}

func (op *globalPoolGradOp) Arity() int { return 2 }
func (op *globalPoolGradOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeImg, graphval.TypeImg, graphval.TypeImg)
}
func (op *globalPoolGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}

func (op *globalPoolGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	_, xs, err := op.fwd.readInput(op, vals[0])
	if err != nil {
		return nil, err
	}
	dy, dys, err := graphval.ReadFloat32s(op, vals[1], "output gradient")
	if err != nil {
		return nil, err
	}
	if want := (tensor.Shape{xs[0], xs[1], 1, 1}); !dys.Eq(want) {
		return nil, fmt.Errorf("%v: output gradient has shape %v, want %v", op, dys, want)
	}
	out, dx := op.out.Dense(xs)
	plane := xs[2] * xs[3]
	div := float32(plane)
	// Planes are independent: split across goroutines.
	par.Range(len(dy), plane, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			d := dy[p] / div
			dxp := dx[p*plane : (p+1)*plane]
			for i := range dxp {
				dxp[i] = d
			}
		}
	})
	return out, nil
}

var _ gorgonia.Op = (*globalPoolGradOp)(nil)
