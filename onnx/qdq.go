package onnx

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/dynamicpb"

	"qat/model"
	"qat/qmodel"
)

// QDQOptions are FromInt8QDQ's choices. The zero value writes opset Opset
// with every weight tensor int8.
type QDQOptions struct {
	// Int4Weights writes the weights of the conv and linear ops of at most
	// 4 bits (WeightBits 4 or 2) as int4 tensors, two codes a byte, at
	// opset OpsetInt4 and IR version IRVersionInt4; wider weights stay
	// int8. A model without such weights is an error.
	Int4Weights bool
}

// ErrNoQDQ is wrapped by FromInt8QDQ's error for a model that a QDQ graph
// cannot express.
var ErrNoQDQ = errors.New("no QDQ form")

// QDQInexact says why onnxruntime's results for a QDQ model are not in
// general qat's codes bit for bit (see the package documentation).
const QDQInexact = "a QDQ graph is float arithmetic between QuantizeLinear and DequantizeLinear pairs: " +
	"onnxruntime sums convolutions and matrix products in float32 (in integers where its graph optimizations " +
	"fuse a group into an integer kernel) and quantizes by dividing by the scale where qat multiplies by its " +
	"float32 reciprocal, so output codes can differ by a few LSB from the int8 runtime's"

// FromInt8QDQ returns m as an ONNX model in QDQ form: float operators
// (Conv, Gemm, Add, MaxPool, AveragePool, GlobalAveragePool, Concat,
// Flatten, Relu, Clip) between QuantizeLinear and DequantizeLinear pairs
// that carry m's scales and zero points, with int8 (or int4) weight and
// int32 bias initializers read through DequantizeLinear; the form that
// TensorRT, OpenVINO and QNN take (TensorRT only int8 with zero point 0:
// a model with signed symmetric activations). Input and output are
// FromInt8's. The
// graph computes m's quantization but not its arithmetic bit for bit
// (QDQInexact); the package documentation gives the graph. m must pass
// m.Validate, have float requantization, and multipliers
// float32(float32(s_in*s_w[c])/s_out) of its scales, as export.Freeze
// makes them; otherwise the error wraps ErrNoQDQ.
func FromInt8QDQ(m *qmodel.Model, o QDQOptions) ([]byte, error) {
	if m == nil {
		return nil, errors.New("onnx: nil int8 model")
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: int8 model %s: %w", m.Name, err)
	}
	if err := checkQDQ(m, o); err != nil {
		return nil, fmt.Errorf("onnx: int8 model %s: %w", m.Name, err)
	}
	b := newGraph(m.Name)
	if o.Int4Weights {
		b.ir, b.opset = IRVersionInt4, OpsetInt4
	}
	c, h, w := m.Input[0], m.Input[1], m.Input[2]
	x := b.input("input", typeFloat, dim{param: "N"}, dim{value: c}, dim{value: h}, dim{value: w})
	x = b.normalize(x, m.Norm)
	in := m.InputQuant
	x = b.qdq(x, "input", in, in.QMin, in.QMax)
	outs := make([]string, len(m.Ops))
	for i := range m.Ops {
		var xs []string
		for _, j := range m.Sources(i) {
			if j < 0 {
				xs = append(xs, x)
			} else {
				xs = append(xs, outs[j])
			}
		}
		outs[i] = b.qdqOp(&m.Ops[i], xs, sourceQuants(m, i)[0], o.Int4Weights)
	}
	y := b.node("Identity", "logits", []string{outs[len(outs)-1]})
	b.output(y, typeFloat, dim{param: "N"}, dim{value: m.Classes})
	doc := fmt.Sprintf("qat int8 model %s in ONNX QDQ form (opset %d): "+
		"input: float32 [N, %d, %d, %d] pixels scaled to [0, 1]; logits: float32 [N, %d], the dequantized output codes.",
		m.Name, b.opset, c, h, w, m.Classes)
	buf, err := b.marshal(doc, [][2]string{{"qat.model", m.Name}, {"qat.export", "int8-qdq"}, {"qat.requant", string(m.Requant)}})
	if err != nil {
		return nil, fmt.Errorf("onnx: int8 model %s: %w", m.Name, err)
	}
	return buf, nil
}

