package layers

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/model"
	"qat/quant"
)

// Exact computes, in an exact Eval graph of a quantized model
// (NewExactGraph), its quantized layers the way the exported int8 model
// does, not in float, so that the accuracy the graph reports is the
// exported model's bit for bit. Package deploy implements it (deploy.Exact):
// layers knows nothing of the int8 form. Other graphs keep the float
// fake-quant simulation, which differs from it only by float rounding (the
// order of the sums, the rounding of the bias to its int32 grid and of the
// multiplier).
type Exact interface {
	// Weighted computes the quantized conv or linear node n of m, whose
	// per-sample input shape is in, on x: [batch, in...] values on the
	// grid of the input quantizer's params inQ. It writes the node's
	// output values (after its output quantizer) into y, [batch, out...].
	Weighted(m *Model, n model.Node, in []int, inQ quant.Params, x, y []float32) error
	// AvgPool computes the avgpool or global_avgpool node n on x, [N, C,
	// H, W] of shape xs with values on the grid of inQ, into y, on the
	// same grid.
	AvgPool(n model.Node, inQ quant.Params, x []float32, xs [4]int, y []float32) error
	// Join computes the add or concat node n on its inputs xs[i], [batch,
	// C_i, H, W] (any per-sample shape for add) with values on the grids
	// of inQ[i], into y, [batch, ...], after n's activation, on the grid
	// of its output quantizer's params outQ.
	Join(n model.Node, inQ []quant.Params, outQ quant.Params, xs [][]float32, batch int, y []float32) error
}

// exactable reports whether the conv or linear layer l can run exactly:
// it has both quantizers and any BN before it is folded.
func (m *Model) exactable(l model.Node) bool {
	return m.Quantizer(l.Name+".weight_fake_quant") != nil && m.Quantizer(l.Name+".activation_post_process") != nil &&
		(l.BN == "" || m.Folded())
}

// exactLayerOp runs a quantized conv or linear layer through the int8
// runtime: input x, values on the grid of quantizer in.
type exactLayerOp struct {
	id       uint64
	m        *Model
	l        model.Node
	in       *Quantizer
	inShape  []int // per sample
	outShape tensor.Shape
	exact    Exact
	out      graphval.Buffer
}

func (gr *Graph) exactLayer(l model.Node, x *gorgonia.Node, in *Quantizer, inShape, outShape []int) (*gorgonia.Node, error) {
	op := &exactLayerOp{id: graphval.NewID(), m: gr.model, l: l, in: in, inShape: inShape, exact: gr.exact,
		outShape: append(tensor.Shape{gr.batch}, outShape...)}
	y, err := gorgonia.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("exact %s %s: %w", l.Op, l.Name, err)
	}
	return y, nil
}

func (op *exactLayerOp) Arity() int { return 1 }
func (op *exactLayerOp) Type() hm.Type {
	t := gorgonia.TensorType{Dims: len(op.outShape), Of: tensor.Float32}
	return hm.NewFnType(gorgonia.TensorType{Dims: len(op.inShape) + 1, Of: tensor.Float32}, t)
}
func (op *exactLayerOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.outShape.Clone(), nil
}
func (op *exactLayerOp) ReturnsPtr() bool     { return false }
func (op *exactLayerOp) CallsExtern() bool    { return false }
func (op *exactLayerOp) OverwritesInput() int { return -1 }
func (op *exactLayerOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "layers.Exact{%s,#%d}", op.l.Name, op.id)
}
func (op *exactLayerOp) Hashcode() uint32 { return graphval.HashOf(op) }
func (op *exactLayerOp) String() string   { return fmt.Sprintf("Exact(%s)#%d", op.l.Name, op.id) }

