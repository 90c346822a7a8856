package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/internal/par"
)

// Add returns y = a + b elementwise (float32, as PyTorch's), of their
// shape: a and b are float32 tensor nodes (rank 1 or more) of one known
// shape; a scalar, another dtype or differing shapes are errors here. A
// run checks the values' shapes again and returns an error naming the op.
//
// The gradient of each input is dY itself, the node of the output's
// gradient passed on without an op of its own (as gorgonia's own Add
// does); where an input has other consumers too (a residual block's
// shortcut), gorgonia.Grad adds their gradients to it. The forward op
// node owns its output tensor and overwrites it on every run (see Buffers
// in the package doc); inputs are never written.
func Add(a, b *gorgonia.Node) (*gorgonia.Node, error) {
	if err := checkNode(a, "input", -1); err != nil {
		return nil, fmt.Errorf("ops.Add: %w", err)
	}
	if err := checkNode(b, "input", -1); err != nil {
		return nil, fmt.Errorf("ops.Add: %w", err)
	}
	if !a.Shape().Eq(b.Shape()) {
		return nil, fmt.Errorf("ops.Add: inputs %v and %v have shapes %v and %v, want one shape", a, b, a.Shape(), b.Shape())
	}
	y, err := gorgonia.ApplyOp(newAdd(), a, b)
	if err != nil {
		return nil, fmt.Errorf("ops.Add: %w", err)
	}
	return y, nil
}

// addOp is y = a + b: inputs a, b.
type addOp struct {
	base
	out graphval.Buffer
}

func newAdd() *addOp { return &addOp{base: named("Add#%d", graphval.NewID())} }

func (op *addOp) Arity() int { return 2 }
func (op *addOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeAny, graphval.TypeAny, graphval.TypeAny)
}
func (op *addOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	as, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	bs, err := graphval.ShapeArg(ds, 1)
	if err != nil {
		return nil, err
	}
	if !as.Eq(bs) {
		return nil, fmt.Errorf("%v: input shapes %v and %v differ", op, as, bs)
	}
	return as, nil
}

func (op *addOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	a, as, err := graphval.ReadFloat32s(op, vals[0], "input 0")
	if err != nil {
		return nil, err
	}
	b, bs, err := graphval.ReadFloat32s(op, vals[1], "input 1")
	if err != nil {
		return nil, err
	}
	if !as.Eq(bs) {
		return nil, fmt.Errorf("%v: input shapes %v and %v differ", op, as, bs)
	}
	out, y := op.out.Dense(as)
	// Elementwise: split into contiguous ranges across goroutines.
	par.Range(len(y), 1, func(lo, hi int) {
		y, a, b := y[lo:hi], a[lo:hi], b[lo:hi]
		for i, v := range a {
			y[i] = v + b[i]
		}
	})
	return out, nil
}

func (op *addOp) DiffWRT(inputs int) []bool { return []bool{true, true} }

// SymDiff returns dY for both inputs.
func (op *addOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("%v: %d inputs, want 2", op, len(inputs))
	}
	return gorgonia.Nodes{grad, grad}, nil
}

var _ gorgonia.SDOp = (*addOp)(nil)

// Concat returns its inputs xs[i], [N, C_i, H, W], joined along the
// channel axis (torch.cat(xs, 1)): y is [N, C_0+C_1+..., H, W], each
// sample holding the channels of xs[0], then those of xs[1], and so on.
// The inputs (at least one) are 4-D float32 nodes of known shapes that
// agree in N, H and W; anything else is an error here. A run checks the
// values' shapes again and returns an error naming the op.
//
// The gradient of input i, a separate op node of input dY, is its
// channels of dY, copied. Each op node owns its output tensor and
// overwrites it on every run (see Buffers in the package doc); inputs
// are never written.
func Concat(xs ...*gorgonia.Node) (*gorgonia.Node, error) {
	if len(xs) == 0 {
		return nil, fmt.Errorf("ops.Concat: no inputs")
	}
	shapes := make([]tensor.Shape, len(xs))
	for i, x := range xs {
		if err := checkNode(x, fmt.Sprintf("input %d", i), 4); err != nil {
			return nil, fmt.Errorf("ops.Concat: %w", err)
		}
		shapes[i] = x.Shape()
	}
	if _, err := concatShape(shapes); err != nil {
		return nil, fmt.Errorf("ops.Concat: %w", err)
	}
	op := newConcat(shapes)
	y, err := gorgonia.ApplyOp(op, xs...)
	if err != nil {
		return nil, fmt.Errorf("ops.Concat: %w", err)
	}
	return y, nil
}

// concatShape returns the output shape of a Concat of inputs of the given
// shapes, or an error naming the first that does not fit.
func concatShape(shapes []tensor.Shape) (tensor.Shape, error) {
	out := shapes[0].Clone()
	if len(out) != 4 {
		return nil, fmt.Errorf("input 0 has shape %v, want 4-D [N, C, H, W]", out)
	}
	for i, s := range shapes[1:] {
		if len(s) != 4 || s[0] != out[0] || s[2] != out[2] || s[3] != out[3] {
			return nil, fmt.Errorf("input %d has shape %v, input 0 %v: want [N, C, H, W] of one N, H and W", i+1, s, shapes[0])
		}
		out[1] += s[1]
	}
	return out, nil
}