// checkQDQ returns an error wrapping ErrNoQDQ when a QDQ graph cannot
// express m, and an error when o asks for int4 weights that m lacks.
func checkQDQ(m *qmodel.Model, o QDQOptions) error {
	if m.Dynamic() {
		return fmt.Errorf("%w: model %s is quantized dynamically (format %q), which a QDQ graph of static scales cannot carry (FromInt8 writes it)", ErrNoQDQ, m.Name, qmodel.FormatV4)
	}
	if m.Requant != qmodel.RequantFloat {
		return fmt.Errorf("%w: %s requantization: a QDQ graph requantizes in float by its tensors' scales, "+
			"so it cannot carry integer multipliers and shifts (export with float requantization)", ErrNoQDQ, m.Requant)
	}
	narrow := false
	for i := range m.Ops {
		op := &m.Ops[i]
		if !op.Node().Weighted() {
			continue
		}
		narrow = narrow || op.WeightBits <= 4
		in := sourceQuants(m, i)[0]
		for c, mult := range op.Multiplier {
			if want := float32(in.Scale*op.WeightScale[c]) / op.Output.Scale; mult != want {
				return fmt.Errorf("%w: op %d (%s) channel %d: multiplier %g is not float32(input scale * weight scale) / output scale = %g, "+
					"and a QDQ graph carries only the scales", ErrNoQDQ, i, op.Name, c, mult, want)
			}
		}
	}
	if o.Int4Weights && !narrow {
		return errors.New("int4 weights asked for, but no conv or linear op has weights of 4 bits or fewer")
	}
	return nil
}

// qdqOp appends op reading the float32 tensors x (one per source: the
// dequantized codes, quantized as in is for the first) and returns its
// output, the dequantized codes.
// int4 writes weights of at most 4 bits as int4.
func (b *graph) qdqOp(op *qmodel.Op, x []string, in qmodel.Quant, int4 bool) string {
	n := op.Name
	switch op.Type {
	case model.OpConv, model.OpLinear:
		return b.qdqWeighted(x[0], op, in, int4)
	case model.OpMaxPool:
		return b.qdq(b.node("MaxPool", n+"/pool", x, poolAttrs(op)...), n, op.Output, 0, 255)
	case model.OpAvgPool:
		return b.qdq(b.node("AveragePool", n+"/pool", x, poolAttrs(op)...), n, op.Output, 0, 255)
	case model.OpGlobalAvgPool:
		return b.qdq(b.node("GlobalAveragePool", n+"/pool", x), n, op.Output, 0, 255)
	case model.OpFlatten:
		return b.qdq(b.node("Flatten", n+"/flat", x, intAttr("axis", 1)), n, op.Output, 0, 255)
	case model.OpReLU, model.OpReLU6:
		if op.ClampMin == 0 && op.ClampMax == 255 {
			return x[0]
		}
		return b.qdq(x[0], n, op.Output, op.ClampMin, op.ClampMax)
	case model.OpAdd:
		return b.qdq(b.node("Add", n+"/sum", x), n, op.Output, op.ClampMin, op.ClampMax)
	default: // concat, the last type Validate accepts
		return b.qdq(b.node("Concat", n+"/concat", x, intAttr("axis", 1)), n, op.Output, op.ClampMin, op.ClampMax)
	}
}

