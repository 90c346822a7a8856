package layers

import (
	"fmt"

	"qat/export"
	"qat/qmodel"
)

// FloatSource describes the model's float function for a float export
// (package onnx's FromFloat), sharing its tensors (read them before the
// model changes): every layer with its float weight and bias, the running
// statistics and affine params of its BatchNorm, and its fused activation;
// pools with their kernel and stride. Quantizers are left out (InputQuant,
// WeightQuant and ActQuant are zero), so for a quantized model it is the
// function the model computes with its quantizers off, which for a folded
// ConvBn is conv(x, w) + bias followed by BN in inference form, as the
// eval graph of the float model computes it. norm is the input
// normalisation the model was trained with.
func (m *Model) FloatSource(norm qmodel.Norm) (export.Source, error) {
	s := m.Spec
	shapes, err := s.Shapes()
	if err != nil {
		return export.Source{}, fmt.Errorf("model %s: %w", s.Name, err)
	}
	src := export.Source{Name: s.Name, Input: [3]int{s.Input[0], s.Input[1], s.Input[2]}, Classes: s.Classes, Norm: norm}
	in := s.Input
	for i, l := range s.Layers {
		el := export.Layer{Type: qmodel.OpType(l.Type), Name: l.Name}
		switch l.Type {
		case TypeConv, TypeLinear:
			if el, err = m.floatLayer(l, in); err != nil {
				return export.Source{}, fmt.Errorf("model %s: layer %d (%s): %w", s.Name, i, l.Name, err)
			}
		case TypeMaxPool, TypeAvgPool:
			el.Kernel, el.Stride = l.Kernel, l.stride()
		}
		src.Layers = append(src.Layers, el)
		in = shapes[i]
	}
	return src, nil
}

// floatLayer describes the conv or linear layer l with per-sample input
// shape in, without quantizers.
func (m *Model) floatLayer(l LayerSpec, in []int) (export.Layer, error) {
	el := export.Layer{Type: qmodel.OpType(l.Type), Name: l.Name, In: in[0], Out: l.Out, Act: qmodel.OpType(l.Act)}
	if l.Type == TypeConv {
		el.Kernel, el.Stride, el.Padding = l.Kernel, l.stride(), l.Padding
	}
	w := m.Param(l.Name + ".weight")
	if w == nil {
		return export.Layer{}, fmt.Errorf("no param %s.weight", l.Name)
	}
	el.Weight = w.Data
	if p := m.Param(l.Name + ".bias"); p != nil {
		el.Bias = p.Data
	}
	if l.BN != "" {
		bn, gamma, beta := m.bns[l.BN], m.Param(l.BN+".weight"), m.Param(l.BN+".bias")
		if bn == nil || gamma == nil || beta == nil {
			return export.Layer{}, fmt.Errorf("BatchNorm %s is missing", l.BN)
		}
		el.BN = &export.BN{Gamma: gamma.Data, Beta: beta.Data, Mean: bn.RunningMean, Var: bn.RunningVar, Eps: bn.Eps()}
	}
	return el, nil
}
