package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gemm"
	"qat/internal/graphval"
	"qat/internal/par"
)

// Linear returns y = x·w^T + b, a fully connected layer in PyTorch's
// layout: x is [N, K] (a batch of N rows of K features), w is [O, K] (one
// row per output feature, as torch.nn.Linear.weight), b is [O] or nil for
// no bias, and y is [N, O], row-major. All are float32 nodes of the same
// graph with known shapes; nil x or w, other dtypes or ranks, and
// disagreeing K or O are errors here, at build time. A run checks the
// values' shapes again and returns an error naming the op, never a panic.
//
// The forward pass is one GEMM through qat/internal/gemm (x times w
// transposed, "NT") written over the bias broadcast into every row.
// Gradients are separate op nodes that gorgonia.Grad adds through SymDiff:
// dX = dY·w [N, K] (one NN GEMM, inputs w and dY), dW = dY^T·x [O, K]
// (one TN GEMM, inputs x and dY) and, with a bias, db = the column sums of
// dY [O] (accumulated in float64). Like Conv2d's, dX is built even when x
// is a data input that needs no gradient. Each op node owns its output
// tensor and overwrites it on every run (see Buffers in the package doc);
// inputs are never written.
func Linear(x, w, b *gorgonia.Node) (*gorgonia.Node, error) {
	if err := checkNode(x, "input", 2); err != nil {
		return nil, fmt.Errorf("ops.Linear: %w", err)
	}
	if err := checkNode(w, "weight", 2); err != nil {
		return nil, fmt.Errorf("ops.Linear: %w", err)
	}
	xs, ws := x.Shape(), w.Shape()
	if xs[1] != ws[1] {
		return nil, fmt.Errorf("ops.Linear: input %v has %d features, weight %v has %d (want [O, K] with K = %d)", xs, xs[1], ws, ws[1], xs[1])
	}
	inputs := []*gorgonia.Node{x, w}
	if b != nil {
		if err := checkNode(b, "bias", 1); err != nil {
			return nil, fmt.Errorf("ops.Linear: %w", err)
		}
		if bs := b.Shape(); bs[0] != ws[0] {
			return nil, fmt.Errorf("ops.Linear: bias %v has %d elements, weight %v has %d outputs", bs, bs[0], ws, ws[0])
		}
		inputs = append(inputs, b)
	}
	y, err := gorgonia.ApplyOp(newLinear(b != nil), inputs...)
	if err != nil {
		return nil, fmt.Errorf("ops.Linear: %w", err)
	}
	return y, nil
}

// linearOp is y = x·w^T (+ b): inputs x, w (and b when bias).
type linearOp struct {
	base
	id   uint64
	bias bool
	out  graphval.Buffer
}

func newLinear(bias bool) *linearOp {
	id := graphval.NewID()
	return &linearOp{base: named("Linear#%d", id), id: id, bias: bias}
}

func (op *linearOp) Arity() int {
	if op.bias {
		return 3
	}
	return 2
}

func (op *linearOp) Type() hm.Type {
	if op.bias {
		return hm.NewFnType(graphval.TypeMat, graphval.TypeMat, graphval.TypeVec, graphval.TypeMat)
	}
	return hm.NewFnType(graphval.TypeMat, graphval.TypeMat, graphval.TypeMat)
}