// concatOp joins its inputs along axis 1: inputs xs, of chans[i]
// channels each.
type concatOp struct {
	base
	id    uint64
	chans []int
	out   graphval.Buffer
}

func newConcat(shapes []tensor.Shape) *concatOp {
	id := graphval.NewID()
	op := &concatOp{base: named("Concat#%d", id), id: id, chans: make([]int, len(shapes))}
	for i, s := range shapes {
		op.chans[i] = s[1]
	}
	return op
}

func (op *concatOp) Arity() int { return len(op.chans) }
func (op *concatOp) Type() hm.Type {
	ts := make([]hm.Type, len(op.chans)+1)
	for i := range ts {
		ts[i] = graphval.TypeImg
	}
	return hm.NewFnType(ts...)
}
func (op *concatOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	shapes := make([]tensor.Shape, len(op.chans))
	for i := range shapes {
		s, err := graphval.ShapeArg(ds, i)
		if err != nil {
			return nil, err
		}
		shapes[i] = s
	}
	if err := op.checkShapes(shapes); err != nil {
		return nil, err
	}
	return concatShape(shapes)
}

// checkShapes reports whether shapes fit op: as many as its inputs, of
// its channel counts, one N, H and W. Errors name op.
func (op *concatOp) checkShapes(shapes []tensor.Shape) error {
	if _, err := concatShape(shapes); err != nil {
		return fmt.Errorf("%v: %w", op, err)
	}
	for i, s := range shapes {
		if s[1] != op.chans[i] {
			return fmt.Errorf("%v: input %d has shape %v, want %d channels", op, i, s, op.chans[i])
		}
	}
	return nil
}

func (op *concatOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	xs := make([][]float32, len(vals))
	shapes := make([]tensor.Shape, len(vals))
	for i, v := range vals {
		var err error
		if xs[i], shapes[i], err = graphval.ReadFloat32s(op, v, fmt.Sprintf("input %d", i)); err != nil {
			return nil, err
		}
	}
	if err := op.checkShapes(shapes); err != nil {
		return nil, err
	}
	ys, _ := concatShape(shapes)
	out, y := op.out.Dense(ys)
	hw := ys[2] * ys[3]
	per := ys[1] * hw // output values per sample
	// Samples are independent: split across goroutines.
	par.Range(ys[0], per, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			at := n * per
			for i, x := range xs {
				m := op.chans[i] * hw
				copy(y[at:at+m], x[n*m:(n+1)*m])
				at += m
			}
		}
	})
	return out, nil
}

func (op *concatOp) DiffWRT(inputs int) []bool {
	d := make([]bool, inputs)
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff returns, for each input, its channels of dY.
func (op *concatOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != len(op.chans) {
		return nil, fmt.Errorf("%v: %d inputs, want %d", op, len(inputs), len(op.chans))
	}
	gs := make(gorgonia.Nodes, len(inputs))
	for i := range inputs {
		var err error
		if gs[i], err = gorgonia.ApplyOp(newConcatGrad(op, i), grad); err != nil {
			return nil, fmt.Errorf("%v: gradient of input %d: %w", op, i, err)
		}
	}
	return gs, nil
}

var _ gorgonia.SDOp = (*concatOp)(nil)

// concatGradOp is the gradient of input i of a concatOp: input dY, output
// the channels of dY that came from input i.
type concatGradOp struct {
	base
	fwd *concatOp
	i   int
	out graphval.Buffer
}

func newConcatGrad(fwd *concatOp, i int) *concatGradOp {
	return &concatGradOp{base: named("ConcatGrad%d#%d", i, fwd.id), fwd: fwd, i: i}
}

func (op *concatGradOp) Arity() int    { return 1 }
func (op *concatGradOp) Type() hm.Type { return hm.NewFnType(graphval.TypeImg, graphval.TypeImg) }
func (op *concatGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	if _, err := op.first(s); err != nil {
		return nil, err
	}
	return tensor.Shape{s[0], op.fwd.chans[op.i], s[2], s[3]}, nil
}

// first checks the output gradient's shape dys and returns the first of
// its channels that came from input i.
func (op *concatGradOp) first(dys tensor.Shape) (int, error) {
	total, first := 0, 0
	for j, c := range op.fwd.chans {
		if j == op.i {
			first = total
		}
		total += c
	}
	if len(dys) != 4 || dys[1] != total {
		return 0, fmt.Errorf("%v: output gradient has shape %v, want [N, %d, H, W]", op, dys, total)
	}
	return first, nil
}

func (op *concatGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	dy, dys, err := graphval.ReadFloat32s(op, vals[0], "output gradient")
	if err != nil {
		return nil, err
	}
	first, err := op.first(dys)
	if err != nil {
		return nil, err
	}
	hw := dys[2] * dys[3]
	m, per := op.fwd.chans[op.i]*hw, dys[1]*hw
	out, dx := op.out.Dense(tensor.Shape{dys[0], op.fwd.chans[op.i], dys[2], dys[3]})
	// Samples are independent: split across goroutines.
	par.Range(dys[0], m, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			copy(dx[n*m:(n+1)*m], dy[n*per+first*hw:])
		}
	})
	return out, nil
}

var _ gorgonia.Op = (*concatGradOp)(nil)
