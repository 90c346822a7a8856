package export

import (
	"errors"
	"fmt"
	"math"

	"qat/model"
	"qat/qmodel"
	"qat/quant"
)

// ErrUnsupported is wrapped by every error about a model that has no
// integer form: a layer without quantizers, asymmetric weights,
// per-channel activations, and the like.
var ErrUnsupported = errors.New("cannot export")

// Source describes a trained model for Freeze: its nodes in a topological
// order, each a model.Node (with the Inputs it reads) with its float32
// tensors and the params of its quantizers as they are now. Freeze reads
// it and keeps nothing.
type Source struct {
	Name    string
	Input   [3]int // C, H, W
	Classes int
	Norm    model.Norm
	// InputQuant is the input quantizer's params (per tensor).
	InputQuant quant.Params
	Layers     []Layer
}

// Graph returns the network src describes, for model's shape rule and
// validation: its layers' nodes, each with its Inputs.
func (src Source) Graph() model.Graph {
	g := model.Graph{Name: src.Name, Input: src.Input[:], Classes: src.Classes, Nodes: make([]model.Node, len(src.Layers))}
	for i, l := range src.Layers {
		g.Nodes[i] = l.Node
	}
	return g
}

// BN is a BatchNorm folded into the conv before it.
type BN struct {
	Gamma, Beta, Mean, Var []float32
	Eps                    float32
}

// Layer is one node of a Source. Conv and linear layers fill the weight
// fields and ActQuant, add and concat layers only ActQuant, the others
// nothing but the Node.
type Layer struct {
	// Node is the layer's op and attributes (a fused Act for conv,
	// linear and add).
	model.Node
	// In is the number of input channels (conv) or features (linear): the
	// input shape's first dimension.
	In int
	// Weight is [Out, In/G, Kernel, Kernel] (conv of G = EffectiveGroups
	// groups) or [Out, In] (linear).
	Weight []float32
	// Bias is [Out] or nil.
	Bias []float32
	// BN is folded into the layer when not nil.
	BN *BN
	// WeightQuant quantizes the (folded) weight: symmetric, per tensor or
	// per channel of axis 0.
	WeightQuant quant.Params
	// ActQuant quantizes the layer's output, after the activation (conv,
	// linear, add, concat); the zero Params when the layer has no output
	// quantizer.
	ActQuant quant.Params
}

// ActQuant returns the uint8-domain form of per-tensor activation params.
func ActQuant(p quant.Params) (qmodel.Quant, error) {
	if err := p.Validate(); err != nil {
		return qmodel.Quant{}, err
	}
	if !p.PerTensor() {
		return qmodel.Quant{}, fmt.Errorf("%w: per-channel activation quantization (axis %d)", ErrUnsupported, p.Axis)
	}
	if p.QMax-p.QMin > 255 {
		return qmodel.Quant{}, fmt.Errorf("%w: activation code range [%d, %d] is wider than 8 bits", ErrUnsupported, p.QMin, p.QMax)
	}
	off := max(-p.QMin, 0)
	return qmodel.Quant{Scale: p.Scale[0], ZeroPoint: p.ZeroPoint[0] + off, QMin: p.QMin + off, QMax: p.QMax + off}, nil
}

// Clamp returns the code bounds of a fused or standalone activation act
// ("" for none) on codes quantized with q.
func Clamp(act model.OpType, q qmodel.Quant) (lo, hi int32, err error) {
	switch act {
	case "":
		return q.QMin, q.QMax, nil
	case model.OpReLU:
		return q.ZeroPoint, q.QMax, nil
	case model.OpReLU6:
		six, _ := quant.Code(6, 1/q.Scale, q.ZeroPoint, q.QMin, q.QMax)
		return q.ZeroPoint, six, nil
	}
	return 0, 0, fmt.Errorf("%w: activation %q", ErrUnsupported, act)
}

