// Package qmodel defines qat's frozen integer network (Model) and its file
// format, "qat-int8/2": validation, a writer and a loader (package cheader
// exports a Model as a C header, package onnx as ONNX). Every file
// carries a CRC-32C of its content (Checksum), which the loader checks,
// so a damaged file is an error rather than other numbers;
// version-1 files, which had none, still load with a warning in
// Model.Warnings. The export package (through deploy) produces Models from trained checkpoints and
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
//     QMin < QMax. Ops other than conv and linear keep their input's
//     quantization (Output equals the previous op's Output, or InputQuant
//     for the first op).
//   - Weight codes are symmetric (zero point 0) in
//     [-2^(WeightBits-1), 2^(WeightBits-1)-1] for WeightBits 8, 4 or 2,
//     row-major [Out, In, Kernel, Kernel] (conv) or [Out, In] (linear),
//     one int8 per code in memory. The file stores 8-bit codes as an I8
//     tensor of that shape, and 4- and 2-bit codes packed into a U8 tensor
//     of ceil(count*bits/8) bytes: two (four) codes a byte in row-major
//     order, the first in the low bits, each in two's complement within its
//     field, unused high bits of the last byte zero.
//   - The graph is a chain: each op reads the previous op's output.
//     Shapes flow as documented on Shapes; every [C, H, W] dimension and
//     Out is at most MaxDim, every activation and weight tensor holds at
//     most MaxElements elements, and the last op's output is [Classes].
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
//   - Clamping: conv and linear clamp their requantized codes, relu and
//     relu6 their input codes, to [ClampMin, ClampMax] with
//     Output.QMin <= ClampMin <= ClampMax <= Output.QMax; a conv or linear
//     without a fused activation has ClampMin = QMin and ClampMax = QMax.
//     Maxpool, avgpool and flatten do not clamp: their ClampMin and
//     ClampMax are 0. Avgpool rounds the mean of its window's codes half
//     to even.
//   - Fields that do not apply to an op's type are zero (arrays empty),
//     op names are unique and match [A-Za-z_][A-Za-z0-9_.]*, and the
//     model's Name is non-empty UTF-8 without control characters.
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
