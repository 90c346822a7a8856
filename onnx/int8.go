package onnx

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/types/dynamicpb"

	"qat/model"
	"qat/qmodel"
)

// FromInt8 returns m as an ONNX model in QOperator form (opset Opset, IR
// version IRVersion) that onnxruntime runs with the arithmetic of qat's
// int8 runtime: graph input "input", float32 [N, C, H, W] pixels scaled to
// [0, 1] (float32(p)/255 for a pixel p), graph output "logits", float32
// [N, Classes], the dequantized output codes. The package documentation
// gives the graph and the exactness argument. m must pass m.Validate.
func FromInt8(m *qmodel.Model) ([]byte, error) {
	return fromInt8(m, WeightEncodingOf)
}

// fromInt8 is FromInt8 with the weight encoding of each conv and linear op
// chosen by encoding (the tests force WeightsInt8 to show what it costs).
func fromInt8(m *qmodel.Model, encoding func([]int8) WeightEncoding) ([]byte, error) {
	if m == nil {
		return nil, errors.New("onnx: nil int8 model")
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: int8 model %s: %w", m.Name, err)
	}
	b := newGraph(m.Name)
	x := b.int8Input(m)
	x, out, err := b.int8Ops(x, m, encoding)
	if err != nil {
		return nil, err
	}
	b.int8Output(x, out, m.Classes)
	c, h, w := m.Input[0], m.Input[1], m.Input[2]
	doc := fmt.Sprintf("qat int8 model %s (%s requantization) in ONNX QOperator form: "+
		"input: float32 [N, %d, %d, %d] pixels scaled to [0, 1]; logits: float32 [N, %d], the dequantized output codes.",
		m.Name, m.Requant, c, h, w, m.Classes)
	buf, err := b.marshal(doc, [][2]string{{"qat.model", m.Name}, {"qat.export", "int8"}, {"qat.requant", string(m.Requant)}})
	if err != nil {
		return nil, fmt.Errorf("onnx: int8 model %s: %w", m.Name, err)
	}
	return buf, nil
}

// int8Input appends the graph input "input" of m, float32 [N, C, H, W],
// and its normalisation and quantization to m's input codes, which it
// returns.
func (b *graph) int8Input(m *qmodel.Model) string {
	c, h, w := m.Input[0], m.Input[1], m.Input[2]
	x := b.input("input", typeFloat, dim{param: "N"}, dim{value: c}, dim{value: h}, dim{value: w})
	x = b.normalize(x, m.Norm)
	in := m.InputQuant
	// quant.Code: clamp(roundHalfEven(x * float32(1/Scale)) + ZeroPoint).
	x = b.node("Mul", "input/scaled", []string{x, b.float32s("input/inv_scale", nil, 1/in.Scale)})
	x = b.quantize(x, "input", uint8(in.ZeroPoint))
	return b.clip(x, "input", in.QMin, in.QMax)
}

// int8Ops appends m's ops to the input codes x, each conv and linear op
// with its weights encoded as encoding chooses; it returns the output
// codes as [N, Classes] and their quantization.
func (b *graph) int8Ops(x string, m *qmodel.Model, encoding func([]int8) WeightEncoding) (string, qmodel.Quant, error) {
	in := m.InputQuant
	// columns: x is [N, K, 1, 1], the output of a linear op, rather than
	// [N, K] or [N, C, H, W].
	columns := false
	for i := range m.Ops {
		op := &m.Ops[i]
		n := op.Name
		switch op.Type {
		case model.OpConv:
			x = b.qlinearConv(x, op, in, m.Requant, encoding(op.Weight))
		case model.OpLinear:
			if !columns {
				x = b.node("Reshape", n+"/columns", []string{x, b.int64s(n+"/shape", []int{4}, -1, int64(op.In), 1, 1)})
			}
			x = b.qlinearConv(x, op, in, m.Requant, encoding(op.Weight))
			columns = true
		case model.OpMaxPool:
			x = b.node("MaxPool", n+"/codes", []string{x}, poolAttrs(op)...)
		case model.OpAvgPool:
			x = b.node("Cast", n+"/float", []string{x}, intAttr("to", typeFloat))
			x = b.node("AveragePool", n+"/mean", []string{x}, poolAttrs(op)...)
			x = b.quantize(x, n, 0)
		case model.OpFlatten:
			x = b.node("Flatten", n+"/codes", []string{x}, intAttr("axis", 1))
			columns = false
		case model.OpReLU, model.OpReLU6:
			x = b.clip(x, n, op.ClampMin, op.ClampMax)
		default:
			// Validate accepts no other type.
			return "", qmodel.Quant{}, fmt.Errorf("onnx: int8 model %s: op %d (%s): unknown type %q", m.Name, i, n, op.Type)
		}
		in = op.Output
	}
	if columns {
		x = b.node("Flatten", "logits/codes", []string{x}, intAttr("axis", 1))
	}
	return x, in, nil
}