// weightBits returns the storage width of signed codes in [qmin, qmax].
func weightBits(qmin, qmax int32) (int, error) {
	switch {
	case qmin >= -2 && qmax <= 1:
		return 2, nil
	case qmin >= -8 && qmax <= 7:
		return 4, nil
	case qmin >= -128 && qmax <= 127:
		return 8, nil
	}
	return 0, fmt.Errorf("%w: weight code range [%d, %d] does not fit 8 signed bits", ErrUnsupported, qmin, qmax)
}

// FreezeLayer freezes a conv or linear layer whose input codes are
// quantized with in, for requantization mode mode. The result passes
// qmodel's per-op checks.
func FreezeLayer(l Layer, in qmodel.Quant, mode qmodel.Requant) (qmodel.Op, error) {
	op, err := freezeLayer(l, in, mode)
	if err != nil {
		return qmodel.Op{}, fmt.Errorf("layer %s: %w", l.Name, err)
	}
	return op, nil
}

// freezeLayer does FreezeLayer's work in its steps: check the layer,
// find its output codes and clamp, fold BN into the weights, quantize
// weights and bias, and compute the requantization multipliers.
func freezeLayer(l Layer, in qmodel.Quant, mode qmodel.Requant) (qmodel.Op, error) {
	inner, err := checkLayer(l)
	if err != nil {
		return qmodel.Op{}, err
	}
	bits, err := weightBits(l.WeightQuant.QMin, l.WeightQuant.QMax)
	if err != nil {
		return qmodel.Op{}, err
	}
	out, err := ActQuant(l.ActQuant)
	if err != nil {
		return qmodel.Op{}, fmt.Errorf("output quantizer: %w", err)
	}
	lo, hi, err := Clamp(l.Act, out)
	if err != nil {
		return qmodel.Op{}, err
	}
	switch mode {
	case qmodel.RequantFloat, qmodel.RequantFixed:
	default:
		return qmodel.Op{}, fmt.Errorf("%w: requantization mode %q (want float or fixed)", ErrUnsupported, mode)
	}
	w, sf := foldBN(l, inner)
	op := qmodel.Op{
		Type: l.Op, Name: l.Name, In: l.In, Out: l.Out, WeightBits: bits,
		Output: out, ClampMin: lo, ClampMax: hi,
	}
	if l.Op == model.OpConv {
		op.Kernel, op.Stride, op.Padding = l.Kernel, l.EffectiveStride(), l.Padding
		if g := l.EffectiveGroups(); g > 1 {
			op.Groups = g
		}
	}
	op.WeightScale, op.Weight = quantizeWeights(w, l.Out, inner, l.WeightQuant)
	if op.Bias, err = quantizeBias(l, sf, in.Scale, op.WeightScale); err != nil {
		return qmodel.Op{}, err
	}
	mult, err := multipliers(in.Scale, op.WeightScale, out.Scale)
	if err != nil {
		return qmodel.Op{}, err
	}
	if mode == qmodel.RequantFloat {
		op.Multiplier = mult
		return op, nil
	}
	op.FixedMultiplier, op.Shift = make([]int32, l.Out), make([]int32, l.Out)
	for c, m := range mult {
		if op.FixedMultiplier[c], op.Shift[c], err = quant.FixedMultiplier(float64(m)); err != nil {
			return qmodel.Op{}, fmt.Errorf("channel %d: %w", c, err)
		}
	}
	return op, nil
}

