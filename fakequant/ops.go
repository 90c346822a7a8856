package fakequant

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/internal/par"
	"qat/quant"
	"qat/ste"
)

// record is what a forward op leaves for its gradient ops in the same run:
// the mode it ran in and exactly the params, shape and gradient factor it
// used. It belongs to one op node; the gradient ops read it and never write
// it.
type record struct {
	ran        bool
	disabled   bool
	p          quant.Params
	shape      []int
	gradFactor float32
}

func (r *record) check(name string, n int) error {
	if !r.ran {
		return fmt.Errorf("fakequant %s: gradient run before the forward pass", name)
	}
	if m := numElements(r.shape); m != n {
		return fmt.Errorf("fakequant %s: gradient for %d elements, forward saw %d", name, n, m)
	}
	return nil
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// checkNode reports whether x can be the input of a quantizer: a float32
// tensor of at least one dimension with a known shape.
func checkNode(name string, x *gorgonia.Node, what string) error {
	if x == nil {
		return fmt.Errorf("fakequant %s: nil %s node", name, what)
	}
	if dt := x.Dtype(); dt != tensor.Float32 {
		return fmt.Errorf("fakequant %s: %s %v is %v, want float32", name, what, x, dt)
	}
	if x.Dims() < 1 {
		return fmt.Errorf("fakequant %s: %s %v is a scalar, want a tensor", name, what, x)
	}
	if x.Shape().TotalSize() < 1 {
		return fmt.Errorf("fakequant %s: %s %v has unknown or empty shape %v", name, what, x, x.Shape())
	}
	return nil
}

// checkShape reports whether params p fit a tensor of the given shape, as
// quant.LayoutOf would check, but as an error instead of a panic.
func checkShape(p quant.Params, shape []int) error {
	if p.PerTensor() {
		return nil
	}
	if p.Axis >= len(shape) {
		return fmt.Errorf("channel axis %d outside shape %v", p.Axis, shape)
	}
	if shape[p.Axis] != len(p.Scale) {
		return fmt.Errorf("axis %d of shape %v has %d channels, params have %d", p.Axis, shape, shape[p.Axis], len(p.Scale))
	}
	return nil
}

// steOp computes the input gradient of a forward op from its record:
// gradX = gradY where x was in range under the forward's params
// (ste.Clipped), gradY itself where the forward was disabled. Its inputs are
// x, the forward's output y (only so that it runs after the forward) and
// gradY.
type steOp struct {
	name string
	fwd  uint64 // id of the forward op
	rec  *record
	out  graphval.Buffer
}

func (op *steOp) Arity() int { return 3 }
func (op *steOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeAny, graphval.TypeAny, graphval.TypeAny, graphval.TypeAny)
}
func (op *steOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}
func (op *steOp) ReturnsPtr() bool      { return false }
func (op *steOp) CallsExtern() bool     { return false }
func (op *steOp) OverwritesInput() int  { return -1 }
func (op *steOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "fakequant.STEGrad{%q,#%d}", op.name, op.fwd) }
func (op *steOp) Hashcode() uint32      { return graphval.HashOf(op) }
func (op *steOp) String() string        { return fmt.Sprintf("FakeQuantSTEGrad(%s)", op.name) }

func (op *steOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, shape, err := graphval.Float32s(vals[0], "x")
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", op.name, err)
	}
	gy, _, err := graphval.Float32s(vals[2], "gradient")
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", op.name, err)
	}
	if len(gy) != len(x) {
		return nil, fmt.Errorf("fakequant %s: gradient has %d elements, x %d", op.name, len(gy), len(x))
	}
	if err := op.rec.check(op.name, len(x)); err != nil {
		return nil, err
	}
	out, gx := op.out.Dense(shape)
	switch p := op.rec.p; {
	case op.rec.disabled:
		copy(gx, gy)
	case p.PerTensor():
		// Elementwise: split into contiguous ranges across goroutines.
		par.Range(len(x), 1, func(lo, hi int) { ste.Clipped(gx[lo:hi], gy[lo:hi], x[lo:hi], nil, p) })
	default:
		// Per-channel tensors are weights, too small to split.
		ste.Clipped(gx, gy, x, op.rec.shape, p)
	}
	return out, nil
}

var _ gorgonia.Op = (*steOp)(nil)
