package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/internal/par"
	"qat/quant"
)

// The per-channel ops below are what PyTorch's QAT Conv+BN folding
// (torch.nn.intrinsic.qat.ConvBn2d) needs besides Conv2d and BatchNorm:
//
//	sf := FoldScale(gamma, bn)          // gamma / sqrt(running_var + eps)
//	wq := fakeQuant(ChannelMul(w, sf, 0))
//	y  := ChannelDiv(Conv2d(x, wq), sf, 1)
//	y   = AddChannelBias(y, convBias)   // when the conv has a bias
//	y   = bn.Apply(y, gamma, beta)
//
// All are float32, row-major; x may have any rank of 1 or more (2 or more
// for AddChannelBias). Shape errors are reported when the graph is built
// and again, as errors naming the op, when a run's values disagree. Each
// op node owns its output tensor and overwrites it on every run (see
// Buffers in the package doc); inputs are never written.

// ChannelMul returns y = x * s[c] where c is the index along axis (0 for a
// weight [O, ...], 1 for an activation [N, C, ...]); s is [C], C being
// x's size along axis. axis must be in [0, rank of x).
//
// Gradients (separate op nodes, inputs x, s and dY): dX = dY * s[c] and
// ds[c] = the sum of dY * x over every element of channel c (accumulated
// in float64).
func ChannelMul(x, s *gorgonia.Node, axis int) (*gorgonia.Node, error) {
	return applyChannel(x, s, axis, chanMul)
}

// ChannelDiv returns y = x / s[c], c being the index along axis as for
// ChannelMul. The division is IEEE float32, as PyTorch's: s[c] = 0 gives
// ±Inf (or NaN for 0/0) in the output and in the gradients, and is not an
// error.
//
// Gradients (inputs x, s and dY): dX = dY / s[c] and
// ds[c] = -sum(dY * x) / s[c]^2, the sum over the elements of channel c
// accumulated in float64.
func ChannelDiv(x, s *gorgonia.Node, axis int) (*gorgonia.Node, error) {
	return applyChannel(x, s, axis, chanDiv)
}

// AddChannelBias returns y = x + b[c] along axis 1 of x [N, C, ...] (a
// convolution's bias); b is [C].
//
// Gradients (inputs x, b and dY): dX = dY and db[c] = the sum of dY over
// every element of channel c (all axes but 1), accumulated in float64.
func AddChannelBias(x, b *gorgonia.Node) (*gorgonia.Node, error) {
	return applyChannel(x, b, 1, chanAdd)
}

const (
	chanMul = iota
	chanDiv
	chanAdd
)

var chanNames = [...]string{"ChannelMul", "ChannelDiv", "AddChannelBias"}

func applyChannel(x, s *gorgonia.Node, axis, kind int) (*gorgonia.Node, error) {
	name := "ops." + chanNames[kind]
	what := "scale"
	if kind == chanAdd {
		what = "bias"
	}
	if err := checkNode(x, "input", -1); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := checkNode(s, what, 1); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := channelShapes(x.Shape(), s.Shape(), axis); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	y, err := gorgonia.ApplyOp(newChannel(axis, kind), x, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return y, nil
}

func channelShapes(xs, ss tensor.Shape, axis int) error {
	if axis < 0 || axis >= len(xs) {
		return fmt.Errorf("axis %d outside input shape %v", axis, xs)
	}
	if len(ss) != 1 || ss[0] != xs[axis] {
		return fmt.Errorf("per-channel vector has shape %v, want [%d] (axis %d of input %v)", ss, xs[axis], axis, xs)
	}
	return nil
}

// channelOp is y = x op s[c]: inputs x, s.
type channelOp struct {
	base
	id   uint64
	axis int
	kind int
	out  graphval.Buffer
}

func newChannel(axis, kind int) *channelOp {
	id := graphval.NewID()
	return &channelOp{base: named("%s(axis=%d)#%d", chanNames[kind], axis, id), id: id, axis: axis, kind: kind}
}

func (op *channelOp) Arity() int { return 2 }
func (op *channelOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeAny, graphval.TypeVec, graphval.TypeAny)
}
func (op *channelOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	xs, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	ss, err := graphval.ShapeArg(ds, 1)
	if err != nil {
		return nil, err
	}
	if err := channelShapes(xs, ss, op.axis); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return xs, nil
}

