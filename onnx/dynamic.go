package onnx

import (
	"fmt"

	"qat/model"
	"qat/qmodel"
)

// fromDynamic is FromInt8 for a dynamic model (qmodel.Model.Dynamic): its
// static ops as FromInt8 writes them, each dynamic_linear as
// dynamicLinear, and the float outputs of the last op as "logits".
func fromDynamic(m *qmodel.Model, encoding func([]int8) WeightEncoding) ([]byte, error) {
	b := newGraph(m.Name)
	c, h, w := m.Input[0], m.Input[1], m.Input[2]
	x := b.input("input", typeFloat, dim{param: "N"}, dim{value: c}, dim{value: h}, dim{value: w})
	x = b.normalize(x, m.Norm)
	var in string // the input codes
	if !m.FloatInput {
		q := m.InputQuant
		in = b.requantize(x, "input", q, q.QMin, q.QMax)
	}
	isFloat := m.Floats()
	outs := make([]codes, len(m.Ops))    // the codes of the static ops
	floats := make([]string, len(m.Ops)) // the float tensors of the others
	for i := range m.Ops {
		op := &m.Ops[i]
		src := m.Sources(i)
		if !isFloat[i] {
			var cs []codes
			for _, j := range src {
				c := codes{name: in}
				if j >= 0 {
					c = outs[j]
				}
				cs = append(cs, c)
			}
			y, err := b.int8Op(op, cs, sourceQuants(m, i), m.Requant, encoding)
			if err != nil {
				return nil, fmt.Errorf("onnx: int8 model %s: op %d (%s): %w", m.Name, i, op.Name, err)
			}
			outs[i] = y
			continue
		}
		var v string // the op's input values
		switch j := src[0]; {
		case j == -1 && m.FloatInput:
			v = x
		case j >= 0 && isFloat[j]:
			v = floats[j]
		default: // codes, which only a dynamic_linear reads
			c := codes{name: in}
			if j >= 0 {
				c = outs[j]
			}
			if c.columns {
				c.name = b.node("Flatten", op.Name+"/in/flat", []string{c.name}, intAttr("axis", 1))
			}
			v = b.dequantize(c.name, op.Name+"/in", sourceQuants(m, i)[0])
		}
		if op.Type == qmodel.OpDynamicLinear {
			floats[i] = b.dynamicLinear(v, op, encoding(op.Weight))
		} else { // a flatten of floats
			floats[i] = b.node("Flatten", op.Name+"/flat", []string{v}, intAttr("axis", 1))
		}
	}
	y := b.node("Identity", "logits", []string{floats[len(floats)-1]})
	b.output(y, typeFloat, dim{param: "N"}, dim{value: m.Classes})
	doc := fmt.Sprintf("qat int8 model %s with dynamically quantized linear layers (%s requantization of the others): "+
		"input: float32 [N, %d, %d, %d] pixels scaled to [0, 1]; logits: float32 [N, %d].", m.Name, m.Requant, c, h, w, m.Classes)
	buf, err := b.marshal(doc, [][2]string{{"qat.model", m.Name}, {"qat.export", "int8-dynamic"}, {"qat.requant", string(m.Requant)}})
	if err != nil {
		return nil, fmt.Errorf("onnx: int8 model %s: %w", m.Name, err)
	}
	return buf, nil
}

