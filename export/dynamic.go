package export

import (
	"fmt"
	"math"

	"qat/model"
	"qat/qmodel"
	"qat/quant"
)

// FreezeDynamic freezes src with its linear layers quantized dynamically
// (qmodel.OpDynamicLinear): each one's float weights become int8 codes,
// symmetric per output channel (quant.Int8SymmetricPerChannel: scale
// max|w[c]|/127, at least quant.Eps, codes [-127, 127] by
// quant.Quantize), with no calibration; its bias stays float32 and its
// fused activation (none, ReLU or ReLU6) applies to its float outputs;
// the range of its input is computed at run time, per sample. A linear
// layer's quantizers, if it has any, are not used.
//
// The other layers freeze as Freeze freezes them, on codes: every conv
// needs its quantizers (a quantized model's source, deploy.ExportSource).
// A linear layer reading codes dequantizes them; its output, and a
// flatten's of floats, are floats, which only linear and flatten layers
// may read. Without an input quantizer (src.InputQuant zero: a float
// model's source, deploy.FloatSource) the model reads its normalised
// input as floats (qmodel.Model.FloatInput), so that every layer must be
// a flatten or a linear one. Errors about what has no dynamic form wrap
// ErrUnsupported: no linear layer, a conv without quantizers, another
// layer reading floats.
func FreezeDynamic(src Source, mode qmodel.Requant) (*qmodel.Model, error) {
	linear := false
	for _, l := range src.Layers {
		linear = linear || l.Op == model.OpLinear
	}
	if !linear {
		return nil, fmt.Errorf("%w: model %s has no linear layer to quantize dynamically", ErrUnsupported, src.Name)
	}
	return freeze(src, mode, true)
}

// readsFloats reports whether a layer with the given sources reads floats
// in a dynamic model: the float input, or a layer whose output is floats
// (floats, for the layers before).
func readsFloats(sources []int, floatInput bool, floats []bool) bool {
	for _, j := range sources {
		if j < 0 && floatInput || j >= 0 && floats[j] {
			return true
		}
	}
	return false
}

// freezeDynamicOp freezes the named layer l of a dynamic model (but for
// its Inputs): a linear layer as a dynamic_linear, a flatten of floats as
// a flatten without quantization, any other as freezeOp does, with cur
// the quantization of its first input. readsFloats says whether it reads
// floats; float reports whether its output is floats.
func freezeDynamicOp(l Layer, cur qmodel.Quant, mode qmodel.Requant, readsFloats bool) (op qmodel.Op, float bool, err error) {
	switch {
	case l.Op == model.OpLinear:
		op, err = dynamicLinear(l)
		return op, true, err
	case l.Weighted() && l.WeightQuant.Scale == nil:
		return op, false, fmt.Errorf("%w: a %s without quantizers (a float model's): dynamic quantization covers linear layers only, "+
			"so convs must come quantized (calibrate or fine-tune the checkpoint)", ErrUnsupported, l.Op)
	case readsFloats && l.Op == model.OpFlatten:
		return qmodel.Op{Type: l.Op, Name: l.Name}, true, nil
	case readsFloats:
		return op, false, fmt.Errorf("%w: a %s reading float values (the float input, or a dynamic linear layer's output), "+
			"which only linear and flatten layers take", ErrUnsupported, l.Op)
	}
	op, err = freezeOp(l, cur, mode)
	return op, false, err
}

// dynamicLinear freezes linear layer l as a dynamic_linear op.
func dynamicLinear(l Layer) (qmodel.Op, error) {
	if l.In < 1 || l.Out < 1 || len(l.Weight) != l.Out*l.In {
		return qmodel.Op{}, fmt.Errorf("weight has %d elements for in %d and out %d", len(l.Weight), l.In, l.Out)
	}
	if l.Bias != nil && len(l.Bias) != l.Out {
		return qmodel.Op{}, fmt.Errorf("bias has %d elements, want %d", len(l.Bias), l.Out)
	}
	switch l.Act {
	case "", model.OpReLU, model.OpReLU6:
	default:
		return qmodel.Op{}, fmt.Errorf("%w: activation %q", ErrUnsupported, l.Act)
	}
	mins, maxs := make([]float32, l.Out), make([]float32, l.Out)
	for c := range l.Out {
		row := l.Weight[c*l.In : (c+1)*l.In]
		mins[c], maxs[c] = row[0], row[0]
		for i, w := range row {
			if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
				return qmodel.Op{}, fmt.Errorf("weight[%d] = %g is not finite", c*l.In+i, w)
			}
			mins[c], maxs[c] = min(mins[c], w), max(maxs[c], w)
		}
	}
	wq := quant.ParamsFromRanges(quant.Int8SymmetricPerChannel, mins, maxs)
	if err := wq.Validate(); err != nil {
		return qmodel.Op{}, fmt.Errorf("weight quantization: %w", err)
	}
	op := qmodel.Op{Type: qmodel.OpDynamicLinear, Name: l.Name, In: l.In, Out: l.Out, Act: l.Act, FloatBias: make([]float32, l.Out)}
	op.WeightScale, op.Weight = quantizeWeights(l.Weight, l.Out, l.In, wq)
	for c := range op.FloatBias {
		if l.Bias == nil {
			break
		}
		if b := l.Bias[c]; math.IsNaN(float64(b)) || math.IsInf(float64(b), 0) {
			return qmodel.Op{}, fmt.Errorf("bias[%d] = %g is not finite", c, b)
		}
		op.FloatBias[c] = l.Bias[c]
	}
	return op, nil
}