// readChannel reads x and s from vals and checks them; who names the op
// in errors.
func (op *channelOp) readChannel(who fmt.Stringer, vals []gorgonia.Value) (x, s []float32, xs tensor.Shape, err error) {
	x, xs, err = graphval.ReadFloat32s(who, vals[0], "input")
	if err != nil {
		return nil, nil, nil, err
	}
	s, ss, err := graphval.ReadFloat32s(who, vals[1], "per-channel vector")
	if err != nil {
		return nil, nil, nil, err
	}
	if err := channelShapes(xs, ss, op.axis); err != nil {
		return nil, nil, nil, fmt.Errorf("%v: %w", who, err)
	}
	return x, s, xs, nil
}

func (op *channelOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, s, xs, err := op.readChannel(op, vals)
	if err != nil {
		return nil, err
	}
	outer, inner := outerInner(xs, op.axis)
	out, y := op.out.Dense(xs)
	channelMap(y, x, s, outer, inner, op.kind)
	return out, nil
}

// channelMap writes dst = src op s[c] (op by kind: chanMul, chanDiv,
// chanAdd) over the outer*len(s) runs of inner elements of src, run r in
// channel r%len(s). Elementwise, so the runs are split into contiguous
// ranges across goroutines (par.Range) without changing a bit.
func channelMap(dst, src, s []float32, outer, inner, kind int) {
	c := len(s)
	par.Range(outer*c, inner, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			sc := s[r%c]
			x, y := src[r*inner:(r+1)*inner], dst[r*inner:(r+1)*inner]
			y = y[:len(x)]
			switch kind {
			case chanMul:
				for j, v := range x {
					y[j] = v * sc
				}
			case chanDiv:
				for j, v := range x {
					y[j] = v / sc
				}
			default:
				for j, v := range x {
					y[j] = v + sc
				}
			}
		}
	})
}

func (op *channelOp) DiffWRT(inputs int) []bool { return []bool{true, true} }

func (op *channelOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("%v: %d inputs, want 2", op, len(inputs))
	}
	gx, err := gorgonia.ApplyOp(newChannelGrad(op, false), inputs[0], inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("%v: input gradient: %w", op, err)
	}
	gs, err := gorgonia.ApplyOp(newChannelGrad(op, true), inputs[0], inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("%v: per-channel gradient: %w", op, err)
	}
	return gorgonia.Nodes{gx, gs}, nil
}

var _ gorgonia.SDOp = (*channelOp)(nil)

// channelGradOp is one gradient of a channelOp: inputs x, s, dY; output
// ds (shape of s) when wrtS, else dX (shape of x).
type channelGradOp struct {
	base
	fwd  *channelOp
	wrtS bool
	out  graphval.Buffer
	acc  []float64
}

func newChannelGrad(fwd *channelOp, wrtS bool) *channelGradOp {
	wrt := "X"
	if wrtS {
		wrt = "S"
	}
	return &channelGradOp{base: named("%sGrad%s#%d", chanNames[fwd.kind], wrt, fwd.id), fwd: fwd, wrtS: wrtS}
}

func (op *channelGradOp) Arity() int { return 3 }
func (op *channelGradOp) Type() hm.Type {
	if op.wrtS {
		return hm.NewFnType(graphval.TypeAny, graphval.TypeVec, graphval.TypeAny, graphval.TypeVec)
	}
	return hm.NewFnType(graphval.TypeAny, graphval.TypeVec, graphval.TypeAny, graphval.TypeAny)
}
func (op *channelGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	if op.wrtS {
		return graphval.ShapeArg(ds, 1)
	}
	return graphval.ShapeArg(ds, 0)
}

func (op *channelGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, s, xs, err := op.fwd.readChannel(op, vals)
	if err != nil {
		return nil, err
	}
	dy, dys, err := graphval.ReadFloat32s(op, vals[2], "output gradient")
	if err != nil {
		return nil, err
	}
	if !dys.Eq(xs) {
		return nil, fmt.Errorf("%v: output gradient has shape %v, input %v", op, dys, xs)
	}
	outer, inner := outerInner(xs, op.fwd.axis)
	kind := op.fwd.kind
	if !op.wrtS {
		out, dx := op.out.Dense(xs)
		if kind == chanAdd {
			copy(dx, dy)
			return out, nil
		}
		channelMap(dx, dy, s, outer, inner, kind)
		return out, nil
	}
	if cap(op.acc) < len(s) {
		op.acc = make([]float64, len(s))
	}
	acc := op.acc[:len(s)]
	if kind == chanAdd {
		channelSums(acc, dy, nil, outer, inner)
	} else {
		channelSums(acc, dy, x, outer, inner)
	}
	out, ds := op.out.Dense(tensor.Shape{len(s)})
	for c, v := range acc {
		if kind == chanDiv {
			sc := float64(s[c])
			v = -v / (sc * sc)
		}
		ds[c] = float32(v)
	}
	return out, nil
}