// checkLayer checks a conv or linear layer's sizes, tensors and weight
// quantizer, and returns the weights per output channel,
// In/G*Kernel*Kernel (conv of G groups) or In (linear).
func checkLayer(l Layer) (inner int, err error) {
	if !l.Weighted() {
		return 0, fmt.Errorf("%w: FreezeLayer of a %s layer", ErrUnsupported, l.Op)
	}
	k, g := 1, 1
	if l.Op == model.OpConv {
		k, g = l.Kernel, l.EffectiveGroups()
	}
	if l.In < 1 || l.Out < 1 || k < 1 || l.In%g != 0 || l.Out%g != 0 {
		return 0, fmt.Errorf("bad sizes in %d out %d kernel %d groups %d", l.In, l.Out, k, g)
	}
	inner = l.In / g * k * k
	if len(l.Weight) != l.Out*inner {
		return 0, fmt.Errorf("weight has %d elements, want %d", len(l.Weight), l.Out*inner)
	}
	if l.Bias != nil && len(l.Bias) != l.Out {
		return 0, fmt.Errorf("bias has %d elements, want %d", len(l.Bias), l.Out)
	}
	if b := l.BN; b != nil {
		for _, v := range [][]float32{b.Gamma, b.Beta, b.Mean, b.Var} {
			if len(v) != l.Out {
				return 0, fmt.Errorf("BatchNorm has %d channels, want %d", len(v), l.Out)
			}
		}
	}
	wq := l.WeightQuant
	if err := wq.Validate(); err != nil {
		return 0, fmt.Errorf("weight quantizer: %w", err)
	}
	if !wq.PerTensor() && (wq.Axis != 0 || len(wq.Scale) != l.Out) {
		return 0, fmt.Errorf("%w: weight quantized per channel of axis %d with %d scales, want axis 0 with %d", ErrUnsupported, wq.Axis, len(wq.Scale), l.Out)
	}
	for c, z := range wq.ZeroPoint {
		if z != 0 {
			return 0, fmt.Errorf("%w: weight zero point[%d] = %d: int8 weights must be symmetric (zero point 0)", ErrUnsupported, c, z)
		}
	}
	return inner, nil
}

// foldBN returns the layer's weights with its BN folded in (w * sf[c] in
// float32) and the fold scales sf, or the weights themselves and nil
// without BN.
func foldBN(l Layer, inner int) (w, sf []float32) {
	b := l.BN
	if b == nil {
		return l.Weight, nil
	}
	sf = make([]float32, l.Out)
	quant.FoldScale(sf, make([]float32, l.Out), b.Gamma, b.Var, b.Eps)
	w = make([]float32, len(l.Weight))
	for c := range l.Out {
		for i, v := range l.Weight[c*inner : (c+1)*inner] {
			w[c*inner+i] = v * sf[c]
		}
	}
	return w, sf
}

// quantizeWeights returns the per-output-channel weight scales and the
// codes of w, [out, inner], with the (validated, symmetric) params wq.
func quantizeWeights(w []float32, out, inner int, wq quant.Params) ([]float32, []int8) {
	scale := make([]float32, out)
	for c := range scale {
		scale[c] = wq.Scale[0]
		if !wq.PerTensor() {
			scale[c] = wq.Scale[c]
		}
	}
	codes := make([]int32, len(w))
	quant.Quantize(codes, w, []int{out, inner}, quant.Params{Scale: scale, ZeroPoint: make([]int32, out), QMin: wq.QMin, QMax: wq.QMax, Axis: 0})
	q := make([]int8, len(codes))
	for i, c := range codes {
		q[i] = int8(c)
	}
	return scale, q
}

// quantizeBias returns the int32 bias of the layer: its real bias (with
// BN folded by fold scales sf, if any) in steps of inScale*wScale[c].
func quantizeBias(l Layer, sf []float32, inScale float32, wScale []float32) ([]int32, error) {
	bias := make([]int32, l.Out)
	for c := range bias {
		var b float64
		if l.Bias != nil {
			b = float64(l.Bias[c])
		}
		if l.BN != nil {
			b = float64(l.BN.Beta[c]) + (b-float64(l.BN.Mean[c]))*float64(sf[c])
		}
		if math.IsNaN(b) || math.IsInf(b, 0) {
			return nil, fmt.Errorf("bias[%d] = %g is not finite", c, b)
		}
		qb := math.RoundToEven(b / (float64(inScale) * float64(wScale[c])))
		if math.Abs(qb) >= 1<<30 {
			return nil, fmt.Errorf("%w: bias[%d] = %g is %g steps of its scale %g, beyond 2^30", ErrUnsupported, c, b, qb, float64(inScale)*float64(wScale[c]))
		}
		bias[c] = int32(qb)
	}
	return bias, nil
}

