package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/internal/par"
)

// ReLU returns y = max(x, 0) elementwise, of x's shape. x is a float32
// tensor node (rank 1 or more; a scalar node is an error) of known shape.
//
// NaN stays NaN, as in PyTorch. The gradient, computed by a separate op
// node from x and dY, is dX = dY where x > 0 and 0 elsewhere, so 0 at the
// kink x = 0 and at NaN (PyTorch's threshold_backward). Each op node
// (forward, gradient) owns its output tensor and overwrites it on every
// run (see Buffers in the package doc); inputs are never written. Shape
// and dtype errors are reported here; a run whose values are not float32
// or disagree in size returns an error naming the op.
func ReLU(x *gorgonia.Node) (*gorgonia.Node, error) {
	return applyClamp(x, false)
}

// ReLU6 returns y = min(max(x, 0), 6) elementwise (PyTorch's ReLU6,
// hardtanh(x, 0, 6)), of x's shape; x as for ReLU. NaN stays NaN. The
// gradient op computes dX = dY where 0 < x < 6 and 0 elsewhere, including
// at exactly 0 and 6 (PyTorch's hardtanh_backward). Buffers and errors as
// for ReLU.
func ReLU6(x *gorgonia.Node) (*gorgonia.Node, error) {
	return applyClamp(x, true)
}

func applyClamp(x *gorgonia.Node, six bool) (*gorgonia.Node, error) {
	if err := checkNode(x, "input", -1); err != nil {
		return nil, fmt.Errorf("ops.%s: %w", clampName(six), err)
	}
	y, err := gorgonia.ApplyOp(newClamp(six), x)
	if err != nil {
		return nil, fmt.Errorf("ops.%s: %w", clampName(six), err)
	}
	return y, nil
}

func clampName(six bool) string {
	if six {
		return "ReLU6"
	}
	return "ReLU"
}

// clampOp is ReLU (six false) or ReLU6: input x.
type clampOp struct {
	base
	id  uint64
	six bool
	out graphval.Buffer
}

func newClamp(six bool) *clampOp {
	id := graphval.NewID()
	return &clampOp{base: named("%s#%d", clampName(six), id), id: id, six: six}
}

func (op *clampOp) Arity() int    { return 1 }
func (op *clampOp) Type() hm.Type { return hm.NewFnType(graphval.TypeAny, graphval.TypeAny) }
func (op *clampOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}

func (op *clampOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, shape, err := graphval.ReadFloat32s(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	// Go's min and max return NaN when an operand is NaN, and compile
	// without branches (a branch per element mispredicts half the time on
	// zero-centred data).
	// Elementwise: split into contiguous ranges across goroutines.
	out, y := op.out.Dense(shape)
	y = y[:len(x)]
	par.Range(len(x), 1, func(lo, hi int) {
		x, y := x[lo:hi], y[lo:hi]
		if op.six {
			for i, v := range x {
				y[i] = min(max(v, 0), 6)
			}
		} else {
			for i, v := range x {
				y[i] = max(v, 0)
			}
		}
	})
	return out, nil
}

func (op *clampOp) DiffWRT(inputs int) []bool { return []bool{true} }

func (op *clampOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%v: %d inputs, want 1", op, len(inputs))
	}
	gx, err := gorgonia.ApplyOp(newClampGrad(op), inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("%v: input gradient: %w", op, err)
	}
	return gorgonia.Nodes{gx}, nil
}

var _ gorgonia.SDOp = (*clampOp)(nil)

// clampGradOp is the input gradient of a clampOp: inputs x, dY.
type clampGradOp struct {
	base
	fwd *clampOp
	out graphval.Buffer
}

func newClampGrad(fwd *clampOp) *clampGradOp {
	return &clampGradOp{base: named("%sGrad#%d", clampName(fwd.six), fwd.id), fwd: fwd}
}

func (op *clampGradOp) Arity() int { return 2 }
func (op *clampGradOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeAny, graphval.TypeAny, graphval.TypeAny)
}
func (op *clampGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}

func (op *clampGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, shape, err := graphval.ReadFloat32s(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	dy, dys, err := graphval.ReadFloat32s(op, vals[1], "output gradient")
	if err != nil {
		return nil, err
	}
	if !dys.Eq(shape) {
		return nil, fmt.Errorf("%v: output gradient has shape %v, input %v", op, dys, shape)
	}
	// dx = dy & mask, the mask all ones where the gradient passes: written
	// so that the compiler emits conditional moves, not branches.
	// Elementwise: split into contiguous ranges across goroutines.
	out, dx := op.out.Dense(shape)
	dx = dx[:len(x)]
	dy = dy[:len(x)]
	par.Range(len(x), 1, func(lo, hi int) {
		if op.fwd.six {
			relu6Grad(dx[lo:hi], dy[lo:hi], x[lo:hi])
		} else {
			reluGrad(dx[lo:hi], dy[lo:hi], x[lo:hi])
		}
	})
	return out, nil
}

// relu6Grad writes dx = dy where 0 < x < 6, else +0 (NaN x included),
// with len(dy) and len(x) at least len(dx).
func relu6Grad(dx, dy, x []float32) {
	dy, x = dy[:len(dx)], x[:len(dx)]
	for i, v := range x {
		var lo, up uint32
		if v > 0 {
			lo = math.MaxUint32
		}
		if v < 6 {
			up = math.MaxUint32
		}
		dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & lo & up)
	}
}

// reluGrad writes dx = dy where x > 0, else +0 (NaN x included), with
// len(dy) and len(x) at least len(dx), as the ReLU6 loop does with one
// mask less.
func reluGrad(dx, dy, x []float32) {
	dy, x = dy[:len(dx)], x[:len(dx)]
	for i, v := range x {
		var m uint32
		if v > 0 {
			m = math.MaxUint32
		}
		dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & m)
	}
}

var _ gorgonia.Op = (*clampGradOp)(nil)