// channelSums sets acc[c], for each channel c of the outer*len(acc) runs
// of inner elements of dy in row-major order (run r in channel
// r%len(acc)), to the float64 sum of the channel's runs' sums: each run's
// elements, or their products with x's when x is not nil, summed from 0 in
// index order by one accumulator, and the run sums added from 0 in run
// order, exactly as a loop over the runs one by one would.
//
// The channels are split into contiguous ranges across goroutines
// (par.Range): a channel's runs, and so every addition into its sum, stay
// on one goroutine in the same order, so the sums do not depend on the
// thread count.
func channelSums(acc []float64, dy, x []float32, outer, inner int) {
	c := len(acc)
	par.Range(c, outer*inner, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			acc[ch] = runSums(dy, x, ch, c, outer, inner)
		}
	})
}

// runSums returns the sum, added in k order from 0, of the float64 sums of
// runs first + k*stride (k in [0, count)) of inner elements of dy, or of
// their products with x's when x is not nil: the runs of one channel.
// Four runs are summed side by side, which only breaks the dependency
// between their additions.
func runSums(dy, x []float32, first, stride, count, inner int) float64 {
	run := func(s []float32, k int) []float32 {
		r := first + k*stride
		return s[r*inner : (r+1)*inner]
	}
	var acc float64
	k := 0
	for ; k+4 <= count; k += 4 {
		d0, d1, d2, d3 := run(dy, k), run(dy, k+1), run(dy, k+2), run(dy, k+3)
		d1, d2, d3 = d1[:len(d0)], d2[:len(d0)], d3[:len(d0)]
		var s0, s1, s2, s3 float64
		if x == nil {
			for j := range d0 {
				s0 += float64(d0[j])
				s1 += float64(d1[j])
				s2 += float64(d2[j])
				s3 += float64(d3[j])
			}
		} else {
			x0, x1, x2, x3 := run(x, k), run(x, k+1), run(x, k+2), run(x, k+3)
			x0, x1, x2, x3 = x0[:len(d0)], x1[:len(d0)], x2[:len(d0)], x3[:len(d0)]
			for j := range d0 {
				s0 += float64(d0[j]) * float64(x0[j])
				s1 += float64(d1[j]) * float64(x1[j])
				s2 += float64(d2[j]) * float64(x2[j])
				s3 += float64(d3[j]) * float64(x3[j])
			}
		}
		acc += s0
		acc += s1
		acc += s2
		acc += s3
	}
	for ; k < count; k++ {
		var sum float64
		d := run(dy, k)
		if x == nil {
			for _, v := range d {
				sum += float64(v)
			}
		} else {
			xr := run(x, k)[:len(d)]
			for j, v := range d {
				sum += float64(v) * float64(xr[j])
			}
		}
		acc += sum
	}
	return acc
}

var _ gorgonia.Op = (*channelGradOp)(nil)

// FoldScale returns sf = gamma / sqrt(bn.RunningVar + bn.Eps()), [C], the
// scale PyTorch's QAT ConvBn folds into the convolution weight. gamma is a
// float32 [C] node with C = bn's channel count (an error here otherwise).
// The arithmetic is PyTorch's float32 sequence: rv+eps rounded to float32,
// its float32 square root, then a float32 division (quant.FoldScale, the
// function export folds with too), so sf matches torch.sqrt(running_var +
// eps) and weight / running_std bit for bit.
//
// RunningVar is read when the op runs, so the value used is the one the
// slice holds at that point of the run. Order matters: in the folding
// pattern (see ChannelMul) bn.Apply's input depends on sf, so FoldScale
// runs before the BatchNorm forward and sees the running variance from
// before that forward's update, as in PyTorch, where the scale is computed
// before self.bn(...) updates its buffers. A FoldScale whose output does
// not feed (directly or not) the input of bn.Apply has no defined order
// relative to the update. A run whose RunningVar does not have C elements
// is an error naming the op.
//
// The gradient (a separate op node, inputs dsf and sf) is
// dgamma = dsf / sqrt(rv + eps), dividing by the very float32 square roots
// the forward of the same run used, which the forward op records for it:
// the gradient never sees the update the BatchNorm forward made in
// between. There is no gradient to the running variance (a buffer in
// PyTorch).
func FoldScale(gamma *gorgonia.Node, bn *BatchNorm) (*gorgonia.Node, error) {
	if bn == nil {
		return nil, fmt.Errorf("ops.FoldScale: nil BatchNorm")
	}
	if err := checkNode(gamma, "gamma", 1); err != nil {
		return nil, fmt.Errorf("ops.FoldScale: %w", err)
	}
	if c := gamma.Shape()[0]; c != bn.channels {
		return nil, fmt.Errorf("ops.FoldScale: gamma %v has %d elements, BatchNorm has %d channels", gamma, c, bn.channels)
	}
	y, err := gorgonia.ApplyOp(newFold(bn), gamma)
	if err != nil {
		return nil, fmt.Errorf("ops.FoldScale: %w", err)
	}
	return y, nil
}

