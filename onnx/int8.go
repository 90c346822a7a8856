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
// [N, Classes], the dequantized output codes, or for a dynamic model
// (qmodel.Model.Dynamic) its float logits, with MatMulInteger for each
// dynamic_linear (The dynamic graph). The package documentation gives the
// graph and the exactness argument. m must pass m.Validate.
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
	if m.Dynamic() {
		return fromDynamic(m, encoding)
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
	return b.requantize(x, "input", in, in.QMin, in.QMax)
}

// codes is an ONNX tensor of uint8 codes: the quantized model input or
// an op's output. columns: it is [N, K, 1, 1], the output of a linear op
// (and of relus and adds on it), rather than [N, K] or [N, C, H, W].
type codes struct {
	name    string
	columns bool
}

// int8Ops appends m's ops to the input codes x, each op reading the
// tensors of its sources (Model.Sources) and each conv and linear op with
// its weights encoded as encoding chooses; it returns the output codes as
// [N, Classes] and their quantization.
func (b *graph) int8Ops(x string, m *qmodel.Model, encoding func([]int8) WeightEncoding) (string, qmodel.Quant, error) {
	outs := make([]codes, len(m.Ops))
	for i := range m.Ops {
		op := &m.Ops[i]
		var in []codes
		for _, j := range m.Sources(i) {
			c := codes{name: x}
			if j >= 0 {
				c = outs[j]
			}
			in = append(in, c)
		}
		y, err := b.int8Op(op, in, sourceQuants(m, i), m.Requant, encoding)
		if err != nil {
			return "", qmodel.Quant{}, fmt.Errorf("onnx: int8 model %s: op %d (%s): %w", m.Name, i, op.Name, err)
		}
		outs[i] = y
	}
	last := outs[len(outs)-1]
	if last.columns {
		last.name = b.node("Flatten", "logits/codes", []string{last.name}, intAttr("axis", 1))
	}
	return last.name, m.Ops[len(m.Ops)-1].Output, nil
}

// sourceQuants returns the quantization of each input of op i of m.
func sourceQuants(m *qmodel.Model, i int) []qmodel.Quant {
	var q []qmodel.Quant
	for _, j := range m.Sources(i) {
		if j < 0 {
			q = append(q, m.InputQuant)
		} else {
			q = append(q, m.Ops[j].Output)
		}
	}
	return q
}

// int8Op appends op, which reads the codes in quantized with q (one per
// source), with requantization mode mode and conv and linear weights
// encoded as encoding chooses, and returns its output codes.
func (b *graph) int8Op(op *qmodel.Op, in []codes, q []qmodel.Quant, mode qmodel.Requant, encoding func([]int8) WeightEncoding) (codes, error) {
	n, x := op.Name, in[0].name
	switch op.Type {
	case model.OpConv:
		return codes{name: b.qlinearConv(x, op, q[0], mode, encoding(op.Weight))}, nil
	case model.OpLinear:
		if !in[0].columns {
			x = b.node("Reshape", n+"/columns", []string{x, b.int64s(n+"/shape", []int{4}, -1, int64(op.In), 1, 1)})
		}
		return codes{name: b.qlinearConv(x, op, q[0], mode, encoding(op.Weight)), columns: true}, nil
	case model.OpMaxPool:
		return codes{name: b.node("MaxPool", n+"/codes", []string{x}, poolAttrs(op)...)}, nil
	case model.OpAvgPool:
		x = b.node("Cast", n+"/float", []string{x}, intAttr("to", typeFloat))
		x = b.node("AveragePool", n+"/mean", []string{x}, poolAttrs(op)...)
		return codes{name: b.quantize(x, n, 0)}, nil
	case model.OpGlobalAvgPool:
		return codes{name: b.globalAvgPool(x, n)}, nil
	case model.OpFlatten:
		return codes{name: b.node("Flatten", n+"/codes", []string{x}, intAttr("axis", 1))}, nil
	case model.OpReLU, model.OpReLU6:
		return codes{name: b.clip(x, n, op.ClampMin, op.ClampMax), columns: in[0].columns}, nil
	case model.OpAdd:
		return b.add(op, in, q), nil
	case model.OpConcat:
		return codes{name: b.concat(op, in, q)}, nil
	}
	// Validate accepts no other type.
	return codes{}, fmt.Errorf("unknown type %q", op.Type)
}