func (op *linearOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	var ss []tensor.Shape
	for i := 0; i < op.Arity(); i++ {
		s, err := graphval.ShapeArg(ds, i)
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	if err := linearShapes(ss); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return tensor.Shape{ss[0][0], ss[1][0]}, nil
}

// linearShapes checks x [N, K], w [O, K] and, when given, b [O].
func linearShapes(ss []tensor.Shape) error {
	xs, ws := ss[0], ss[1]
	if len(xs) != 2 || len(ws) != 2 {
		return fmt.Errorf("input %v and weight %v must be 2-D", xs, ws)
	}
	if xs[1] != ws[1] {
		return fmt.Errorf("input %v has %d features, weight %v has %d", xs, xs[1], ws, ws[1])
	}
	if len(ss) > 2 && (len(ss[2]) != 1 || ss[2][0] != ws[0]) {
		return fmt.Errorf("bias %v, want [%d]", ss[2], ws[0])
	}
	return nil
}

func (op *linearOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	names := [...]string{"input", "weight", "bias"}
	var dataA [3][]float32
	var ssA [3]tensor.Shape
	data, ss := dataA[:len(vals)], ssA[:len(vals)]
	for i, v := range vals {
		var err error
		if data[i], ss[i], err = graphval.ReadFloat32s(op, v, names[i]); err != nil {
			return nil, err
		}
	}
	if err := linearShapes(ss); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	x, w := data[0], data[1]
	n, k, o := ss[0][0], ss[0][1], ss[1][0]
	out, y := op.out.Dense(tensor.Shape{n, o})
	beta := float32(0)
	if op.bias {
		b := data[2]
		for i := 0; i < n; i++ {
			copy(y[i*o:(i+1)*o], b)
		}
		beta = 1
	}
	// y [N, O] = x [N, K] · w^T [K, O] + beta*y
	gemm.SgemmParallel(y, o, false, true, n, o, k, 1, x, k, w, k, beta, par.Threads())
	return out, nil
}

func (op *linearOp) DiffWRT(inputs int) []bool {
	d := make([]bool, op.Arity())
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff returns dX = linearGrad(w, dY), dW = linearGrad(x, dY) and,
// with a bias, db = linearGrad(dY).
func (op *linearOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("%v: %d inputs, want %d", op, len(inputs), op.Arity())
	}
	x, w := inputs[0], inputs[1]
	gx, err := gorgonia.ApplyOp(newLinearGrad(op, linearWrtX), w, grad)
	if err != nil {
		return nil, fmt.Errorf("%v: input gradient: %w", op, err)
	}
	gw, err := gorgonia.ApplyOp(newLinearGrad(op, linearWrtW), x, grad)
	if err != nil {
		return nil, fmt.Errorf("%v: weight gradient: %w", op, err)
	}
	grads := gorgonia.Nodes{gx, gw}
	if op.bias {
		gb, err := gorgonia.ApplyOp(newLinearGrad(op, linearWrtB), grad)
		if err != nil {
			return nil, fmt.Errorf("%v: bias gradient: %w", op, err)
		}
		grads = append(grads, gb)
	}
	return grads, nil
}

var _ gorgonia.SDOp = (*linearOp)(nil)

const (
	linearWrtX = iota // inputs w [O, K], dY [N, O]; output [N, K]
	linearWrtW        // inputs x [N, K], dY [N, O]; output [O, K]
	linearWrtB        // input dY [N, O]; output [O]
)

// linearGradOp is one gradient of a linearOp.
type linearGradOp struct {
	base
	fwd *linearOp
	wrt int
	out graphval.Buffer
	acc []float64
}

func newLinearGrad(fwd *linearOp, wrt int) *linearGradOp {
	name := [...]string{"LinearGradX", "LinearGradW", "LinearGradB"}[wrt]
	return &linearGradOp{base: named("%s#%d", name, fwd.id), fwd: fwd, wrt: wrt}
}

func (op *linearGradOp) Arity() int {
	if op.wrt == linearWrtB {
		return 1
	}
	return 2
}

func (op *linearGradOp) Type() hm.Type {
	if op.wrt == linearWrtB {
		return hm.NewFnType(graphval.TypeMat, graphval.TypeVec)
	}
	return hm.NewFnType(graphval.TypeMat, graphval.TypeMat, graphval.TypeMat)
}

func (op *linearGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	a, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	if len(a) != 2 {
		return nil, fmt.Errorf("%v: input shape %v is not 2-D", op, a)
	}
	if op.wrt == linearWrtB {
		return tensor.Shape{a[1]}, nil
	}
	dy, err := graphval.ShapeArg(ds, 1)
	if err != nil {
		return nil, err
	}
	if len(dy) != 2 {
		return nil, fmt.Errorf("%v: output gradient shape %v is not 2-D", op, dy)
	}
	if op.wrt == linearWrtX {
		return tensor.Shape{dy[0], a[1]}, nil // [N, K]
	}
	return tensor.Shape{dy[1], a[1]}, nil // [O, K]
}

func (op *linearGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	dy, dys, err := graphval.ReadFloat32s(op, vals[len(vals)-1], "output gradient")
	if err != nil {
		return nil, err
	}
	if len(dys) != 2 {
		return nil, fmt.Errorf("%v: output gradient has shape %v, want 2-D", op, dys)
	}
	n, o := dys[0], dys[1]
	if op.wrt == linearWrtB {
		if cap(op.acc) < o {
			op.acc = make([]float64, o)
		}
		acc := op.acc[:o]
		clear(acc)
		for i := 0; i < n; i++ {
			for j, v := range dy[i*o : (i+1)*o] {
				acc[j] += float64(v)
			}
		}
		out, db := op.out.Dense(tensor.Shape{o})
		for j, v := range acc {
			db[j] = float32(v)
		}
		return out, nil
	}
	what := "weight"
	if op.wrt == linearWrtW {
		what = "input"
	}
	a, as, err := graphval.ReadFloat32s(op, vals[0], what)
	if err != nil {
		return nil, err
	}
	if len(as) != 2 {
		return nil, fmt.Errorf("%v: %s has shape %v, want 2-D", op, what, as)
	}
	k := as[1]
	if op.wrt == linearWrtX {
		// a is w [O, K]
		if as[0] != o {
			return nil, fmt.Errorf("%v: weight %v has %d outputs, output gradient %v has %d", op, as, as[0], dys, o)
		}
		out, dx := op.out.Dense(tensor.Shape{n, k})
		// dX [N, K] = dY [N, O] · w [O, K]
		gemm.SgemmParallel(dx, k, false, false, n, k, o, 1, dy, o, a, k, 0, par.Threads())
		return out, nil
	}
	// a is x [N, K]
	if as[0] != n {
		return nil, fmt.Errorf("%v: input %v has %d rows, output gradient %v has %d", op, as, as[0], dys, n)
	}
	out, dw := op.out.Dense(tensor.Shape{o, k})
	// dW [O, K] = dY^T [O, N] · x [N, K]
	gemm.SgemmParallel(dw, k, true, false, o, k, n, 1, dy, o, a, k, 0, par.Threads())
	return out, nil
}

var _ gorgonia.Op = (*linearGradOp)(nil)

// Flatten returns x [N, d1, d2, ...] reshaped to [N, d1*d2*...], the
// row-major order unchanged (PyTorch's flatten(1)); a 2-D x gives an equal
// copy. x is a float32 node of rank 2 or more with a known shape; other
// inputs are errors here.
//
// Flatten is its own op rather than gorgonia.Reshape: gorgonia's reshape
// returns a value sharing x's backing array (and may reshape x's value in
// place), so an in-place gorgonia op after it could overwrite x's value,
// which other ops' gradients (MaxPool2d's, ReLU's) read later in the same
// run. Flatten's Do copies x into its output, and its gradient op copies
// dY into a [N, d1, d2, ...] tensor, each op node owning its output and
// overwriting it on every run; that copy of N*d1*d2*... floats is the only
// cost. A run whose value has another element count is an error.
func Flatten(x *gorgonia.Node) (*gorgonia.Node, error) {
	if err := checkNode(x, "input", -1); err != nil {
		return nil, fmt.Errorf("ops.Flatten: %w", err)
	}
	xs := x.Shape()
	if len(xs) < 2 {
		return nil, fmt.Errorf("ops.Flatten: input %v has shape %v, want [N, ...] of 2 or more dimensions", x, xs)
	}
	y, err := gorgonia.ApplyOp(newFlatten(graphval.NewID(), xs.Clone(), false), x)
	if err != nil {
		return nil, fmt.Errorf("ops.Flatten: %w", err)
	}
	return y, nil
}

// flattenOp copies x into shape [from[0], rest] (forward) or, when grad,
// dY into shape from.
type flattenOp struct {
	base
	id   uint64
	from tensor.Shape
	grad bool
	out  graphval.Buffer
}

// newFlatten returns the forward (grad false) or the gradient of the
// Flatten of id.
func newFlatten(id uint64, from tensor.Shape, grad bool) *flattenOp {
	name := "Flatten"
	if grad {
		name = "FlattenGrad"
	}
	return &flattenOp{base: named("%s#%d", name, id), id: id, from: from, grad: grad}
}

func (op *flattenOp) to() tensor.Shape {
	if op.grad {
		return op.from.Clone()
	}
	return tensor.Shape{op.from[0], op.from.TotalSize() / op.from[0]}
}

func (op *flattenOp) Arity() int { return 1 }
func (op *flattenOp) Type() hm.Type {
	flat := gorgonia.TensorType{Dims: 2, Of: tensor.Float32}
	full := gorgonia.TensorType{Dims: len(op.from), Of: tensor.Float32}
	if op.grad {
		return hm.NewFnType(flat, full)
	}
	return hm.NewFnType(full, flat)
}
func (op *flattenOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	if s.TotalSize() != op.from.TotalSize() {
		return nil, fmt.Errorf("%v: input shape %v, want %d elements", op, s, op.from.TotalSize())
	}
	return op.to(), nil
}

func (op *flattenOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	what := "input"
	if op.grad {
		what = "output gradient"
	}
	x, _, err := graphval.ReadFloat32s(op, vals[0], what)
	if err != nil {
		return nil, err
	}
	if len(x) != op.from.TotalSize() {
		return nil, fmt.Errorf("%v: %s has %d elements, want %d (shape %v)", op, what, len(x), op.from.TotalSize(), op.from)
	}
	out, y := op.out.Dense(op.to())
	copy(y, x)
	return out, nil
}

func (op *flattenOp) DiffWRT(inputs int) []bool { return []bool{true} }

func (op *flattenOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.grad {
		return nil, fmt.Errorf("%v: second derivative not supported", op)
	}
	gx, err := gorgonia.ApplyOp(newFlatten(op.id, op.from, true), grad)
	if err != nil {
		return nil, fmt.Errorf("%v: input gradient: %w", op, err)
	}
	return gorgonia.Nodes{gx}, nil
}

var _ gorgonia.SDOp = (*flattenOp)(nil)
