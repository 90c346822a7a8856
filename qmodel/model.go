package qmodel

import (
	"slices"

	"qat/model"
)

// Format is the format version this package writes for a model that uses
// none of FormatV3's additions (a chain of the version-2 op types with
// per-tensor normalisation), stored in the file's metadata under
// "qat.format". Version 2 is version 1 plus the checksum "qat.crc32c";
// the reader also reads version 1 (FormatV1), with a warning in
// Model.Warnings.
const Format = "qat-int8/2"

// FormatV1 is the first version, which had no checksum.
const FormatV1 = "qat-int8/1"

// FormatV3 is version 2 plus graphs: op inputs (Op.Inputs), the op types
// add, concat and global_avgpool, grouped convs (Op.Groups), maxpool
// padding and per-channel normalisation. The writer uses it only for a
// model that uses one of them (Model.FormatVersion), so the file of any
// other model is what version 2 wrote, byte for byte.
const FormatV3 = "qat-int8/3"

// FormatV4 is version 3 plus dynamic quantization: the op type
// dynamic_linear (OpDynamicLinear), whose input range is computed at run
// time, and float values: a model input read as the normalised image in
// float32, without input quantization (Model.FloatInput), and flatten ops
// of floats. The writer uses it only for a model that uses one of them
// (Model.Dynamic); any other model is written as before.
const FormatV4 = "qat-int8/4"

// OpDynamicLinear is the op type of a dynamically quantized linear layer
// (FormatV4): int8 weight codes, symmetric per output channel, applied to
// float32 inputs quantized per sample at run time as onnxruntime's
// DynamicQuantizeLinear quantizes a tensor, the exact int32 accumulator
// scaled back to float32 and the float32 bias added; its outputs are
// float32 values (docs/int8-model.md, section 5).
const OpDynamicLinear model.OpType = "dynamic_linear"

// Requant is how an int32 accumulator becomes an output code.
type Requant string

const (
	// RequantFloat: q = clamp(roundHalfEven(float32(acc+bias) * M[c]) + zp),
	// with M[c] a float32 multiplier per output channel (what onnxruntime's
	// MLAS does on x86).
	RequantFloat Requant = "float"
	// RequantFixed: gemmlowp/TFLite integer-only requantization,
	// q = clamp(RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc+bias, M0[c]), Shift[c]) + zp),
	// with M0 a Q31 int32 multiplier and Shift a right shift; a negative
	// Shift is a left shift of acc+bias, saturated to int32, before the
	// multiplication (then no right shift). docs/int8-model.md gives the
	// exact integer arithmetic.
	RequantFixed Requant = "fixed"
)

// Quant is per-tensor activation quantization in the uint8 code domain:
// real = (q - ZeroPoint) * Scale, 0 <= QMin <= ZeroPoint <= QMax <= 255.
// Signed activation schemes are stored offset into this domain.
type Quant struct {
	Scale     float32
	ZeroPoint int32
	QMin      int32
	QMax      int32
}

// Model is a frozen integer network, a directed acyclic graph of ops in
// a topological order. Activations flow as uint8 codes; each op reads the
// codes of earlier ops or of the quantized input (Sources), by default
// those of the op before it (the first reads the quantized input), and
// the last op's are the model's output.
type Model struct {
	Name    string
	Input   [3]int // C, H, W of one sample
	Classes int    // length of the last op's output
	Norm    model.Norm
	// InputQuant quantizes the normalised input: q = clamp(roundHalfEven(x * float32(1/Scale)) + ZeroPoint).
	InputQuant Quant
	// FloatInput, in a FormatV4 model, makes the model read its input as
	// the normalised image in float32, unquantized: InputQuant is then the
	// zero Quant, and only dynamic_linear and flatten ops read the input.
	FloatInput bool
	// Requant is the requantization mode of the conv and linear ops (a
	// model without them has one too).
	Requant Requant
	Ops     []Op

	// Warnings lists what the reader noticed about the file the model
	// came from without rejecting it: a FormatV1 file, whose damage no
	// checksum can reveal. Nil for a model not read from a file or read
	// from a current one; writers ignore it.
	Warnings []string
}

