package layers

import (
	"fmt"
	"hash"
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
	name := "layers.ReLU"
	if six {
		name = "layers.ReLU6"
	}
	if err := checkNode(x, "input", -1); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	y, err := gorgonia.ApplyOp(&clampOp{id: graphval.NewID(), six: six}, x)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return y, nil
}

// clampOp is ReLU (six false) or ReLU6: input x.
type clampOp struct {
	id  uint64
	six bool
	out graphval.Buffer
}

func (op *clampOp) name() string {
	if op.six {
		return "ReLU6"
	}
	return "ReLU"
}

func (op *clampOp) Arity() int    { return 1 }
func (op *clampOp) Type() hm.Type { return hm.NewFnType(typeAny, typeAny) }
func (op *clampOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return shapeArg(ds, 0)
}
func (op *clampOp) ReturnsPtr() bool      { return false }
func (op *clampOp) CallsExtern() bool     { return false }
func (op *clampOp) OverwritesInput() int  { return -1 }
func (op *clampOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "layers.%s{#%d}", op.name(), op.id) }
func (op *clampOp) Hashcode() uint32      { return graphval.HashOf(op) }
func (op *clampOp) String() string        { return fmt.Sprintf("%s#%d", op.name(), op.id) }

func (op *clampOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := checkArity(op, vals); err != nil {
		return nil, err
	}
	x, shape, err := readF32(op, vals[0], "input")
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
	gx, err := gorgonia.ApplyOp(&clampGradOp{fwd: op}, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("%v: input gradient: %w", op, err)
	}
	return gorgonia.Nodes{gx}, nil
}

var _ gorgonia.SDOp = (*clampOp)(nil)

// clampGradOp is the input gradient of a clampOp: inputs x, dY.
type clampGradOp struct {
	fwd *clampOp
	out graphval.Buffer
}

func (op *clampGradOp) Arity() int    { return 2 }
func (op *clampGradOp) Type() hm.Type { return hm.NewFnType(typeAny, typeAny, typeAny) }
func (op *clampGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return shapeArg(ds, 0)
}
func (op *clampGradOp) ReturnsPtr() bool     { return false }
func (op *clampGradOp) CallsExtern() bool    { return false }
func (op *clampGradOp) OverwritesInput() int { return -1 }
func (op *clampGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "layers.%sGrad{#%d}", op.fwd.name(), op.fwd.id)
}
func (op *clampGradOp) Hashcode() uint32 { return graphval.HashOf(op) }
func (op *clampGradOp) String() string   { return fmt.Sprintf("%sGrad#%d", op.fwd.name(), op.fwd.id) }

func (op *clampGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := checkArity(op, vals); err != nil {
		return nil, err
	}
	x, shape, err := readF32(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	dy, dys, err := readF32(op, vals[1], "output gradient")
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

// Helpers shared by the ops of linear.go, batchnorm.go, pool.go,
// activation.go, channel.go and loss.go.

var (
	// typeAny is any tensor type. Not 'b': gorgonia's type inference
	// reserves 'b' for the return type.
	typeAny = hm.TypeVariable('a')
	typeVec = gorgonia.TensorType{Dims: 1, Of: tensor.Float32}
	typeMat = gorgonia.TensorType{Dims: 2, Of: tensor.Float32}
	typeImg = gorgonia.TensorType{Dims: 4, Of: tensor.Float32}
)

// checkNode reports whether n can be an op input: a float32 tensor node
// of known shape with no empty dimension, of the given rank, or any rank
// of at least 1 when rank < 0.
func checkNode(n *gorgonia.Node, what string, rank int) error {
	if n == nil {
		return fmt.Errorf("nil %s node", what)
	}
	if dt := n.Dtype(); dt != tensor.Float32 {
		return fmt.Errorf("%s %v is %v, want float32", what, n, dt)
	}
	s := n.Shape()
	if rank >= 0 && len(s) != rank {
		return fmt.Errorf("%s %v has shape %v, want %d-D", what, n, s, rank)
	}
	if len(s) == 0 || n.IsScalar() {
		return fmt.Errorf("%s %v is a scalar, want a tensor", what, n)
	}
	for _, d := range s {
		if d < 1 {
			return fmt.Errorf("%s %v has an unknown or empty dimension in shape %v", what, n, s)
		}
	}
	return nil
}

// shapeArg returns a copy of the i-th shape given to InferShape.
func shapeArg(ds []gorgonia.DimSizer, i int) (tensor.Shape, error) {
	if i >= len(ds) {
		return nil, fmt.Errorf("layers: %d shapes, want at least %d", len(ds), i+1)
	}
	s, ok := ds[i].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("layers: input %d has no shape (%T)", i, ds[i])
	}
	return s.Clone(), nil
}

func checkArity(op gorgonia.Op, vals []gorgonia.Value) error {
	if len(vals) != op.Arity() {
		return fmt.Errorf("%v: %d inputs, want %d", op, len(vals), op.Arity())
	}
	return nil
}

// readF32 is graphval.Float32s with errors that name op.
func readF32(op fmt.Stringer, v gorgonia.Value, what string) ([]float32, tensor.Shape, error) {
	d, s, err := graphval.Float32s(v, what)
	if err != nil {
		return nil, nil, fmt.Errorf("%v: %w", op, err)
	}
	return d, s, nil
}

// readScalar returns the one float32 of a scalar value (a gorgonia *F32,
// as gorgonia.Grad seeds the cost's gradient with, or a one-element
// tensor).
func readScalar(op fmt.Stringer, v gorgonia.Value, what string) (float32, error) {
	if v == nil {
		return 0, fmt.Errorf("%v: %s has no value", op, what)
	}
	if dt := v.Dtype(); dt != tensor.Float32 {
		return 0, fmt.Errorf("%v: %s is %v, want float32", op, what, dt)
	}
	switch d := v.Data().(type) {
	case float32:
		return d, nil
	case []float32:
		if v.Shape().TotalSize() == 1 && len(d) >= 1 {
			return d[0], nil
		}
		return 0, fmt.Errorf("%v: %s has shape %v, want a scalar", op, what, v.Shape())
	}
	return 0, fmt.Errorf("%v: %s holds %T, want a float32 scalar", op, what, v.Data())
}

// outerInner splits shape around axis: outer is the product of the
// dimensions before it, inner of those after.
func outerInner(shape tensor.Shape, axis int) (outer, inner int) {
	outer, inner = 1, 1
	for i, d := range shape {
		switch {
		case i < axis:
			outer *= d
		case i > axis:
			inner *= d
		}
	}
	return outer, inner
}