// qdqWeighted appends a conv (Conv) or linear (Gemm, transB 1) op reading
// the float32 tensor x, dequantized codes quantized as in: the weight
// codes (int8, or int4 when int4 and WeightBits <= 4) and the int32 bias
// through per-channel DequantizeLinear (axis 0; the bias scale
// float32(in.Scale*WeightScale[c]), the accumulator's), then the output's
// clamp, quantization and dequantization.
func (b *graph) qdqWeighted(x string, op *qmodel.Op, in qmodel.Quant, int4 bool) string {
	n := op.Name
	g := op.Node().EffectiveGroups()
	dims := []int{op.Out, op.In}
	if op.Type == model.OpConv {
		dims = []int{op.Out, op.In / g, op.Kernel, op.Kernel}
	}
	var w, wz string
	if int4 && op.WeightBits <= 4 {
		w = b.int4s(n+"/weight", dims, op.Weight...)
		wz = b.int4s(n+"/weight_zero_point", []int{op.Out}, make([]int8, op.Out)...)
	} else {
		w = b.int8s(n+"/weight", dims, op.Weight...)
		wz = b.int8s(n+"/weight_zero_point", []int{op.Out}, make([]int8, op.Out)...)
	}
	w = b.node("DequantizeLinear", n+"/weight_value",
		[]string{w, b.float32s(n+"/weight_scale", []int{op.Out}, op.WeightScale...), wz}, intAttr("axis", 0))
	bs := make([]float32, op.Out)
	for c, s := range op.WeightScale {
		bs[c] = in.Scale * s
	}
	bias := b.node("DequantizeLinear", n+"/bias_value",
		[]string{b.int32s(n+"/bias", []int{op.Out}, op.Bias...), b.float32s(n+"/bias_scale", []int{op.Out}, bs...)}, intAttr("axis", 0))
	var y string
	if op.Type == model.OpConv {
		k, s, p := int64(op.Kernel), int64(op.Stride), int64(op.Padding)
		attrs := []*dynamicpb.Message{intsAttr("kernel_shape", k, k), intsAttr("strides", s, s), intsAttr("pads", p, p, p, p)}
		if g > 1 {
			attrs = append(attrs, intAttr("group", int64(g)))
		}
		y = b.node("Conv", n+"/conv", []string{x, w, bias}, attrs...)
	} else {
		y = b.node("Gemm", n+"/gemm", []string{x, w, bias}, intAttr("transB", 1))
	}
	return b.qdq(y, n, op.Output, op.ClampMin, op.ClampMax)
}

// qdq appends the quantization of the float32 values x to the codes of q
// clamped to [lo, hi] and their dequantization, and returns the
// dequantized values: the clamp in float (qdqClamp), QuantizeLinear and
// DequantizeLinear, both with the one scale and zero point initializers.
// The codes are uint8 with q's zero point, or, for a zero point of 128
// (signedZeroPoint), int8 q-128 with zero point 0: the same values and
// the same saturation, [0, 255] in q's codes.
func (b *graph) qdq(x, prefix string, q qmodel.Quant, lo, hi int32) string {
	x = b.qdqClamp(x, prefix, q, lo, hi)
	s := b.float32s(prefix+"/scale", nil, q.Scale)
	var z string
	if q.ZeroPoint == signedZeroPoint {
		z = b.int8s(prefix+"/zero_point", nil, 0)
	} else {
		z = b.uint8s(prefix+"/zero_point", nil, uint8(q.ZeroPoint))
	}
	x = b.node("QuantizeLinear", prefix+"/codes", []string{x, s, z})
	return b.node("DequantizeLinear", prefix+"/value", []string{x, s, z})
}

// signedZeroPoint is the zero point of the codes of a signed symmetric
// 8-bit activation scheme (codes -128..127 stored offset by 128, as
// export.ActQuant does), which the QDQ graph writes as int8 with zero
// point 0, the only activation form TensorRT takes.
const signedZeroPoint = 128

// qdqClamp appends to the float32 values x the clamp to the codes [lo,
// hi] of q that QuantizeLinear's saturation to [0, 255] does not do:
// nothing for [0, 255], Relu for [ZeroPoint, 255], otherwise Clip to the
// values of the codes lo and hi, float32(lo-ZeroPoint)*Scale and
// float32(hi-ZeroPoint)*Scale (a bound b quantizes to its code: b/Scale
// is within a few float32 roundings of the integer, |lo-ZeroPoint| <=
// 255, so it rounds to it, and QuantizeLinear is monotonic, so clamping
// the values clamps the codes).
func (b *graph) qdqClamp(x, prefix string, q qmodel.Quant, lo, hi int32) string {
	switch {
	case lo == 0 && hi == 255:
		return x
	case lo == q.ZeroPoint && hi == 255:
		return b.node("Relu", prefix+"/relu", []string{x})
	}
	return b.node("Clip", prefix+"/clip", []string{x,
		b.float32s(prefix+"/clip_min", nil, float32(lo-q.ZeroPoint)*q.Scale),
		b.float32s(prefix+"/clip_max", nil, float32(hi-q.ZeroPoint)*q.Scale)})
}