// int8Output appends the graph output "logits", float32 [N, classes]: the
// output codes x dequantized with their quantization out.
func (b *graph) int8Output(x string, out qmodel.Quant, classes int) {
	x = b.node("DequantizeLinear", "logits", []string{x,
		b.float32s("logits/scale", nil, out.Scale), b.uint8s("logits/zero_point", nil, uint8(out.ZeroPoint))})
	b.output(x, typeFloat, dim{param: "N"}, dim{value: classes})
}

// normalize appends the pixel normalisation of model.Norm to x, in
// float32: x - Mean, then / Std unless Std is 0; a per-channel n
// broadcasts [1, C, 1, 1] constants, a std of 0 dividing by 1 (exact).
func (b *graph) normalize(x string, n model.Norm) string {
	if !n.PerChannel() {
		x = b.node("Sub", "input/centered", []string{x, b.float32s("input/mean", nil, n.Mean)})
		if n.Std != 0 {
			x = b.node("Div", "input/normalized", []string{x, b.float32s("input/std", nil, n.Std)})
		}
		return x
	}
	dims := []int{1, len(n.ChannelMean), 1, 1}
	std := make([]float32, len(n.ChannelStd))
	for c, s := range n.ChannelStd {
		std[c] = s
		if s == 0 {
			std[c] = 1
		}
	}
	x = b.node("Sub", "input/centered", []string{x, b.float32s("input/mean", dims, n.ChannelMean...)})
	return b.node("Div", "input/normalized", []string{x, b.float32s("input/std", dims, std...)})
}

// quantize appends QuantizeLinear with scale 1 and zero point zp:
// saturate(roundHalfEven(x) + zp) as uint8.
func (b *graph) quantize(x, prefix string, zp uint8) string {
	return b.node("QuantizeLinear", prefix+"/codes", []string{x,
		b.float32s(prefix+"/one", nil, 1), b.uint8s(prefix+"/zero_point", nil, zp)})
}

// clip appends a Clip of the uint8 codes x to [lo, hi], unless that is
// all of [0, 255].
func (b *graph) clip(x, prefix string, lo, hi int32) string {
	if lo == 0 && hi == 255 {
		return x
	}
	return b.node("Clip", prefix+"/clipped", []string{x,
		b.uint8s(prefix+"/clip_min", nil, uint8(lo)), b.uint8s(prefix+"/clip_max", nil, uint8(hi))})
}

func poolAttrs(op *qmodel.Op) []*dynamicpb.Message {
	k, s := int64(op.Kernel), int64(op.Stride)
	return []*dynamicpb.Message{intsAttr("kernel_shape", k, k), intsAttr("strides", s, s)}
}

// qlinearConv appends op, a conv or (on [N, In, 1, 1] codes) a linear op
// of a model with requantization mode mode reading codes quantized with
// in, as a QLinearConv with weights encoded as enc, followed by the clamp
// of its output codes.
func (b *graph) qlinearConv(x string, op *qmodel.Op, in qmodel.Quant, mode qmodel.Requant, enc WeightEncoding) string {
	k, s, p := int64(1), int64(1), int64(0)
	if op.Type == model.OpConv {
		k, s, p = int64(op.Kernel), int64(op.Stride), int64(op.Padding)
	}
	n := op.Name
	xs, ws, ys := requantScales(op, in, mode)
	inputs := []string{x,
		b.float32s(n+"/x_scale", nil, xs),
		b.uint8s(n+"/x_zero_point", nil, uint8(in.ZeroPoint)),
	}
	wdims := []int{op.Out, op.In, int(k), int(k)}
	if enc == WeightsInt8 {
		inputs = append(inputs,
			b.int8s(n+"/weight", wdims, op.Weight...),
			b.float32s(n+"/weight_scale", []int{op.Out}, ws...),
			b.int8s(n+"/weight_zero_point", []int{op.Out}, make([]int8, op.Out)...))
	} else {
		u := make([]uint8, len(op.Weight))
		for i, w := range op.Weight {
			u[i] = uint8(int16(w) + uint8WeightZeroPoint)
		}
		zp := make([]uint8, op.Out)
		for c := range zp {
			zp[c] = uint8WeightZeroPoint
		}
		inputs = append(inputs,
			b.uint8s(n+"/weight", wdims, u...),
			b.float32s(n+"/weight_scale", []int{op.Out}, ws...),
			b.uint8s(n+"/weight_zero_point", []int{op.Out}, zp...))
	}
	inputs = append(inputs,
		b.float32s(n+"/y_scale", nil, ys),
		b.uint8s(n+"/y_zero_point", nil, uint8(op.Output.ZeroPoint)),
		b.int32s(n+"/bias", []int{op.Out}, op.Bias...))
	x = b.node("QLinearConv", n+"/codes", inputs,
		intsAttr("kernel_shape", k, k), intsAttr("strides", s, s), intsAttr("pads", p, p, p, p))
	return b.clip(x, n, op.ClampMin, op.ClampMax)
}