// dynamicLinear appends the dynamic_linear op on the float32 values x,
// [N, In], with its weights encoded as enc, and returns its float32
// outputs [N, Out]. Each sample (row) is quantized with its own range,
// DynamicQuantizeLinear's arithmetic (infer.DynamicParams) spelled out
// per row, and the rest is the graph of onnxruntime's dynamic
// quantization with a per-row zero point:
//
//	min = Min(ReduceMin(x, axis 1), 0), max = Max(ReduceMax(x, axis 1), 0)
//	scale = Where(Equal(max, min), 1, Div(Sub(max, min), 255))
//	zp = Cast(Round(Clip(Sub(0, Div(min, scale)), 0, 255)), uint8)
//	q = QuantizeLinear(x, scale, zp, axis 0)   (MlasQuantizeLinear per row)
//	acc = Sub(MatMulInteger(q, W^T), Mul(Cast(zp, int32), colsum(W)))
//	y = Add(Mul(Cast(acc, float), Mul(scale, w_scale)), bias), then Relu or Clip(0, 6)
//
// MatMulInteger takes only a per-tensor zero point for its first input,
// so it sums q w and the graph subtracts zp * sum w in int32, which is
// sum (q - zp) w exactly (infer.finishDynamic). Every float node is one
// IEEE float32 operation in infer's order; no DynamicQuantizeLinear,
// MatMulInteger then Cast group forms for onnxruntime to fuse into
// DynamicQuantizeMatMul or MatMulIntegerToFloat, whose float arithmetic
// is their own.
func (b *graph) dynamicLinear(x string, op *qmodel.Op, enc WeightEncoding) string {
	n := op.Name
	axes := intsAttr("axes", 1)
	keep := intAttr("keepdims", 1)
	zero, flat := b.float32s(n+"/zero", nil, 0), b.int64s(n+"/flat", []int{1}, -1)
	mn := b.node("Min", n+"/min", []string{b.node("ReduceMin", n+"/row_min", []string{x}, axes, keep), zero})
	mx := b.node("Max", n+"/max", []string{b.node("ReduceMax", n+"/row_max", []string{x}, axes, keep), zero})
	scale := b.node("Div", n+"/range_scale", []string{b.node("Sub", n+"/range", []string{mx, mn}), b.float32s(n+"/codes", nil, 255)})
	scale = b.node("Where", n+"/x_scale", []string{b.node("Equal", n+"/empty", []string{mx, mn}), b.float32s(n+"/one", nil, 1), scale})
	z := b.node("Sub", n+"/zero_point_real", []string{zero, b.node("Div", n+"/min_steps", []string{mn, scale})})
	z = b.node("Clip", n+"/zero_point_clipped", []string{z, zero, b.float32s(n+"/max_code", nil, 255)})
	z = b.node("Round", n+"/zero_point_rounded", []string{z})
	zp := b.node("Cast", n+"/x_zero_point", []string{z}, intAttr("to", typeUint8))
	q := b.node("QuantizeLinear", n+"/x_codes", []string{x,
		b.node("Reshape", n+"/x_scale_flat", []string{scale, flat}),
		b.node("Reshape", n+"/x_zero_point_flat", []string{zp, flat})}, intAttr("axis", 0))

	// W^T, [In, Out], in the encoding's type.
	wt := make([]int8, len(op.Weight))
	sums := make([]int32, op.Out)
	for o := range op.Out {
		for i, w := range op.Weight[o*op.In : (o+1)*op.In] {
			wt[i*op.Out+o] = w
			sums[o] += int32(w)
		}
	}
	inputs := []string{q}
	dims := []int{op.In, op.Out}
	if enc == WeightsInt8 {
		inputs = append(inputs, b.int8s(n+"/weight", dims, wt...))
	} else {
		u := make([]uint8, len(wt))
		for i, w := range wt {
			u[i] = uint8(int16(w) + uint8WeightZeroPoint)
		}
		inputs = append(inputs, b.uint8s(n+"/weight", dims, u...),
			b.uint8s(n+"/x_codes_zero_point", nil, 0), b.uint8s(n+"/weight_zero_point", nil, uint8WeightZeroPoint))
	}
	acc := b.node("MatMulInteger", n+"/sums", inputs)
	corr := b.node("Mul", n+"/zero_point_sums", []string{b.node("Cast", n+"/x_zero_point_int", []string{zp}, intAttr("to", typeInt32)),
		b.int32s(n+"/weight_sums", []int{op.Out}, sums...)})
	acc = b.node("Sub", n+"/acc", []string{acc, corr})
	s := b.node("Mul", n+"/scale", []string{scale, b.float32s(n+"/weight_scale", []int{op.Out}, op.WeightScale...)})
	y := b.node("Mul", n+"/product", []string{b.node("Cast", n+"/acc_float", []string{acc}, intAttr("to", typeFloat)), s})
	y = b.node("Add", n+"/values", []string{y, b.float32s(n+"/bias", []int{op.Out}, op.FloatBias...)})
	switch op.Act {
	case model.OpReLU:
		y = b.node("Relu", n+"/relu", []string{y})
	case model.OpReLU6:
		y = b.node("Clip", n+"/relu6", []string{y, zero, b.float32s(n+"/six", nil, 6)})
	}
	return y
}
