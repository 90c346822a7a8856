package onnx

import (
	"errors"
	"fmt"
	"math"

	"qat/export"
	"qat/qmodel"
)

// FromFloat returns the float model src describes as an ONNX model (opset
// Opset, IR version IRVersion) with the same input and output as
// FromInt8's: "input", float32 [N, C, H, W] pixels scaled to [0, 1], and
// "logits", float32 [N, Classes]. It uses only src's float fields: Name,
// Input, Classes, Norm and, per layer, Type, Name, In, Out, Kernel,
// Stride, Padding, Weight, Bias, BN and Act; the quantizers are ignored.
func FromFloat(src export.Source) ([]byte, error) {
	if err := checkSource(src); err != nil {
		return nil, fmt.Errorf("onnx: float model %s: %w", src.Name, err)
	}
	b := newGraph(src.Name)
	c, h, w := src.Input[0], src.Input[1], src.Input[2]
	x := b.input("input", typeFloat, dim{param: "N"}, dim{value: c}, dim{value: h}, dim{value: w})
	x = b.normalize(x, src.Norm)
	for i, l := range src.Layers {
		n := layerName(l, i)
		switch l.Type {
		case qmodel.OpConv:
			in := []string{x, b.float32s(n+"/weight", []int{l.Out, l.In, l.Kernel, l.Kernel}, l.Weight...)}
			if l.Bias != nil {
				in = append(in, b.float32s(n+"/bias", []int{l.Out}, l.Bias...))
			}
			s, p := int64(l.Stride), int64(l.Padding)
			x = b.node("Conv", n+"/conv", in, intsAttr("kernel_shape", int64(l.Kernel), int64(l.Kernel)),
				intsAttr("strides", s, s), intsAttr("pads", p, p, p, p))
			x = b.floatTail(x, n, l)
		case qmodel.OpLinear:
			in := []string{x, b.float32s(n+"/weight", []int{l.Out, l.In}, l.Weight...)}
			if l.Bias != nil {
				in = append(in, b.float32s(n+"/bias", []int{l.Out}, l.Bias...))
			}
			x = b.node("Gemm", n+"/gemm", in, intAttr("transB", 1))
			x = b.floatTail(x, n, l)
		case qmodel.OpMaxPool, qmodel.OpAvgPool:
			op := "MaxPool"
			if l.Type == qmodel.OpAvgPool {
				op = "AveragePool"
			}
			k, s := int64(l.Kernel), int64(l.Stride)
			x = b.node(op, n+"/pool", []string{x}, intsAttr("kernel_shape", k, k), intsAttr("strides", s, s))
		case qmodel.OpFlatten:
			x = b.node("Flatten", n+"/flat", []string{x}, intAttr("axis", 1))
		case qmodel.OpReLU, qmodel.OpReLU6:
			x = b.activation(x, n, l.Type)
		}
	}
	x = b.node("Identity", "logits", []string{x})
	b.output(x, typeFloat, dim{param: "N"}, dim{value: src.Classes})
	doc := fmt.Sprintf("qat float model %s: input: float32 [N, %d, %d, %d] pixels scaled to [0, 1]; logits: float32 [N, %d].",
		src.Name, c, h, w, src.Classes)
	out, err := b.marshal(doc, [][2]string{{"qat.model", src.Name}, {"qat.export", "float"}})
	if err != nil {
		return nil, fmt.Errorf("onnx: float model %s: %w", src.Name, err)
	}
	return out, nil
}

// layerName is the layer's name, or TYPE+index as export.Freeze names it.
func layerName(l export.Layer, i int) string {
	if l.Name != "" {
		return l.Name
	}
	return fmt.Sprintf("%s%d", l.Type, i)
}

// floatTail appends a conv or linear layer's BatchNorm (inference form,
// the running statistics) and fused activation.
func (b *graph) floatTail(x, n string, l export.Layer) string {
	if bn := l.BN; bn != nil {
		x = b.node("BatchNormalization", n+"/bn", []string{x,
			b.float32s(n+"/bn.weight", []int{l.Out}, bn.Gamma...),
			b.float32s(n+"/bn.bias", []int{l.Out}, bn.Beta...),
			b.float32s(n+"/bn.running_mean", []int{l.Out}, bn.Mean...),
			b.float32s(n+"/bn.running_var", []int{l.Out}, bn.Var...),
		}, floatAttr("epsilon", bn.Eps))
	}
	if l.Act != "" {
		x = b.activation(x, n, l.Act)
	}
	return x
}

// activation appends Relu, or Clip to [0, 6] for ReLU6.
func (b *graph) activation(x, n string, act qmodel.OpType) string {
	if act == qmodel.OpReLU {
		return b.node("Relu", n+"/relu", []string{x})
	}
	return b.node("Clip", n+"/relu6", []string{x, b.float32s(n+"/zero", nil, 0), b.float32s(n+"/six", nil, 6)})
}