// globalAvgPool appends global_avgpool (prefix n) to the codes x, [N, C,
// H, W]: Cast to float, Sub 128, GlobalAveragePool and QuantizeLinear
// with scale 1 and zero point 128. Centring the codes keeps the mean
// below 128 in magnitude, where float32 resolves it finely enough for
// every window the format allows (H*W up to 65792, beyond avgpool's
// 65536; see the package documentation).
func (b *graph) globalAvgPool(x, n string) string {
	x = b.node("Cast", n+"/float", []string{x}, intAttr("to", typeFloat))
	x = b.node("Sub", n+"/centered", []string{x, b.float32s(n+"/offset", nil, globalPoolOffset)})
	x = b.node("GlobalAveragePool", n+"/mean", []string{x})
	return b.quantize(x, n, globalPoolOffset)
}

// globalPoolOffset is the code that globalAvgPool subtracts before it
// averages and adds back as the zero point: even, so that rounding half to
// even commutes with it.
const globalPoolOffset = 128

// add appends an add op reading the codes in quantized with q: each input
// dequantized in float32 (dequantize), their Add, and the quantization of
// the sum to op's output and clamp (requantize). An input of [N, K, 1, 1]
// columns added to an [N, K] one is flattened first.
func (b *graph) add(op *qmodel.Op, in []codes, q []qmodel.Quant) codes {
	n := op.Name
	columns := in[0].columns && in[1].columns
	x := make([]string, 2)
	for k, c := range in {
		x[k] = c.name
		if c.columns && !columns {
			x[k] = b.node("Flatten", fmt.Sprintf("%s/in%d/flat", n, k), []string{x[k]}, intAttr("axis", 1))
		}
		x[k] = b.dequantize(x[k], fmt.Sprintf("%s/in%d", n, k), q[k])
	}
	sum := b.node("Add", n+"/sum", x)
	return codes{name: b.requantize(sum, n, op.Output, op.ClampMin, op.ClampMax), columns: columns}
}

// concat appends a concat op reading the [N, C, H, W] codes in quantized
// with q: each input requantized to op's output and clamp as add's sum is,
// unless that keeps its codes (keeps), then Concat of the uint8 codes
// along axis 1.
func (b *graph) concat(op *qmodel.Op, in []codes, q []qmodel.Quant) string {
	n := op.Name
	x := make([]string, len(in))
	for k, c := range in {
		x[k] = c.name
		if !keeps(op, q[k]) {
			p := fmt.Sprintf("%s/in%d", n, k)
			x[k] = b.requantize(b.dequantize(c.name, p, q[k]), p, op.Output, op.ClampMin, op.ClampMax)
		}
	}
	return b.node("Concat", n+"/codes", x, intAttr("axis", 1))
}

// keeps reports whether concat op gives every code quantized with in
// back as it is: in is op's output quantization, the clamp is all of its
// range, and the scale s is a normal float32 (at least 2^-126) with 255*s
// finite. Then a code q becomes roundHalfEven(float32(float32(q-z)*s) *
// float32(1/s)) + z, and the three roundings, each within a relative
// 2^-24, move k = q-z (|k| <= 255) by less than 255*3*2^-24 << 1/2: the
// result is q, already in [QMin, QMax].
func keeps(op *qmodel.Op, in qmodel.Quant) bool {
	s := float64(in.Scale)
	return in == op.Output && op.ClampMin == in.QMin && op.ClampMax == in.QMax &&
		s >= 0x1p-126 && 255*s <= math.MaxFloat32
}