// WeightEncoding is how FromInt8 stores the weight codes of a conv or
// linear op in its QLinearConv.
type WeightEncoding int

const (
	// WeightsInt8 stores the codes as int8 with zero point 0. Every
	// code is within [-MaxSafeInt8Weight, MaxSafeInt8Weight], so that
	// onnxruntime's uint8 x int8 kernels sum exactly even where they add
	// pairs of products into int16 with saturation (VPMADDUBSW on x86-64
	// without VNNI): 2*255*64 = 32640 <= 32767.
	WeightsInt8 WeightEncoding = iota
	// WeightsUint8 stores code+128 as uint8 with zero point 128 on every
	// channel, which sends onnxruntime to its uint8 x uint8 kernels; those
	// widen to int16 before they multiply (VPMADDWD) or use VNNI, UDOT and
	// so on, and sum exactly on every CPU.
	WeightsUint8
)

// String returns "int8" or "uint8".
func (e WeightEncoding) String() string {
	if e == WeightsUint8 {
		return "uint8"
	}
	return "int8"
}

// Exactness says how far onnxruntime's results for the ONNX model of m
// (FromInt8) are from those of qat's int8 runtime for m itself: "" when
// they are the same codes bit for bit on every CPU, otherwise why not.
// The only scheme that is not exact is fixed requantization
// (qmodel.RequantFixed), which ONNX cannot express: the ONNX model
// requantizes in float32 and computes the float-requantization model,
// within a code per layer of the fixed one.
func Exactness(m *qmodel.Model) string {
	if m.Requant == qmodel.RequantFixed {
		return "ONNX has no integer-only requantization: the ONNX model requantizes in float32 with the " +
			"float32 nearest to each fixed multiplier, so it computes the float-requantization model " +
			"(export --requant float), within about a code per layer of this fixed-requantization model"
	}
	return ""
}

// MaxSafeInt8Weight bounds the magnitude of weight codes that FromInt8
// keeps as int8 (WeightsInt8).
const MaxSafeInt8Weight = 64

// uint8WeightZeroPoint is the zero point of WeightsUint8.
const uint8WeightZeroPoint = 128

// WeightEncodingOf returns the encoding FromInt8 uses for a conv or
// linear op with weight codes w: WeightsInt8 when every code lies within
// [-MaxSafeInt8Weight, MaxSafeInt8Weight] (always so for 4- and 2-bit
// weights), WeightsUint8 otherwise.
func WeightEncodingOf(w []int8) WeightEncoding {
	for _, c := range w {
		if c < -MaxSafeInt8Weight || c > MaxSafeInt8Weight {
			return WeightsUint8
		}
	}
	return WeightsInt8
}

// multipliers returns the float32 requantization multiplier of each output
// channel of a conv or linear op of a model with requantization mode mode:
// op.Multiplier for RequantFloat, and for RequantFixed the float32 nearest
// to FixedMultiplier[c] * 2^-(31+Shift[c]).
func multipliers(op *qmodel.Op, mode qmodel.Requant) []float32 {
	if mode != qmodel.RequantFixed {
		return op.Multiplier
	}
	m := make([]float32, len(op.FixedMultiplier))
	for c, m0 := range op.FixedMultiplier {
		// Exact in float64 (m0 has 31 bits), then one rounding.
		m[c] = float32(math.Ldexp(float64(m0), -31-int(op.Shift[c])))
	}
	return m
}

// requantScales returns QLinearConv's x_scale, w_scale and y_scale for op.
// onnxruntime requantizes output channel c with the multiplier
// float32(x_scale*w_scale[c]) / y_scale in float32: the model's own scales
// (in.Scale, WeightScale, Output.Scale) when that gives back the
// multiplier of every channel, as it does for the models qat exports;
// otherwise 1, the multipliers and 1, which gives them back exactly.
func requantScales(op *qmodel.Op, in qmodel.Quant, mode qmodel.Requant) (xs float32, ws []float32, ys float32) {
	mult := multipliers(op, mode)
	for c, m := range mult {
		if float32(float32(in.Scale*op.WeightScale[c])/op.Output.Scale) != m {
			return 1, mult, 1
		}
	}
	return in.Scale, op.WeightScale, op.Output.Scale
}
