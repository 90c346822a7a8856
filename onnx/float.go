package onnx

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/types/dynamicpb"

	"qat/export"
	"qat/model"
)

// FromFloat returns the float model src describes as an ONNX model (opset
// Opset, IR version IRVersion) with the same input and output as
// FromInt8's: "input", float32 [N, C, H, W] pixels scaled to [0, 1], and
// "logits", float32 [N, Classes]. It uses only src's float fields: Name,
// Input, Classes, Norm and, per layer, its Node, In, Weight, Bias and BN;
// the quantizers are ignored.
func FromFloat(src export.Source) ([]byte, error) {
	sources, err := checkSource(src)
	if err != nil {
		return nil, fmt.Errorf("onnx: float model %s: %w", src.Name, err)
	}
	b := newGraph(src.Name)
	c, h, w := src.Input[0], src.Input[1], src.Input[2]
	x := b.input("input", typeFloat, dim{param: "N"}, dim{value: c}, dim{value: h}, dim{value: w})
	x = b.normalize(x, src.Norm)
	outs := make([]string, len(src.Layers))
	for i, l := range src.Layers {
		in := make([]string, len(sources[i]))
		for k, j := range sources[i] {
			in[k] = x
			if j >= 0 {
				in[k] = outs[j]
			}
		}
		outs[i] = b.floatLayer(l, layerName(l, i), in)
	}
	y := b.node("Identity", "logits", []string{outs[len(outs)-1]})
	b.output(y, typeFloat, dim{param: "N"}, dim{value: src.Classes})
	doc := fmt.Sprintf("qat float model %s: input: float32 [N, %d, %d, %d] pixels scaled to [0, 1]; logits: float32 [N, %d].",
		src.Name, c, h, w, src.Classes)
	out, err := b.marshal(doc, [][2]string{{"qat.model", src.Name}, {"qat.export", "float"}})
	if err != nil {
		return nil, fmt.Errorf("onnx: float model %s: %w", src.Name, err)
	}
	return out, nil
}

// floatLayer appends layer l, named n, reading the tensors in (one per
// input), and returns its output.
func (b *graph) floatLayer(l export.Layer, n string, in []string) string {
	x := in[0]
	switch l.Op {
	case model.OpConv:
		g := l.EffectiveGroups()
		args := []string{x, b.float32s(n+"/weight", []int{l.Out, l.In / g, l.Kernel, l.Kernel}, l.Weight...)}
		if l.Bias != nil {
			args = append(args, b.float32s(n+"/bias", []int{l.Out}, l.Bias...))
		}
		s, p := int64(l.EffectiveStride()), int64(l.Padding)
		attrs := []*dynamicpb.Message{intsAttr("kernel_shape", int64(l.Kernel), int64(l.Kernel)),
			intsAttr("strides", s, s), intsAttr("pads", p, p, p, p)}
		if g > 1 {
			attrs = append(attrs, intAttr("group", int64(g)))
		}
		return b.floatTail(b.node("Conv", n+"/conv", args, attrs...), n, l)
	case model.OpLinear:
		args := []string{x, b.float32s(n+"/weight", []int{l.Out, l.In}, l.Weight...)}
		if l.Bias != nil {
			args = append(args, b.float32s(n+"/bias", []int{l.Out}, l.Bias...))
		}
		return b.floatTail(b.node("Gemm", n+"/gemm", args, intAttr("transB", 1)), n, l)
	case model.OpMaxPool, model.OpAvgPool:
		op := "MaxPool"
		if l.Op == model.OpAvgPool {
			op = "AveragePool"
		}
		k, s, p := int64(l.Kernel), int64(l.EffectiveStride()), int64(l.Padding)
		attrs := []*dynamicpb.Message{intsAttr("kernel_shape", k, k), intsAttr("strides", s, s)}
		if p != 0 {
			attrs = append(attrs, intsAttr("pads", p, p, p, p))
		}
		return b.node(op, n+"/pool", []string{x}, attrs...)
	case model.OpGlobalAvgPool:
		return b.node("GlobalAveragePool", n+"/pool", []string{x})
	case model.OpFlatten:
		return b.node("Flatten", n+"/flat", []string{x}, intAttr("axis", 1))
	case model.OpReLU, model.OpReLU6:
		return b.activation(x, n, l.Op)
	case model.OpAdd:
		return b.floatTail(b.node("Add", n+"/add", in), n, l)
	default: // concat, the last type checkSource accepts
		return b.node("Concat", n+"/concat", in, intAttr("axis", 1))
	}
}

// layerName is the layer's name, or TYPE+index as export.Freeze names it.
func layerName(l export.Layer, i int) string {
	if l.Name != "" {
		return l.Name
	}
	return fmt.Sprintf("%s%d", l.Op, i)
}

// floatTail appends a conv or linear layer's BatchNorm (inference form,
// the running statistics) and the fused activation of a conv, linear or
// add layer.
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
func (b *graph) activation(x, n string, act model.OpType) string {
	if act == model.OpReLU {
		return b.node("Relu", n+"/relu", []string{x})
	}
	return b.node("Clip", n+"/relu6", []string{x, b.float32s(n+"/zero", nil, 0), b.float32s(n+"/six", nil, 6)})
}

// checkSource checks src's float fields: its graph by model's rules, the
// normalisation, and every conv's and linear's In and tensors against the
// shapes. It returns the layers' sources (model.Graph.Sources).
func checkSource(src export.Source) ([][]int, error) {
	if err := src.Norm.Validate(src.Input[0]); err != nil {
		return nil, err
	}
	g := src.Graph()
	shapes, err := g.Shapes()
	if err != nil {
		return nil, err
	}
	sources, err := g.Sources()
	if err != nil {
		return nil, err
	}
	for i, l := range src.Layers {
		if !l.Weighted() {
			continue
		}
		in := g.Input
		if j := sources[i][0]; j >= 0 {
			in = shapes[j]
		}
		if err := checkTensors(l, in); err != nil {
			return nil, fmt.Errorf("%s: %w", g.Label(i), err)
		}
	}
	return sources, nil
}

// checkTensors checks a conv or linear layer's In and tensors on its
// per-sample input shape in.
func checkTensors(l export.Layer, in []int) error {
	if in[0] != l.In {
		return fmt.Errorf("input %v, but in is %d", in, l.In)
	}
	per := l.In
	if l.Op == model.OpConv {
		per = l.In / l.EffectiveGroups() * l.Kernel * l.Kernel
	}
	if len(l.Weight) != l.Out*per {
		return fmt.Errorf("weight has %d elements, want %d", len(l.Weight), l.Out*per)
	}
	if l.Bias != nil && len(l.Bias) != l.Out {
		return fmt.Errorf("bias has %d elements, want %d", len(l.Bias), l.Out)
	}
	if bn := l.BN; bn != nil {
		for _, v := range [][]float32{bn.Gamma, bn.Beta, bn.Mean, bn.Var} {
			if len(v) != l.Out {
				return fmt.Errorf("BatchNorm has %d channels, want %d", len(v), l.Out)
			}
		}
		if !(bn.Eps > 0) || math.IsInf(float64(bn.Eps), 0) {
			return fmt.Errorf("BatchNorm eps %g: want a finite positive number", bn.Eps)
		}
	}
	return nil
}