// multipliers returns the float requantization multipliers
// float32(inScale*wScale[c]) / outScale.
func multipliers(inScale float32, wScale []float32, outScale float32) ([]float32, error) {
	mult := make([]float32, len(wScale))
	for c := range mult {
		mult[c] = float32(inScale*wScale[c]) / outScale
		if !(mult[c] > 0) || math.IsInf(float64(mult[c]), 0) {
			return nil, fmt.Errorf("requantization multiplier[%d] = %g is not a finite positive number", c, mult[c])
		}
	}
	return mult, nil
}

// Freeze freezes src into an integer model with requantization mode
// mode. The input is quantized by src.InputQuant, every conv and linear
// layer needs its quantizers and every add and concat its output
// quantizer (ActQuant); each op reads the codes of the layers it reads
// (qmodel.Op.Inputs, nil for the layer before), with their quantization.
func Freeze(src Source, mode qmodel.Requant) (*qmodel.Model, error) { return freeze(src, mode, false) }

// freeze is Freeze, and with dynamic FreezeDynamic.
func freeze(src Source, mode qmodel.Requant, dynamic bool) (*qmodel.Model, error) {
	g := src.Graph()
	sources, err := g.Sources()
	if err != nil {
		return nil, err
	}
	m := &qmodel.Model{Name: src.Name, Input: src.Input, Classes: src.Classes, Norm: src.Norm, Requant: mode}
	if dynamic && src.InputQuant.Scale == nil {
		m.FloatInput = true
	} else if m.InputQuant, err = ActQuant(src.InputQuant); err != nil {
		return nil, fmt.Errorf("input quantizer: %w", err)
	}
	floats := make([]bool, len(src.Layers)) // whether each layer's output is floats
	for i, l := range src.Layers {
		if l.Name == "" {
			l.Name = fmt.Sprintf("%s%d", l.Op, i)
		}
		cur := m.InputQuant // the quantization of the layer's (first) input
		if j := sources[i][0]; j >= 0 {
			cur = m.Ops[j].Output
		}
		var op qmodel.Op
		if dynamic {
			op, floats[i], err = freezeDynamicOp(l, cur, mode, readsFloats(sources[i], m.FloatInput, floats))
		} else {
			op, err = freezeOp(l, cur, mode)
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.Name, err)
		}
		if s := sources[i]; len(s) != 1 || s[0] != i-1 {
			op.Inputs = s
		}
		m.Ops = append(m.Ops, op)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("frozen model: %w", err)
	}
	return m, nil
}

// freezeOp freezes the named layer l, whose (first) input is quantized
// with cur, but for its Inputs.
func freezeOp(l Layer, cur qmodel.Quant, mode qmodel.Requant) (qmodel.Op, error) {
	op := qmodel.Op{Type: l.Op, Name: l.Name, Output: cur}
	var err error
	switch l.Op {
	case model.OpConv, model.OpLinear:
		return freezeLayer(l, cur, mode)
	case model.OpMaxPool:
		op.Kernel, op.Stride, op.Padding = l.Kernel, l.EffectiveStride(), l.Padding
	case model.OpAvgPool:
		op.Kernel, op.Stride = l.Kernel, l.EffectiveStride()
	case model.OpGlobalAvgPool, model.OpFlatten:
	case model.OpReLU, model.OpReLU6:
		op.ClampMin, op.ClampMax, err = Clamp(l.Op, cur)
	case model.OpAdd, model.OpConcat:
		if l.ActQuant.Scale == nil {
			return qmodel.Op{}, fmt.Errorf("%w: %s without an output quantizer", ErrUnsupported, l.Op)
		}
		if op.Output, err = ActQuant(l.ActQuant); err != nil {
			return qmodel.Op{}, fmt.Errorf("output quantizer: %w", err)
		}
		op.ClampMin, op.ClampMax, err = Clamp(l.Act, op.Output)
	default:
		err = fmt.Errorf("%w: layer type %q", ErrUnsupported, l.Op)
	}
	return op, err
}