// foldRecord is what a foldOp leaves for its gradient op in the same run:
// the float32 sqrt(rv + eps) it divided by.
type foldRecord struct {
	ran bool
	std []float32
}

// foldOp is sf = gamma / sqrt(bn.RunningVar + eps): input gamma.
type foldOp struct {
	base
	id  uint64
	bn  *BatchNorm
	rec *foldRecord
	out graphval.Buffer
}

func newFold(bn *BatchNorm) *foldOp {
	id := graphval.NewID()
	return &foldOp{base: named("FoldScale#%d", id), id: id, bn: bn, rec: new(foldRecord)}
}

func (op *foldOp) Arity() int    { return 1 }
func (op *foldOp) Type() hm.Type { return hm.NewFnType(graphval.TypeVec, graphval.TypeVec) }
func (op *foldOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}

func (op *foldOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	op.rec.ran = false
	gamma, gs, err := graphval.ReadFloat32s(op, vals[0], "gamma")
	if err != nil {
		return nil, err
	}
	c := op.bn.channels
	if len(gs) != 1 || gs[0] != c {
		return nil, fmt.Errorf("%v: gamma has shape %v, want [%d]", op, gs, c)
	}
	if len(op.bn.RunningVar) != c {
		return nil, fmt.Errorf("%v: BatchNorm.RunningVar has %d elements, want %d", op, len(op.bn.RunningVar), c)
	}
	eps := op.bn.Eps()
	if cap(op.rec.std) < c {
		op.rec.std = make([]float32, c)
	}
	std := op.rec.std[:c]
	out, sf := op.out.Dense(tensor.Shape{c})
	quant.FoldScale(sf, std, gamma, op.bn.RunningVar, eps)
	op.rec.std, op.rec.ran = std, true
	return out, nil
}

func (op *foldOp) DiffWRT(inputs int) []bool { return []bool{true} }

func (op *foldOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%v: %d inputs, want 1", op, len(inputs))
	}
	// output is an input only so that the gradient runs after the forward
	// that fills the record.
	gg, err := gorgonia.ApplyOp(&foldGradOp{base: named("FoldScaleGrad#%d", op.id), fwd: op}, grad, output)
	if err != nil {
		return nil, fmt.Errorf("%v: gamma gradient: %w", op, err)
	}
	return gorgonia.Nodes{gg}, nil
}

var _ gorgonia.SDOp = (*foldOp)(nil)

// foldGradOp is dgamma = dsf / std, std from the forward's record: inputs
// dsf and sf (the forward's output, for ordering only).
type foldGradOp struct {
	base
	fwd *foldOp
	out graphval.Buffer
}

func (op *foldGradOp) Arity() int { return 2 }
func (op *foldGradOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeVec, graphval.TypeVec, graphval.TypeVec)
}
func (op *foldGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}

func (op *foldGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	g, _, err := graphval.ReadFloat32s(op, vals[0], "output gradient")
	if err != nil {
		return nil, err
	}
	rec := op.fwd.rec
	if !rec.ran {
		return nil, fmt.Errorf("%v: gradient run before the forward pass", op)
	}
	if len(g) != len(rec.std) {
		return nil, fmt.Errorf("%v: output gradient has %d elements, want %d", op, len(g), len(rec.std))
	}
	out, dg := op.out.Dense(tensor.Shape{len(g)})
	for i, v := range g {
		dg[i] = v / rec.std[i]
	}
	return out, nil
}

var _ gorgonia.Op = (*foldGradOp)(nil)
