package layers

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/export"
	"qat/infer"
	"qat/internal/graphval"
	"qat/qmodel"
	"qat/quant"
)

// Exact evaluation.
//
// An Eval graph of a quantized model computes each quantized conv or
// linear layer whose input is on a quantizer's grid the way the exported
// int8 model does, not in float: it freezes the layer with
// export.FreezeLayer (folded BN, weight codes, int32 bias, float32
// requantization multiplier) and runs it with the int8 runtime's
// infer.Layer on the input codes (the batch split across Threads()
// goroutines, which changes nothing), so the codes it outputs, and hence
// the accuracy it reports, are those of the exported model bit for bit. An
// AvgPool on a grid likewise averages codes with the runtime's rounding.
// Training and calibration graphs keep the float fake-quant simulation,
// which differs from this only by float rounding (the order of the sums,
// the rounding of the bias to its int32 grid and of the multiplier).

// exactEval switches exact evaluation on; a test switches it off to
// measure the float simulation against it.
var exactEval = true

// codes quantizes grid values x into dst with q's uint8-domain params.
// Values on the grid come back to their own codes exactly.
func codes(dst []uint8, x []float32, q qmodel.Quant) {
	inv := 1 / q.Scale
	for i, v := range x {
		c, _ := quant.Code(v, inv, q.ZeroPoint, q.QMin, q.QMax)
		dst[i] = uint8(c)
	}
}

// values writes the real values of codes src, as FakeQuantize does.
func values(dst []float32, src []uint8, q qmodel.Quant) {
	for i, c := range src {
		dst[i] = float32(int32(c)-q.ZeroPoint) * q.Scale
	}
}

// exactable reports whether the conv or linear layer l can run exactly:
// it has both quantizers and any BN before it is folded.
func (m *Model) exactable(l LayerSpec) bool {
	return m.Quantizer(l.Name+".weight_fake_quant") != nil && m.Quantizer(l.Name+".activation_post_process") != nil &&
		(l.BN == "" || m.Folded())
}

// exactLayerOp runs a quantized conv or linear layer through the int8
// runtime: input x, values on the grid of quantizer in.
type exactLayerOp struct {
	id       uint64
	m        *Model
	l        LayerSpec
	in       *Quantizer
	inShape  []int // per sample
	outShape tensor.Shape
	xc, yc   []uint8
	out      graphval.Buffer
}

func (gr *Graph) exactLayer(l LayerSpec, x *gorgonia.Node, in *Quantizer, inShape, outShape []int) (*gorgonia.Node, error) {
	op := &exactLayerOp{id: graphval.NewID(), m: gr.model, l: l, in: in, inShape: inShape,
		outShape: append(tensor.Shape{gr.batch}, outShape...)}
	y, err := gorgonia.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("exact %s %s: %w", l.Type, l.Name, err)
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
	if err := checkArity(op, vals); err != nil {
		return nil, err
	}
	x, _, err := readF32(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	el, err := op.m.exportLayer(op.l, op.inShape)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	p, ok := op.in.Params()
	if !ok {
		return nil, fmt.Errorf("%v: quantizer %s has no params", op, op.in.Name)
	}
	inQ, err := export.ActQuant(p)
	if err != nil {
		return nil, fmt.Errorf("%v: input quantizer %s: %w", op, op.in.Name, err)
	}
	frozen, err := export.FreezeLayer(el, inQ, qmodel.RequantFloat)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	il, err := infer.NewLayer(&frozen, op.inShape, inQ, qmodel.RequantFloat)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	out, y := op.out.Dense(op.outShape)
	op.xc, op.yc = growCodes(op.xc, len(x)), growCodes(op.yc, len(y))
	codes(op.xc, x, inQ)
	il.RunParallel(op.yc, op.xc, op.outShape[0], Threads())
	values(y, op.yc, frozen.Output)
	return out, nil
}

var _ gorgonia.Op = (*exactLayerOp)(nil)

// exactAvgPoolOp is AvgPool2d on the codes of quantizer in: input x.
type exactAvgPoolOp struct {
	id       uint64
	in       *Quantizer
	k, s     int
	outShape tensor.Shape
	xc, yc   []uint8
	out      graphval.Buffer
}

func (gr *Graph) exactAvgPool(x *gorgonia.Node, in *Quantizer, k, stride int) (*gorgonia.Node, error) {
	xs := x.Shape()
	if len(xs) != 4 || k < 1 || stride < 1 || xs[2] < k || xs[3] < k {
		return nil, fmt.Errorf("exact AvgPool2d: input %v, kernel %d, stride %d", xs, k, stride)
	}
	op := &exactAvgPoolOp{id: graphval.NewID(), in: in, k: k, s: stride,
		outShape: tensor.Shape{xs[0], xs[1], (xs[2]-k)/stride + 1, (xs[3]-k)/stride + 1}}
	return gorgonia.ApplyOp(op, x)
}

func (op *exactAvgPoolOp) Arity() int    { return 1 }
func (op *exactAvgPoolOp) Type() hm.Type { return hm.NewFnType(typeImg, typeImg) }
func (op *exactAvgPoolOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return op.outShape.Clone(), nil
}
func (op *exactAvgPoolOp) ReturnsPtr() bool     { return false }
func (op *exactAvgPoolOp) CallsExtern() bool    { return false }
func (op *exactAvgPoolOp) OverwritesInput() int { return -1 }
func (op *exactAvgPoolOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "layers.ExactAvgPool2d{k=%d,s=%d,#%d}", op.k, op.s, op.id)
}
func (op *exactAvgPoolOp) Hashcode() uint32 { return graphval.HashOf(op) }
func (op *exactAvgPoolOp) String() string {
	return fmt.Sprintf("ExactAvgPool2d(k=%d,s=%d)#%d", op.k, op.s, op.id)
}

func (op *exactAvgPoolOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := checkArity(op, vals); err != nil {
		return nil, err
	}
	x, xs, err := readF32(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	p, ok := op.in.Params()
	if !ok {
		return nil, fmt.Errorf("%v: quantizer %s has no params", op, op.in.Name)
	}
	q, err := export.ActQuant(p)
	if err != nil {
		return nil, fmt.Errorf("%v: quantizer %s: %w", op, op.in.Name, err)
	}
	out, y := op.out.Dense(op.outShape)
	op.xc, op.yc = growCodes(op.xc, len(x)), growCodes(op.yc, len(y))
	codes(op.xc, x, q)
	infer.AvgPool(op.yc, op.xc, xs[0], xs[1], xs[2], xs[3], op.k, op.s)
	values(y, op.yc, q)
	return out, nil
}

var _ gorgonia.Op = (*exactAvgPoolOp)(nil)

func growCodes(b []uint8, n int) []uint8 {
	if cap(b) < n {
		return make([]uint8, n)
	}
	return b[:n]
}
