package layers

import (
	"fmt"

	"qat/export"
	"qat/qmodel"
)

// stride returns a layer's stride with its default: the kernel for pools,
// 1 for convs.
func (l LayerSpec) stride() int {
	switch {
	case l.Stride != 0:
		return l.Stride
	case l.Type == TypeMaxPool || l.Type == TypeAvgPool:
		return l.Kernel
	}
	return 1
}

// ExportSource describes the model for export.Freeze, sharing its tensors
// (read them before the model changes). The model must be quantized with
// every quantizer ready and BN folded; norm is the input normalisation
// the model was trained with.
func (m *Model) ExportSource(norm qmodel.Norm) (export.Source, error) {
	s := m.Spec
	if !m.Quantized() {
		return export.Source{}, fmt.Errorf("model %s: %w: it is a float model (fine-tune or calibrate it first)", s.Name, export.ErrUnsupported)
	}
	if err := m.checkReady(); err != nil {
		return export.Source{}, fmt.Errorf("model %s: %w", s.Name, err)
	}
	src := export.Source{Name: s.Name, Input: [3]int{s.Input[0], s.Input[1], s.Input[2]}, Classes: s.Classes, Norm: norm}
	q := m.Quantizer("input_fake_quant")
	if q == nil {
		return export.Source{}, fmt.Errorf("model %s: %w: the input is not quantized", s.Name, export.ErrUnsupported)
	}
	src.InputQuant, _ = q.Params()
	shapes, err := s.Shapes()
	if err != nil {
		return export.Source{}, err
	}
	in := s.Input
	for i, l := range s.Layers {
		var el export.Layer
		if l.Quantized() {
			if el, err = m.exportLayer(l, in); err != nil {
				return export.Source{}, fmt.Errorf("model %s: %w", s.Name, err)
			}
		} else {
			el = export.Layer{Type: qmodel.OpType(l.Type), Name: l.Name, Kernel: l.Kernel, Stride: l.stride()}
		}
		src.Layers = append(src.Layers, el)
		in = shapes[i]
	}
	return src, nil
}

// exportLayer describes the conv or linear layer l with per-sample input
// shape in.
func (m *Model) exportLayer(l LayerSpec, in []int) (export.Layer, error) {
	el := export.Layer{Type: qmodel.OpType(l.Type), Name: l.Name, In: in[0], Out: l.Out, Act: qmodel.OpType(l.Act)}
	if l.Type == TypeConv {
		el.Kernel, el.Stride, el.Padding = l.Kernel, l.stride(), l.Padding
	}
	el.Weight = m.Param(l.Name + ".weight").Data
	if p := m.Param(l.Name + ".bias"); p != nil {
		el.Bias = p.Data
	}
	if bn := m.bns[l.BN]; bn != nil {
		if !m.Folded() {
			return export.Layer{}, fmt.Errorf("layer %s: %w: BatchNorm %s is not folded into it (trained with no_fold_bn)", l.Name, export.ErrUnsupported, l.BN)
		}
		el.BN = &export.BN{Gamma: m.Param(l.BN + ".weight").Data, Beta: m.Param(l.BN + ".bias").Data,
			Mean: bn.RunningMean, Var: bn.RunningVar, Eps: bn.Eps()}
	}
	wq, aq := m.Quantizer(l.Name+".weight_fake_quant"), m.Quantizer(l.Name+".activation_post_process")
	if wq == nil || aq == nil {
		return export.Layer{}, fmt.Errorf("layer %s: %w: its weight or output quantizer is off", l.Name, export.ErrUnsupported)
	}
	el.WeightQuant, _ = wq.Params()
	el.ActQuant, _ = aq.Params()
	return el, nil
}
