package export

import (
	"errors"
	"fmt"
	"math"

	"qat/qmodel"
	"qat/quant"
)

// ErrUnsupported is wrapped by every error about a model that has no
// integer form: a layer without quantizers, asymmetric weights,
// per-channel activations, and the like.
var ErrUnsupported = errors.New("cannot export")

// Source describes a trained model for Freeze: its layers in order, with
// float32 tensors and the params of its quantizers as they are now.
// Freeze reads it and keeps nothing.
type Source struct {
	Name    string
	Input   [3]int // C, H, W
	Classes int
	Norm    qmodel.Norm
	// InputQuant is the input quantizer's params (per tensor).
	InputQuant quant.Params
	Layers     []Layer
}

// BN is a BatchNorm folded into the conv before it.
type BN struct {
	Gamma, Beta, Mean, Var []float32
	Eps                    float32
}

// Layer is one layer of a Source. Conv and linear layers fill the weight
// fields; the others only Type and, for pools, Kernel and Stride.
type Layer struct {
	Type                    qmodel.OpType
	Name                    string
	In, Out                 int
	Kernel, Stride, Padding int
	// Weight is [Out, In, Kernel, Kernel] (conv) or [Out, In] (linear).
	Weight []float32
	// Bias is [Out] or nil.
	Bias []float32
	// BN is folded into the layer when not nil.
	BN *BN
	// Act is the fused activation: "", qmodel.OpReLU or qmodel.OpReLU6.
	Act qmodel.OpType
	// WeightQuant quantizes the (folded) weight: symmetric, per tensor or
	// per channel of axis 0.
	WeightQuant quant.Params
	// ActQuant quantizes the layer's output, after the activation.
	ActQuant quant.Params
}

