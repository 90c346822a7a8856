package qmodel

import "qat/model"

// Format is the format version this package writes, stored in the file's
// metadata under "qat.format". Version 2 is version 1 plus the checksum
// "qat.crc32c"; the reader also reads version 1 (FormatV1), with a
// warning in Model.Warnings.
const Format = "qat-int8/2"

// FormatV1 is the previous version, which had no checksum.
const FormatV1 = "qat-int8/1"

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

// Model is a frozen integer network. Activations flow as uint8 codes; the
// i-th op reads the codes the (i-1)-th op wrote (the first reads the
// quantized input).
type Model struct {
	Name    string
	Input   [3]int // C, H, W of one sample
	Classes int    // length of the last op's output
	Norm    model.Norm
	// InputQuant quantizes the normalised input: q = clamp(roundHalfEven(x * float32(1/Scale)) + ZeroPoint).
	InputQuant Quant
	Requant    Requant
	Ops        []Op

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

	// Conv and linear: In input channels (conv) or features (linear), Out
	// output channels or features.
	In, Out int
	// Conv and pools: square Kernel and Stride; conv also Padding (the
	// padded positions hold the input zero point, i.e. real 0).
	Kernel, Stride, Padding int

	// WeightBits is the storage width of the weight codes: 8, 4 or 2.
	// Codes lie in [-2^(WeightBits-1), 2^(WeightBits-1)-1] (a narrower
	// scheme, e.g. 3 bits, is stored in the next width).
	WeightBits int
	// Weight holds the symmetric (zero point 0) weight codes, row-major
	// [Out, In, Kernel, Kernel] (conv) or [Out, In] (linear), one code per
	// element in memory; the file packs sub-byte codes.
	Weight []int8
	// WeightScale is the per-output-channel weight scale, [Out].
	WeightScale []float32
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

	// Output is the quantization of the op's output codes. Ops other than
	// conv and linear keep their input's quantization.
	Output Quant
	// ClampMin and ClampMax bound the output codes of conv, linear, relu
	// and relu6 (a fused activation): Output.QMin <= ClampMin <= ClampMax <= Output.QMax.
	// They are 0 for maxpool, avgpool and flatten, which do not clamp.
	ClampMin, ClampMax int32
}