func (op *exactLayerOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, _, err := graphval.ReadFloat32s(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	p, ok := op.in.Params()
	if !ok {
		return nil, fmt.Errorf("%v: quantizer %s has no params", op, op.in.Name)
	}
	out, y := op.out.Dense(op.outShape)
	if err := op.exact.Weighted(op.m, op.l, op.inShape, p, x, y); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return out, nil
}

var _ gorgonia.Op = (*exactLayerOp)(nil)

// exactAvgPoolOp is AvgPool2d or GlobalAvgPool, node n, on the codes of
// quantizer in: input x.
type exactAvgPoolOp struct {
	id       uint64
	in       *Quantizer
	n        model.Node
	outShape tensor.Shape
	exact    Exact
	out      graphval.Buffer
}

func (gr *Graph) exactAvgPool(x *gorgonia.Node, in *Quantizer, n model.Node) (*gorgonia.Node, error) {
	xs := x.Shape()
	op := &exactAvgPoolOp{id: graphval.NewID(), in: in, n: n, exact: gr.exact}
	if len(xs) != 4 {
		return nil, fmt.Errorf("exact %s: input %v, want [N, C, H, W]", n.Op, xs)
	}
	op.outShape = tensor.Shape{xs[0], xs[1], 1, 1}
	if n.Op == model.OpAvgPool {
		k, stride := n.Kernel, n.EffectiveStride()
		if k < 1 || stride < 1 || xs[2] < k || xs[3] < k {
			return nil, fmt.Errorf("exact AvgPool2d: input %v, kernel %d, stride %d", xs, k, stride)
		}
		op.outShape = tensor.Shape{xs[0], xs[1], (xs[2]-k)/stride + 1, (xs[3]-k)/stride + 1}
	}
	return gorgonia.ApplyOp(op, x)
}

func (op *exactAvgPoolOp) Arity() int    { return 1 }
func (op *exactAvgPoolOp) Type() hm.Type { return hm.NewFnType(graphval.TypeImg, graphval.TypeImg) }
func (op *exactAvgPoolOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.outShape.Clone(), nil
}
func (op *exactAvgPoolOp) ReturnsPtr() bool      { return false }
func (op *exactAvgPoolOp) CallsExtern() bool     { return false }
func (op *exactAvgPoolOp) OverwritesInput() int  { return -1 }
func (op *exactAvgPoolOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "layers.%v", op) }
func (op *exactAvgPoolOp) Hashcode() uint32      { return graphval.HashOf(op) }
func (op *exactAvgPoolOp) String() string {
	if op.n.Op == model.OpGlobalAvgPool {
		return fmt.Sprintf("ExactGlobalAvgPool#%d", op.id)
	}
	return fmt.Sprintf("ExactAvgPool2d(k=%d,s=%d)#%d", op.n.Kernel, op.n.EffectiveStride(), op.id)
}

func (op *exactAvgPoolOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, xs, err := graphval.ReadFloat32s(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	p, ok := op.in.Params()
	if !ok {
		return nil, fmt.Errorf("%v: quantizer %s has no params", op, op.in.Name)
	}
	out, y := op.out.Dense(op.outShape)
	if err := op.exact.AvgPool(op.n, p, x, [4]int(xs), y); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return out, nil
}

var _ gorgonia.Op = (*exactAvgPoolOp)(nil)

// exactJoinOp runs an add or concat node n through the Exact: inputs xs,
// the values of input i on the grid of quantizer in[i]; output on the
// grid of n's output quantizer outQ.
type exactJoinOp struct {
	id       uint64
	n        model.Node
	in       []*Quantizer
	outQ     *Quantizer
	inDims   []int // rank of each input, batch included
	outShape tensor.Shape
	exact    Exact
	out      graphval.Buffer
}

func (gr *Graph) exactJoin(n model.Node, in []nodeInput, outQ *Quantizer, outShape []int) (*gorgonia.Node, error) {
	op := &exactJoinOp{id: graphval.NewID(), n: n, outQ: outQ, exact: gr.exact,
		outShape: append(tensor.Shape{gr.batch}, outShape...)}
	xs := make([]*gorgonia.Node, len(in))
	for i, x := range in {
		xs[i] = x.x
		op.in = append(op.in, x.grid)
		op.inDims = append(op.inDims, len(x.shape)+1)
	}
	y, err := gorgonia.ApplyOp(op, xs...)
	if err != nil {
		return nil, fmt.Errorf("exact %s %s: %w", n.Op, n.Name, err)
	}
	return y, nil
}

func (op *exactJoinOp) Arity() int { return len(op.in) }
func (op *exactJoinOp) Type() hm.Type {
	ts := make([]hm.Type, 0, len(op.in)+1)
	for _, d := range op.inDims {
		ts = append(ts, gorgonia.TensorType{Dims: d, Of: tensor.Float32})
	}
	return hm.NewFnType(append(ts, gorgonia.TensorType{Dims: len(op.outShape), Of: tensor.Float32})...)
}
func (op *exactJoinOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.outShape.Clone(), nil
}
func (op *exactJoinOp) ReturnsPtr() bool     { return false }
func (op *exactJoinOp) CallsExtern() bool    { return false }
func (op *exactJoinOp) OverwritesInput() int { return -1 }
func (op *exactJoinOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "layers.ExactJoin{%s,#%d}", op.n.Name, op.id)
}
func (op *exactJoinOp) Hashcode() uint32 { return graphval.HashOf(op) }
func (op *exactJoinOp) String() string   { return fmt.Sprintf("ExactJoin(%s)#%d", op.n.Name, op.id) }

func (op *exactJoinOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	xs := make([][]float32, len(vals))
	inQ := make([]quant.Params, len(vals))
	for i, v := range vals {
		var err error
		if xs[i], _, err = graphval.ReadFloat32s(op, v, fmt.Sprintf("input %d", i)); err != nil {
			return nil, err
		}
		var ok bool
		if inQ[i], ok = op.in[i].Params(); !ok {
			return nil, fmt.Errorf("%v: quantizer %s has no params", op, op.in[i].Name)
		}
	}
	outQ, ok := op.outQ.Params()
	if !ok {
		return nil, fmt.Errorf("%v: quantizer %s has no params", op, op.outQ.Name)
	}
	out, y := op.out.Dense(op.outShape)
	if err := op.exact.Join(op.n, inQ, outQ, xs, op.outShape[0], y); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return out, nil
}

var _ gorgonia.Op = (*exactJoinOp)(nil)