// Op is one operation. Which fields are used depends on Type; the others
// are zero.
type Op struct {
	Type model.OpType
	Name string

	// Inputs lists the ops this op reads, by index, each below the op's
	// own, -1 standing for the quantized model input. Empty means the op
	// before (the model input for the first op), so a chain needs none.
	// Add reads two inputs, concat two or more, the other types one.
	Inputs []int

	// Conv and linear: In input channels (conv) or features (linear), Out
	// output channels or features.
	In, Out int
	// Conv, maxpool and avgpool: square Kernel and Stride. Padding is a
	// conv's (the padded positions hold the input zero point, i.e. real
	// 0) or a maxpool's (at most Kernel/2; padded positions never give
	// the maximum).
	Kernel, Stride, Padding int
	// Groups splits a conv's In input and Out output channels into that
	// many groups, output group g reading input group g only
	// (model.Node.Groups): 0 for an ordinary conv, else at least 2, a
	// divisor of In and Out. Groups = In = Out is a depthwise conv.
	Groups int

	// WeightBits is the storage width of the weight codes of conv and
	// linear: 8, 4 or 2. Codes lie in [-2^(WeightBits-1),
	// 2^(WeightBits-1)-1] (a narrower scheme, e.g. 3 bits, is stored in
	// the next width). A dynamic_linear's codes are int8, without
	// WeightBits (0).
	WeightBits int
	// Weight holds the symmetric (zero point 0) weight codes, row-major
	// [Out, In/G, Kernel, Kernel] (conv, G groups) or [Out, In] (linear,
	// dynamic_linear), one code per element in memory; the file packs
	// sub-byte codes.
	Weight []int8
	// WeightScale is the per-output-channel weight scale, [Out].
	WeightScale []float32
	// FloatBias is a dynamic_linear's float32 bias, [Out], added to its
	// float outputs (conv and linear have the int32 Bias instead).
	FloatBias []float32
	// Act is a dynamic_linear's fused activation on its float outputs:
	// "" (none), model.OpReLU or model.OpReLU6. (Conv and linear fuse
	// theirs into the clamp of their codes.)
	Act model.OpType
	// Bias is the int32 bias, [Out], with scale InScale*WeightScale[c] and
	// zero point 0, added to the accumulator before requantization.
	Bias []int32
	// Multiplier is [Out] for RequantFloat: float32(InScale*WeightScale[c]) / Output.Scale in float32 (onnxruntime's order).
	Multiplier []float32
	// FixedMultiplier (Q31, in [2^30, 2^31)) and Shift (in [MinShift,
	// MaxShift] = [-31, 62]) are [Out] for RequantFixed: the real
	// multiplier is FixedMultiplier * 2^-(31+Shift).
	FixedMultiplier []int32
	Shift           []int32

	// Output is the quantization of the op's output codes. Conv, linear,
	// add and concat have their own (model.Node.Requantizes); the other
	// ops keep their input's quantization.
	Output Quant
	// ClampMin and ClampMax bound the output codes of conv, linear, add,
	// concat (a fused activation), relu and relu6:
	// Output.QMin <= ClampMin <= ClampMax <= Output.QMax. They are 0 for
	// maxpool, avgpool, global_avgpool and flatten, which do not clamp.
	ClampMin, ClampMax int32
}

// Sources returns the indices of the ops that op i reads, -1 standing for
// the model input: its Inputs, or the op before it (i-1). The slice is
// the caller's. It panics if i is out of range (a programmer error).
func (m *Model) Sources(i int) []int {
	if in := m.Ops[i].Inputs; len(in) > 0 {
		return slices.Clone(in)
	}
	return []int{i - 1}
}

// FormatVersion returns the format version a file of m has: FormatV4 if
// m is Dynamic, else FormatV3 if it uses any of that version's additions,
// else Format.
func (m *Model) FormatVersion() string {
	switch {
	case m.Dynamic():
		return FormatV4
	case m.usesV3():
		return FormatV3
	}
	return Format
}

// Dynamic reports whether m uses FormatV4's dynamic quantization: a float
// input or a dynamic_linear op. A valid dynamic model's output is float32
// logits, the last op's floats (Floats), where any other model's is codes.
func (m *Model) Dynamic() bool {
	return m.FloatInput || slices.ContainsFunc(m.Ops, func(op Op) bool { return op.Type == OpDynamicLinear })
}

// Floats reports, for every op, whether its output is float32 values
// rather than codes: that of a dynamic_linear, and that of a flatten of
// floats (of the float input, or of a float op's output). A source that
// is out of range counts as codes (Validate rejects it).
func (m *Model) Floats() []bool {
	f := make([]bool, len(m.Ops))
	for i := range m.Ops {
		switch m.Ops[i].Type {
		case OpDynamicLinear:
			f[i] = true
		case model.OpFlatten:
			f[i] = m.readsFloats(i, f)
		}
	}
	return f
}

// readsFloats reports whether the first source of op i is floats, given
// floats, the Floats of the ops before i.
func (m *Model) readsFloats(i int, floats []bool) bool {
	j := m.Sources(i)[0]
	return j == -1 && m.FloatInput || j >= 0 && j < i && floats[j]
}

// usesV3 reports whether m uses an addition of FormatV3: per-channel
// normalisation, or an op of a new type or with inputs, groups or maxpool
// padding.
func (m *Model) usesV3() bool {
	if m.Norm.PerChannel() {
		return true
	}
	for i := range m.Ops {
		op := &m.Ops[i]
		if slices.Contains(v3Types, op.Type) || len(op.Inputs) > 0 || op.Groups != 0 || op.Type == model.OpMaxPool && op.Padding != 0 {
			return true
		}
	}
	return false
}
