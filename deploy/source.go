package deploy

import (
	"fmt"

	"qat/export"
	"qat/layers"
	"qat/model"
)

// ExportSource describes the quantized model m for export.Freeze, sharing
// its tensors (read them before the model changes). The model must be
// quantized with every quantizer ready and BN folded; norm is the input
// normalisation it was trained with.
func ExportSource(m *layers.Model, norm model.Norm) (export.Source, error) {
	s := m.Spec
	if !m.Quantized() {
		return export.Source{}, fmt.Errorf("model %s: %w: it is a float model (fine-tune or calibrate it first)", s.Name, export.ErrUnsupported)
	}
	if err := m.CheckReady(); err != nil {
		return export.Source{}, fmt.Errorf("model %s: %w", s.Name, err)
	}
	q := m.Quantizer("input_fake_quant")
	if q == nil {
		return export.Source{}, fmt.Errorf("model %s: %w: the input is not quantized", s.Name, export.ErrUnsupported)
	}
	src, err := source(m, norm, exportLayer)
	if err != nil {
		return export.Source{}, err
	}
	src.InputQuant, _ = q.Params()
	return src, nil
}

// FloatSource describes the model's float function for a float export
// (package onnx's FromFloat), sharing its tensors (read them before the
// model changes): every layer with its float weight and bias, the running
// statistics and affine params of its BatchNorm, and its fused activation;
// the other nodes with their attributes and inputs. Quantizers are left
// out (InputQuant, WeightQuant and ActQuant are zero), so for a quantized
// model it is the function the model computes with its quantizers off,
// which for a folded ConvBn is conv(x, w) + bias followed by BN in
// inference form, as the eval graph of the float model computes it. norm
// is the input normalisation the model was trained with.
func FloatSource(m *layers.Model, norm model.Norm) (export.Source, error) {
	return source(m, norm, floatLayer)
}

// source describes every node of m, its conv, linear, add and concat
// nodes (model.Node.Requantizes) by layer, given each one's per-sample
// input shape (its first input's).
func source(m *layers.Model, norm model.Norm, layer func(*layers.Model, model.Node, []int) (export.Layer, error)) (export.Source, error) {
	s := m.Spec
	shapes, err := s.Shapes()
	if err != nil {
		return export.Source{}, fmt.Errorf("model %s: %w", s.Name, err)
	}
	sources, err := s.Sources()
	if err != nil {
		return export.Source{}, fmt.Errorf("model %s: %w", s.Name, err)
	}
	src := export.Source{Name: s.Name, Input: [3]int{s.Input[0], s.Input[1], s.Input[2]}, Classes: s.Classes, Norm: norm}
	for i, n := range s.Nodes {
		el := export.Layer{Node: n}
		if n.Requantizes() {
			in := s.Input
			if j := sources[i][0]; j >= 0 {
				in = shapes[j]
			}
			if el, err = layer(m, n, in); err != nil {
				return export.Source{}, fmt.Errorf("model %s: %s: %w", s.Name, s.Label(i), err)
			}
		}
		src.Layers = append(src.Layers, el)
	}
	return src, nil
}

// floatLayer describes the conv, linear, add or concat node n of m with
// per-sample input shape in, without quantizers: an add or concat is its
// node alone.
func floatLayer(m *layers.Model, n model.Node, in []int) (export.Layer, error) {
	if !n.Weighted() {
		return export.Layer{Node: n}, nil
	}
	el := export.Layer{Node: n, In: in[0]}
	w := m.Param(n.Name + ".weight")
	if w == nil {
		return export.Layer{}, fmt.Errorf("no param %s.weight", n.Name)
	}
	el.Weight = w.Data
	if p := m.Param(n.Name + ".bias"); p != nil {
		el.Bias = p.Data
	}
	if n.BN != "" {
		bn, gamma, beta := m.BatchNorm(n.BN), m.Param(n.BN+".weight"), m.Param(n.BN+".bias")
		if bn == nil || gamma == nil || beta == nil {
			return export.Layer{}, fmt.Errorf("BatchNorm %s is missing", n.BN)
		}
		el.BN = &export.BN{Gamma: gamma.Data, Beta: beta.Data, Mean: bn.RunningMean, Var: bn.RunningVar, Eps: bn.Eps()}
	}
	return el, nil
}

// exportLayer describes the quantized conv, linear, add or concat node n
// of m with per-sample input shape in: floatLayer's tensors and its
// quantizers' params, BN folded. An add or concat has only its output
// quantizer's params, the zero Params when it has none (export.Freeze
// rejects that).
func exportLayer(m *layers.Model, n model.Node, in []int) (export.Layer, error) {
	if !n.Weighted() {
		el := export.Layer{Node: n}
		if q := m.Quantizer(n.Name + ".activation_post_process"); q != nil {
			el.ActQuant, _ = q.Params()
		}
		return el, nil
	}
	if n.BN != "" && !m.Folded() {
		return export.Layer{}, fmt.Errorf("%w: BatchNorm %s is not folded into it (trained with no_fold_bn)", export.ErrUnsupported, n.BN)
	}
	el, err := floatLayer(m, n, in)
	if err != nil {
		return export.Layer{}, err
	}
	wq, aq := m.Quantizer(n.Name+".weight_fake_quant"), m.Quantizer(n.Name+".activation_post_process")
	if wq == nil || aq == nil {
		return export.Layer{}, fmt.Errorf("%w: its weight or output quantizer is off", export.ErrUnsupported)
	}
	el.WeightQuant, _ = wq.Params()
	el.ActQuant, _ = aq.Params()
	return el, nil
}