// FoldScale writes sf[c] = gamma[c] / std[c] and std[c] =
// float32(sqrt(float32(runningVar[c] + eps))), PyTorch's ConvBn fold scale
// in float32. All slices have the same length.
func FoldScale(sf, std, gamma, runningVar []float32, eps float32) {
	for i, rv := range runningVar {
		std[i] = float32(math.Sqrt(float64(float32(rv + eps))))
		sf[i] = gamma[i] / std[i]
	}
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
func Clamp(act qmodel.OpType, q qmodel.Quant) (lo, hi int32, err error) {
	switch act {
	case "":
		return q.QMin, q.QMax, nil
	case qmodel.OpReLU:
		return q.ZeroPoint, q.QMax, nil
	case qmodel.OpReLU6:
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

func freezeLayer(l Layer, in qmodel.Quant, mode qmodel.Requant) (qmodel.Op, error) {
	if l.Type != qmodel.OpConv && l.Type != qmodel.OpLinear {
		return qmodel.Op{}, fmt.Errorf("%w: FreezeLayer of a %s layer", ErrUnsupported, l.Type)
	}
	k := 1
	if l.Type == qmodel.OpConv {
		k = l.Kernel
	}
	if l.In < 1 || l.Out < 1 || k < 1 {
		return qmodel.Op{}, fmt.Errorf("bad sizes in %d out %d kernel %d", l.In, l.Out, k)
	}
	inner := l.In * k * k
	if len(l.Weight) != l.Out*inner {
		return qmodel.Op{}, fmt.Errorf("weight has %d elements, want %d", len(l.Weight), l.Out*inner)
	}
	if l.Bias != nil && len(l.Bias) != l.Out {
		return qmodel.Op{}, fmt.Errorf("bias has %d elements, want %d", len(l.Bias), l.Out)
	}
	wq := l.WeightQuant
	if err := wq.Validate(); err != nil {
		return qmodel.Op{}, fmt.Errorf("weight quantizer: %w", err)
	}
	if !wq.PerTensor() && (wq.Axis != 0 || len(wq.Scale) != l.Out) {
		return qmodel.Op{}, fmt.Errorf("%w: weight quantized per channel of axis %d with %d scales, want axis 0 with %d", ErrUnsupported, wq.Axis, len(wq.Scale), l.Out)
	}
	for c, z := range wq.ZeroPoint {
		if z != 0 {
			return qmodel.Op{}, fmt.Errorf("%w: weight zero point[%d] = %d: int8 weights must be symmetric (zero point 0)", ErrUnsupported, c, z)
		}
	}
	bits, err := weightBits(wq.QMin, wq.QMax)
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

	w := l.Weight
	var sf []float32
	if l.BN != nil {
		b := l.BN
		for _, v := range [][]float32{b.Gamma, b.Beta, b.Mean, b.Var} {
			if len(v) != l.Out {
				return qmodel.Op{}, fmt.Errorf("BatchNorm has %d channels, want %d", len(v), l.Out)
			}
		}
		sf = make([]float32, l.Out)
		FoldScale(sf, make([]float32, l.Out), b.Gamma, b.Var, b.Eps)
		w = make([]float32, len(l.Weight))
		for c := range l.Out {
			for i, v := range l.Weight[c*inner : (c+1)*inner] {
				w[c*inner+i] = v * sf[c]
			}
		}
	}
	wScale := make([]float32, l.Out)
	for c := range wScale {
		wScale[c] = wq.Scale[0]
		if !wq.PerTensor() {
			wScale[c] = wq.Scale[c]
		}
	}
	codes := make([]int32, len(w))
	quant.Quantize(codes, w, []int{l.Out, inner}, quant.Params{Scale: wScale, ZeroPoint: make([]int32, l.Out), QMin: wq.QMin, QMax: wq.QMax, Axis: 0})
	op := qmodel.Op{
		Type: l.Type, Name: l.Name, In: l.In, Out: l.Out, WeightBits: bits,
		Weight: make([]int8, len(codes)), WeightScale: wScale, Bias: make([]int32, l.Out),
		Output: out, ClampMin: lo, ClampMax: hi,
	}
	if l.Type == qmodel.OpConv {
		op.Kernel, op.Stride, op.Padding = l.Kernel, l.Stride, l.Padding
	}
	for i, q := range codes {
		op.Weight[i] = int8(q)
	}
	for c := range l.Out {
		var b float64
		if l.Bias != nil {
			b = float64(l.Bias[c])
		}
		if l.BN != nil {
			b = float64(l.BN.Beta[c]) + (b-float64(l.BN.Mean[c]))*float64(sf[c])
		}
		if math.IsNaN(b) || math.IsInf(b, 0) {
			return qmodel.Op{}, fmt.Errorf("bias[%d] = %g is not finite", c, b)
		}
		qb := math.RoundToEven(b / (float64(in.Scale) * float64(wScale[c])))
		if math.Abs(qb) >= 1<<30 {
			return qmodel.Op{}, fmt.Errorf("%w: bias[%d] = %g is %g steps of its scale %g, beyond 2^30", ErrUnsupported, c, b, qb, float64(in.Scale)*float64(wScale[c]))
		}
		op.Bias[c] = int32(qb)
	}
	switch mode {
	case qmodel.RequantFloat, qmodel.RequantFixed:
	default:
		return qmodel.Op{}, fmt.Errorf("%w: requantization mode %q (want float or fixed)", ErrUnsupported, mode)
	}
	mult := make([]float32, l.Out)
	for c := range mult {
		mult[c] = float32(in.Scale*wScale[c]) / out.Scale
		if !(mult[c] > 0) || math.IsInf(float64(mult[c]), 0) {
			return qmodel.Op{}, fmt.Errorf("requantization multiplier[%d] = %g is not a finite positive number", c, mult[c])
		}
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

// Freeze freezes src into an integer model with requantization mode
// mode. Every conv and linear layer needs its quantizers; the input is
// quantized by src.InputQuant.
func Freeze(src Source, mode qmodel.Requant) (*qmodel.Model, error) {
	in, err := ActQuant(src.InputQuant)
	if err != nil {
		return nil, fmt.Errorf("input quantizer: %w", err)
	}
	m := &qmodel.Model{Name: src.Name, Input: src.Input, Classes: src.Classes, Norm: src.Norm, InputQuant: in, Requant: mode}
	cur := in
	for i, l := range src.Layers {
		if l.Name == "" {
			l.Name = fmt.Sprintf("%s%d", l.Type, i)
		}
		var op qmodel.Op
		switch l.Type {
		case qmodel.OpConv, qmodel.OpLinear:
			if op, err = FreezeLayer(l, cur, mode); err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
		case qmodel.OpMaxPool, qmodel.OpAvgPool:
			op = qmodel.Op{Type: l.Type, Name: l.Name, Kernel: l.Kernel, Stride: l.Stride, Output: cur}
		case qmodel.OpFlatten:
			op = qmodel.Op{Type: l.Type, Name: l.Name, Output: cur}
		case qmodel.OpReLU, qmodel.OpReLU6:
			op = qmodel.Op{Type: l.Type, Name: l.Name, Output: cur}
			if op.ClampMin, op.ClampMax, err = Clamp(l.Type, cur); err != nil {
				return nil, fmt.Errorf("layer %d (%s): %w", i, l.Name, err)
			}
		default:
			return nil, fmt.Errorf("layer %d (%s): %w: layer type %q", i, l.Name, ErrUnsupported, l.Type)
		}
		cur = op.Output
		m.Ops = append(m.Ops, op)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("frozen model: %w", err)
	}
	return m, nil
}
