// Package qmodel defines qat's frozen integer network (Model), a directed
// acyclic graph of integer ops, and its file format, "qat-int8/4" for a
// model with dynamically quantized ops, "qat-int8/3" for a graph and
// "qat-int8/2" for a model without version 3's additions (see Versions):
// validation, a writer and a loader (package cheader exports a
// Model as a C header, package onnx as ONNX). Every file carries a CRC-32C
// of its content (Checksum), which the loader checks, so a damaged file is
// an error rather than other numbers; version-1 files, which had none,
// still load with a warning in Model.Warnings. The export package (through deploy) produces Models from trained checkpoints and
// the int8 runtime executes them; docs/int8-model.md is the versioned
// specification of the file and of the arithmetic.
//
// The package imports only the standard library, qat/model (the op types
// and the shape rule) and qat/safetensors (no gorgonia), so a program that
// only runs int8 models stays small.
//
// # Invariants
//
// Validate accepts a Model only when all of the following hold; Parse,
// Read, ReadFile and FromFile return only such Models, and Write,
// WriteFile and File refuse any other.
//
//   - Activations are uint8 codes with per-tensor quantization
//     real = (q - ZeroPoint) * Scale, Scale finite and positive with a
//     finite float32 reciprocal, 0 <= QMin <= ZeroPoint <= QMax <= 255 and
//     QMin < QMax. Conv, linear, add and concat quantize their output with
//     an Output of their own; the other ops keep their input's
//     quantization (Output equals the Output of the op they read, or
//     InputQuant for the model input).
//   - Weight codes are symmetric (zero point 0) in
//     [-2^(WeightBits-1), 2^(WeightBits-1)-1] for WeightBits 8, 4 or 2,
//     row-major [Out, In/G, Kernel, Kernel] (conv of G groups: Groups, or
//     1 when it is 0) or [Out, In] (linear),
//     one int8 per code in memory. The file stores 8-bit codes as an I8
//     tensor of that shape, and 4- and 2-bit codes packed into a U8 tensor
//     of ceil(count*bits/8) bytes: two (four) codes a byte in row-major
//     order, the first in the low bits, each in two's complement within its
//     field, unused high bits of the last byte zero.
//   - The graph is a DAG in a topological order: each op reads the
//     model input or earlier ops (Sources: its Inputs by index, -1 for
//     the model input, or the op before when Inputs is empty); an add
//     reads two inputs, a concat two or more, every other op one; every
//     op but the last is read by some op. Shapes flow as documented on
//     Shapes (model's shape rule: an add's inputs have one shape, a
//     concat's are [C, H, W] of one H and W, a conv's Groups divide In and
//     Out, a maxpool's Padding is at most Kernel/2); every [C, H, W]
//     dimension and Out is at most MaxDim, every activation and weight
//     tensor holds at most MaxElements elements, and the last op's output
//     is [Classes].
//   - Integer accumulation never overflows int32: at most MaxTerms products
//     (q - zp) * w per accumulator, and 255*sum|Weight[c]| + |Bias[c]| <=
//     2^31-1 for every output channel c, so acc + bias fits in an int32
//     for every input.
//   - Requantization of acc + bias uses exactly the arrays of the model's
//     Requant mode, one element per output channel. RequantFloat:
//     q = clamp(roundHalfEven(float32(acc+bias) * Multiplier[c]) + zp),
//     Multiplier finite and positive, rounding half to even (as MLAS).
//     RequantFixed: gemmlowp's SaturatingRoundingDoublingHighMul by
//     FixedMultiplier[c] in [2^30, 2^31-1] (round to nearest, ties toward
//     +infinity) and RoundingDivideByPOT by Shift[c] in [-31, 62] (ties
//     away from zero), a negative Shift being a left shift of acc+bias
//     saturated to int32 before the multiplication.
//   - Add and concat requantize their inputs' codes: each is dequantized
//     in float32 with its own input's quantization, an add sums its two
//     values in float32, and the result is quantized with Output as
//     InputQuant quantizes the input, then clamped; a concat joins its
//     inputs' channels in input order (docs/int8-model.md, infer.Add and
//     infer.Requantize).
//   - Clamping: conv, linear, add and concat clamp their requantized
//     codes, relu and relu6 their input codes, to [ClampMin, ClampMax] with
//     Output.QMin <= ClampMin <= ClampMax <= Output.QMax; one without a
//     fused activation has ClampMin = QMin and ClampMax = QMax. Maxpool,
//     avgpool, global_avgpool and flatten do not clamp: their ClampMin and
//     ClampMax are 0. Avgpool and global_avgpool round the mean of their
//     window's codes half to even (a global_avgpool's window is its whole
//     H x W input); a maxpool's padded positions never give the maximum.
//   - Values are codes or floats (FormatV4; Floats): the model input is
//     floats when FloatInput is set (InputQuant then zero), and the
//     output of a dynamic_linear, and of a flatten of floats, are
//     floats; only dynamic_linear and flatten read floats, so a model
//     with a dynamic_linear ends in a chain of float ops and outputs
//     float32 logits. A flatten of floats has no Output; a dynamic_linear
//     has no Output, clamps or WeightBits, its Act is "", relu or relu6,
//     its Weight any int8 codes [Out, In] (In <= MaxTerms keeps
//     sum (q - zp) * w inside an int32), its WeightScale finite and
//     positive, its FloatBias [Out] finite. It quantizes each sample's
//     inputs with their own range, rounding half to even and saturating
//     to [0, 255], as onnxruntime's DynamicQuantizeLinear
//     (docs/int8-model.md, section 5).
//   - Fields that do not apply to an op's type are zero (arrays empty),
//     Groups is 0 or at least 2, op names are unique and match
//     [A-Za-z_][A-Za-z0-9_.]*, and the model's Name is non-empty UTF-8
//     without control characters.
//
// # Versions
//
// Version 3 (FormatV3) added op inputs, the op types add, concat and
// global_avgpool, conv groups, maxpool padding and per-channel
// normalisation; a file holds their JSON fields only when they are used
// (inputs not empty, groups and a maxpool's padding not 0). Version 4
// (FormatV4) added dynamic quantization: the op type dynamic_linear (its
// "act" written when not empty, an F32 "bias" tensor), float input (no
// "input_quant") and flatten of floats (no "output"). The writer stores a
// model as version 4 exactly when it is Dynamic, else as version 3
// exactly when it uses one of that version's additions
// (Model.FormatVersion), and every other model as version 2 (Format), byte
// for byte as before versions 3 and 4 existed. The reader reads versions 1
// to 4, and rejects a file that holds a field, op type or normalisation of
// a later version than its own.
//
// WeightScale is kept for inspection and dequantization of the weights;
// the integer arithmetic does not use it, and Validate does not check that
// the multipliers agree with the scales.
//
// # Errors
//
// Validate's errors are lower case and name the op (index, type and name)
// and the field by its name in the file. Every loader error that reports
// a malformed file wraps ErrFormat (and, for a damaged container,
// safetensors.ErrFormat); I/O errors do not. The only panics are for
// programmer errors: a nil *Model or *safetensors.File.
//
// # Ownership
//
// Parse copies everything it keeps: the returned Model does not reference
// the input buffer, which the caller may reuse. FromFile copies out of the
// safetensors.File. File and Write copy from the Model and neither keep
// nor modify it. Shapes returns fresh slices.
package qmodel