// checkSource checks src's float fields and that its layers' shapes chain
// from Input to [Classes], as qmodel.Model.Shapes does for int8 models.
func checkSource(src export.Source) error {
	for _, d := range src.Input {
		if d < 1 || d > qmodel.MaxDim {
			return fmt.Errorf("input shape %v: every dimension must be in [1, %d]", src.Input, qmodel.MaxDim)
		}
	}
	if src.Classes < 1 {
		return fmt.Errorf("classes %d: want at least 1", src.Classes)
	}
	if n := src.Norm; !finite(n.Mean) || !finite(n.Std) || n.Std < 0 {
		return fmt.Errorf("normalisation %+v: want a finite mean and a finite std >= 0", n)
	}
	if len(src.Layers) == 0 {
		return errors.New("no layers")
	}
	shape := src.Input[:]
	for i, l := range src.Layers {
		var err error
		if shape, err = layerShape(l, shape); err != nil {
			return fmt.Errorf("layer %d (%s %s): %w", i, l.Type, l.Name, err)
		}
	}
	if len(shape) != 1 || shape[0] != src.Classes {
		return fmt.Errorf("the last layer gives shape %v per sample, want [%d] (classes)", shape, src.Classes)
	}
	return nil
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// layerShape checks l on per-sample input shape in and returns its output
// shape.
func layerShape(l export.Layer, in []int) ([]int, error) {
	switch l.Type {
	case qmodel.OpConv, qmodel.OpLinear:
		return weightedShape(l, in)
	case qmodel.OpMaxPool, qmodel.OpAvgPool:
		if len(in) != 3 {
			return nil, fmt.Errorf("input %v is not [C, H, W]", in)
		}
		if l.Kernel < 1 || l.Stride < 1 || l.Kernel > in[1] || l.Kernel > in[2] {
			return nil, fmt.Errorf("kernel %d and stride %d on input %v: want 1 <= kernel <= H, W and stride >= 1", l.Kernel, l.Stride, in)
		}
		return []int{in[0], (in[1]-l.Kernel)/l.Stride + 1, (in[2]-l.Kernel)/l.Stride + 1}, nil
	case qmodel.OpFlatten:
		n := 1
		for _, d := range in {
			n *= d
		}
		return []int{n}, nil
	case qmodel.OpReLU, qmodel.OpReLU6:
		return in, nil
	}
	return nil, fmt.Errorf("unknown layer type %q", l.Type)
}

func weightedShape(l export.Layer, in []int) ([]int, error) {
	if l.Out < 1 {
		return nil, fmt.Errorf("out %d: want at least 1", l.Out)
	}
	switch l.Act {
	case "", qmodel.OpReLU, qmodel.OpReLU6:
	default:
		return nil, fmt.Errorf("unknown activation %q", l.Act)
	}
	var out []int
	per := l.In
	if l.Type == qmodel.OpConv {
		if len(in) != 3 || in[0] != l.In {
			return nil, fmt.Errorf("input %v, want [%d, H, W]", in, l.In)
		}
		k, s, p := l.Kernel, l.Stride, l.Padding
		if k < 1 || s < 1 || p < 0 || k > in[1]+2*p || k > in[2]+2*p {
			return nil, fmt.Errorf("kernel %d, stride %d, padding %d on input %v: want 1 <= kernel <= H+2P, W+2P, stride >= 1, padding >= 0", k, s, p, in)
		}
		per *= k * k
		out = []int{l.Out, (in[1]+2*p-k)/s + 1, (in[2]+2*p-k)/s + 1}
	} else {
		if len(in) != 1 || in[0] != l.In {
			return nil, fmt.Errorf("input %v, want [%d]", in, l.In)
		}
		out = []int{l.Out}
	}
	if len(l.Weight) != l.Out*per {
		return nil, fmt.Errorf("weight has %d elements, want %d", len(l.Weight), l.Out*per)
	}
	if l.Bias != nil && len(l.Bias) != l.Out {
		return nil, fmt.Errorf("bias has %d elements, want %d", len(l.Bias), l.Out)
	}
	if bn := l.BN; bn != nil {
		for _, v := range [][]float32{bn.Gamma, bn.Beta, bn.Mean, bn.Var} {
			if len(v) != l.Out {
				return nil, fmt.Errorf("BatchNorm has %d channels, want %d", len(v), l.Out)
			}
		}
		if !(bn.Eps > 0) || !finite(bn.Eps) {
			return nil, fmt.Errorf("BatchNorm eps %g: want a finite positive number", bn.Eps)
		}
	}
	return out, nil
}