// dequantize appends the float32 values of the codes x quantized with q,
// float32(x - ZeroPoint) * Scale as infer's add and concat compute them:
// Cast to float, Sub of the zero point (exact: small integers; skipped
// for 0) and Mul by the scale, the one rounding. It writes no
// DequantizeLinear, so that no DequantizeLinear, op, QuantizeLinear group
// forms for onnxruntime's QDQ transformations to fuse into QLinearAdd or
// QLinearConcat, whose arithmetic is not qat's.
func (b *graph) dequantize(x, prefix string, q qmodel.Quant) string {
	x = b.node("Cast", prefix+"/float", []string{x}, intAttr("to", typeFloat))
	if q.ZeroPoint != 0 {
		x = b.node("Sub", prefix+"/centered", []string{x, b.float32s(prefix+"/zero_point", nil, float32(q.ZeroPoint))})
	}
	return b.node("Mul", prefix+"/value", []string{x, b.float32s(prefix+"/scale", nil, q.Scale)})
}

// requantize appends quant.Code of the float32 values x with quantization
// out, clamped to [lo, hi], as the input quantization does: Mul by
// float32(1/Scale), QuantizeLinear with scale 1 and the zero point, Clip.
func (b *graph) requantize(x, prefix string, out qmodel.Quant, lo, hi int32) string {
	x = b.node("Mul", prefix+"/scaled", []string{x, b.float32s(prefix+"/inv_scale", nil, 1/out.Scale)})
	x = b.quantize(x, prefix, uint8(out.ZeroPoint))
	return b.clip(x, prefix, lo, hi)
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

// poolAttrs returns the kernel_shape, strides and (for a padded maxpool)
// pads of a pool op.
func poolAttrs(op *qmodel.Op) []*dynamicpb.Message {
	k, s, p := int64(op.Kernel), int64(op.Stride), int64(op.Padding)
	attrs := []*dynamicpb.Message{intsAttr("kernel_shape", k, k), intsAttr("strides", s, s)}
	if p != 0 {
		attrs = append(attrs, intsAttr("pads", p, p, p, p))
	}
	return attrs
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
	g := op.Node().EffectiveGroups()
	wdims := []int{op.Out, op.In / g, int(k), int(k)}
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
	attrs := []*dynamicpb.Message{intsAttr("kernel_shape", k, k), intsAttr("strides", s, s), intsAttr("pads", p, p, p, p)}
	if g > 1 {
		attrs = append(attrs, intAttr("group", int64(g)))
	}
	x = b.node("QLinearConv", n+"/codes", inputs, attrs...)
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
// they are the same codes (a dynamic model's: float logits, for finite
// values) bit for bit on every CPU, otherwise why not.
// The only scheme that is not exact is fixed requantization
// (qmodel.RequantFixed), which ONNX cannot express: the ONNX model
// requantizes in float32 and computes the float-requantization model,
// within a code per layer of the fixed one. Besides, an add whose inputs'
// scales are so large (above math.MaxFloat32/255) that the dequantized
// codes of both can overflow may sum +Inf and -Inf: qat quantizes that
// NaN to the zero point, onnxruntime's QuantizeLinear not.
func Exactness(m *qmodel.Model) string {
	if m.Requant == qmodel.RequantFixed {
		return "ONNX has no integer-only requantization: the ONNX model requantizes in float32 with the " +
			"float32 nearest to each fixed multiplier, so it computes the float-requantization model " +
			"(export --requant float), within about a code per layer of this fixed-requantization model"
	}
	for i := range m.Ops {
		if m.Ops[i].Type != model.OpAdd {
			continue
		}
		if q := sourceQuants(m, i); overflows(q[0]) && overflows(q[1]) {
			return fmt.Sprintf("add %s: the dequantized codes of both inputs (scales %g and %g) can overflow float32, "+
				"and the NaN of +Inf + -Inf is the zero point's code in qat, not in onnxruntime", m.Ops[i].Name, q[0].Scale, q[1].Scale)
		}
	}
	return ""
}

// overflows reports whether float32(c - ZeroPoint) * Scale is infinite
// for some code c in [QMin, QMax].
func overflows(q qmodel.Quant) bool {
	k := float32(max(q.QMax-q.ZeroPoint, q.ZeroPoint-q.QMin))
	return math.IsInf(float64(k*q.Scale), 0)
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
