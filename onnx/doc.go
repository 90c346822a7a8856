// Package onnx exports qat's models as ONNX models: FromInt8 turns a
// frozen integer network (qmodel.Model) into a QOperator graph (with
// MatMulInteger for dynamically quantized linear layers) that onnxruntime
// runs with exactly the arithmetic of qat's int8 runtime,
// FromInt8QDQ turns it into a QDQ graph (float operators between
// QuantizeLinear and DequantizeLinear, the form TensorRT, OpenVINO and
// QNN take) that onnxruntime computes within a few codes of it, and
// FromFloat turns a float model (export.Source, e.g. from
// layers.Model.FloatSource) into a float graph for comparison.
// docs/onnxruntime.md shows how to run them.
//
// # Encoding
//
// The messages are built with google.golang.org/protobuf's dynamicpb on a
// schema written in Go (schema.go): the subset of onnx.proto (package
// "onnx", proto2) that the exporters write, with the IR specification's
// message names, field names and numbers, checked by the tests against a
// table from onnx.proto and against the onnx Python package's
// descriptors. Models are encoded deterministically: the same input gives
// the same bytes. Tensor data is little-endian raw_data (int4: two codes
// a byte, the first in the low four bits). Every model has ir_version
// IRVersion (7), imports the default operator set at version Opset (13)
// and names Producer ("qat") as producer_name, but a QDQ model with int4
// weights, which has IRVersionInt4 (10) and OpsetInt4 (21);
// metadata_props record the model's name ("qat.model") and how it was
// exported ("qat.export": "int8", "int8-dynamic", "int8-qdq" or "float";
// "qat.requant": the int8 model's requantization mode).
//
// # Interface
//
// The exporters write one graph input, "input": float32 [N, C, H, W]
// (N symbolic) holding pixels scaled to [0, 1], float32(p)/255 for a pixel
// p in [0, 255]; and one graph output, "logits": float32 [N, Classes]. The
// input normalisation model.Norm is part of the graph: Sub(Mean), then
// Div(Std) unless Std is 0, in float32, as qat's model.Norm and the int8
// runtime compute it.
//
// # The int8 graph
//
// Codes are uint8 tensors throughout, NCHW, as in the qmodel format. The
// graph has the model's structure: each op's nodes read the tensors of
// the ops it reads (qmodel.Model.Sources), so a chain is a chain of
// nodes and a DAG's branches and joins are the graph's.
//
//   - input: after the normalisation, Mul by float32(1/InputQuant.Scale)
//     (the reciprocal quant.Code multiplies by), QuantizeLinear with scale
//     1 and the input zero point (x/1 is exact; onnxruntime rounds half to
//     even and saturates to [0, 255]), then Clip to [QMin, QMax] when that
//     is narrower than [0, 255]. This is quant.Code: clamp(roundHalfEven(
//     x*inv) + zp, QMin, QMax).
//   - conv: QLinearConv with the weight codes [Out, In/G, K, K] in one of
//     two encodings (see Weight encodings below), the int32 bias,
//     kernel_shape, strides, pads (padded positions hold the input zero
//     point, as in the qmodel format) and, for G = Groups > 1, group;
//     then Clip to [ClampMin, ClampMax] when narrower than [0, 255].
//     onnxruntime requantizes channel c by
//     float32(float32(x_scale*w_scale[c]) / y_scale): saturate(roundHalfEven(
//     float32(acc+bias) * M) + zp), the qmodel's float requantization. The
//     graph carries the model's scales (x_scale the input's, w_scale
//     WeightScale, y_scale Output.Scale) when that formula gives back every
//     channel's multiplier, as it does for the models export.Freeze makes;
//     otherwise x_scale = y_scale = 1 and w_scale = the multipliers, which
//     gives them back exactly. Clamping the rounded code to integer bounds
//     equals clamping before rounding.
//   - linear: Reshape of [N, In] to [N, In, 1, 1] and the same QLinearConv
//     with a 1x1 kernel (per-channel scales and the bias, which
//     QLinearMatMul lacks); consecutive linear ops stay [N, K, 1, 1], and a
//     Flatten returns [N, Out] where a flatten op or the output needs it.
//   - maxpool: MaxPool on uint8 (opset 12 and later), kernel, stride and,
//     when the op has Padding, pads: onnxruntime leaves padded positions
//     out of the maximum, as the format does.
//   - avgpool: Cast to float, AveragePool, QuantizeLinear with scale 1 and
//     zero point 0. The window's sum of codes is an integer below 2^24,
//     exact in float32 in any order; onnxruntime divides it by K*K
//     (a correctly rounded division, not a multiplication by a reciprocal)
//     and rounds half to even. An exact tie s/n = m + 1/2 is a float32, so
//     it stays a tie; any other quotient lies at least 1/(2n) from a tie,
//     more than half a float32 step below 256 for n = K*K < 65536 (and
//     n = 65536 divides exactly), so rounding the float32 quotient gives
//     the qmodel's divRoundEven.
//   - global_avgpool: Cast to float, Sub 128, GlobalAveragePool,
//     QuantizeLinear with scale 1 and zero point 128. Its window, n = H*W,
//     reaches 65792, where a mean of 128 or more would no longer be
//     resolved (n odd above 65536: a quotient 1/(2n) from a tie can round
//     onto the tie); centred, the mean lies in [-128, 127], where half a
//     float32 step is at most 2^-18 < 1/(2*65792), and the partial sums,
//     at most 128*65792 in magnitude, stay exact. Rounding half to even
//     commutes with adding the even 128, so the codes are avgpool's
//     divRoundEven of the whole input.
//   - flatten: Flatten(axis 1), which is C, H, W order on NCHW tensors.
//   - relu, relu6: Clip to [ClampMin, ClampMax] (skipped when that is all
//     of [0, 255]).
//   - add: each input dequantized by Cast to float, Sub of its zero point
//     (skipped for 0) and Mul by its scale, which is float32(q - zp) *
//     scale (the Sub is exact on small integers); Add; then the sum
//     quantized as the input is: Mul by float32(1/Output.Scale),
//     QuantizeLinear with scale 1 and the output zero point, Clip to
//     [ClampMin, ClampMax]. Each node is one IEEE float32 operation in
//     the order of infer.Add, so the codes are quant.Code's. An input of
//     a linear op's [N, K, 1, 1] codes added to [N, K] codes is flattened
//     first.
//   - concat: each input requantized as add's sum (Cast, Sub, Mul, Mul,
//     QuantizeLinear, Clip: infer.Requantize), then Concat(axis 1) of the
//     uint8 codes. An input of the output's own quantization, when the
//     clamp is all of its range, is kept as it is: for a normal scale s
//     with 255*s finite, the three float32 roundings move q - zp (at most
//     255 in magnitude) by less than 255*3*2^-24, far from 1/2, so
//     requantizing gives back every code.
//   - output: DequantizeLinear with the last op's scale and zero point:
//     float32(q - zp) * scale, as infer.Net.Dequantize.
//
// The only DequantizeLinear is the output's, so onnxruntime's QDQ
// transformations, which fuse DequantizeLinear, op, QuantizeLinear into
// QLinearAdd, QLinearConcat or QLinearGlobalAveragePool (with arithmetic
// of their own), find nothing to fuse. The tests compare the codes after
// every op, and whole models at each graph optimization level.
//
// Fixed requantization (qmodel.RequantFixed) has no ONNX operator: the
// graph requantizes in float with the float32 nearest to each real
// multiplier FixedMultiplier*2^-(31+Shift), so it computes the float
// requantization with those multipliers, within a code per layer of the
// fixed arithmetic. For a model export.Freeze made, that float32 is the
// float multiplier the fixed one was made from, so the ONNX model is the
// one of the float export of the same checkpoint.
//
// 4- and 2-bit weights are written as int8 tensors holding codes in
// [-8, 7] or [-2, 1]: onnxruntime's QLinearConv takes no int4 or int2
// weights. The arithmetic is the same; only the file is larger than the
// packed qmodel.
//
// # Weight encodings
//
// onnxruntime's uint8 x int8 kernels are not exact on every CPU: on
// x86-64 without VNNI (AVX2 only, or AVX-512 without VNNI) MLAS multiplies
// with VPMADDUBSW, which adds pairs of products into int16 with
// saturation, so a pair of input codes and weights with
// |u1*w1 + u2*w2| > 32767 changes an accumulator (measured: up to 49 codes
// on one layer, 16 on lenet's output). Its uint8 x uint8 kernels widen
// both operands to int16 before they multiply (VPMADDWD), or use VNNI or
// the arm64 dot products, and are exact everywhere. WeightEncodingOf
// therefore chooses per op:
//
//   - WeightsInt8, when every code lies in [-64, 64] (all 4- and 2-bit
//     weights, 7-bit weights): int8 codes with zero points 0; a pair sum
//     is then at most 2*255*64 = 32640, so even the saturating kernel
//     sums exactly;
//   - WeightsUint8 otherwise (8-bit weights, whose symmetric per-channel
//     codes reach 127): uint8 codes w+128 with zero point 128 on every
//     channel (QLinearConv requires one zero point value for all
//     channels); onnxruntime subtracts the zero point exactly, so the
//     accumulator is the same integer.
//
// By this argument both are exact on every CPU; the tests check it on the
// CPU they run on (measured: AMD EPYC Zen 3, AVX2 without VNNI; the int8
// form was measured exact before on AVX-512 VNNI Xeons; both on an AMD
// EPYC Zen 5 with AVX-512 VNNI). A depthwise conv goes to MLAS's
// depthwise kernels, which widen input codes and weights to int16 before
// they multiply, for either encoding (int8 weights may take its
// symmetric kernels instead, where the bound above applies); the DAG
// tests force each encoding on every layer, exact on the Zen 5, not
// measured without VNNI. qat's own runtime is unaffected by the encoding;
// docs/onnxruntime.md gives what it costs onnxruntime.
//
// # The dynamic graph
//
// FromInt8 writes a dynamic model (qmodel.Model.Dynamic: dynamic_linear
// ops, perhaps a float input) with its static ops as above and each
// dynamic_linear as the graph of onnxruntime's dynamic quantization, its
// input's range taken per row (sample) rather than per tensor, so that
// onnxruntime computes qat's float outputs bit for bit at any batch size
// (DynamicQuantizeLinear, per tensor, would take the batch's range: the
// same only at batch size 1). From the op's float32 input x, [N, In]
// (codes it reads dequantized first, as add's inputs are, a linear op's
// [N, K, 1, 1] codes flattened):
//
//   - min = Min(ReduceMin(x, axes 1), 0), max = Max(ReduceMax(x, axes 1),
//     0), scale = Where(Equal(max, min), 1, Div(Sub(max, min), 255)) and
//     zp = Cast(Round(Clip(Sub(0, Div(min, scale)), 0, 255)), uint8), [N,
//     1]: DynamicQuantizeLinear's parameters (infer.DynamicParams), one
//     float32 operation a node;
//   - QuantizeLinear(x, scale, zp, axis 0): per row, the same MLAS kernel
//     DynamicQuantizeLinear quantizes with (a division, rounding half to
//     even, saturation to [0, 255]);
//   - MatMulInteger of the codes and the transposed weights (the weight
//     encodings above: uint8 w+128 with zero point 128, or int8), minus
//     Mul(Cast(zp, int32), sum of each output's weights) in int32:
//     sum (q - zp) w exactly, since MatMulInteger takes one zero point for
//     all rows;
//   - Cast to float, Mul by Mul(scale, weight_scale) ([N, Out]), Add of
//     the float32 bias, then Relu or Clip(0, 6): float32(acc) *
//     float32(s * w_scale) + bias as infer rounds it;
//   - a flatten of floats is Flatten(axis 1); "logits" is an Identity of
//     the last op's floats.
//
// No DynamicQuantizeLinear, MatMulInteger then Cast group forms, so
// onnxruntime's fusions into DynamicQuantizeMatMul or
// MatMulIntegerToFloat, whose float arithmetic is their own, find nothing
// to fuse. The tests compare onnxruntime with qat's runtime on the
// embedded MNIST sample (batch 1, 100 and 1000, graph optimizations on
// and off) and DynamicQuantizeLinear itself with infer.DynamicParams.
// NaN inputs are outside the guarantee (onnxruntime's vectorized
// minimum and maximum treat NaN as they fall, where qat leaves it out of
// the range), and so are infinite ones: their scale is infinite, the
// layer's outputs 0 * Inf = NaN.
//
// # The QDQ graph
//
// FromInt8QDQ writes each code tensor of the int8 model as the float32
// values QuantizeLinear then DequantizeLinear give, with the tensor's
// scale and zero point (one pair of initializers that both read): uint8
// with the model's zero point, or int8 codes q-128 with zero point 0 for
// a zero point of 128 (signed symmetric 8-bit activations; the only form
// TensorRT takes), the same values. Every op is its float operator on
// the dequantized values of its sources, followed by its output's clamp
// and QuantizeLinear, DequantizeLinear pair:
//
//   - input: the normalisation, then the input quantization's pair;
//   - conv: Conv (kernel_shape, strides, pads, group), linear: Gemm
//     (transB 1), of the dequantized input, the weight codes through
//     DequantizeLinear with the per-channel weight scales (axis 0, zero
//     points 0) and the int32 bias through DequantizeLinear with the
//     per-channel scales float32(s_in*s_w[c]) (axis 0): the scale of the
//     accumulator it is added to in qat, and the int32 bias that
//     onnxruntime's and TensorRT's QDQ fusions take into their integer
//     kernels as it is (a float bias would have to be quantized back);
//   - maxpool, avgpool, global_avgpool, flatten: MaxPool, AveragePool,
//     GlobalAveragePool, Flatten(axis 1), and the input's quantization
//     again (exact for maxpool and flatten, whose values are dequantized
//     codes: a float32 (q-zp)*s divided by s rounds back to q-zp; it keeps
//     every operator between a DequantizeLinear and a QuantizeLinear, as
//     onnxruntime's QDQ fusions want them);
//   - relu, relu6: the clamp and the pair (nothing for a clamp of all of
//     [0, 255]); add: Add; concat: Concat(axis 1);
//   - output: an Identity of the last op's values to "logits".
//
// A clamp [lo, hi] (fused activations, narrowed ranges such as 4-bit
// activations) is what QuantizeLinear's saturation to [0, 255] leaves:
// nothing for [0, 255], Relu for [zp, 255], otherwise Clip to the values
// float32(lo-zp)*s and float32(hi-zp)*s of the bounds, which quantize to
// lo and hi (a few float32 roundings from the integers lo-zp, hi-zp, at
// most 255 in magnitude). 4-bit activations therefore stay uint8 (or
// int8) codes in [0, 15]; opset 13 has no narrower type, and TensorRT,
// QNN and onnxruntime's integer kernels take none.
//
// Weights are int8 tensors, 4- and 2-bit weights int8 tensors of their
// codes; with QDQOptions.Int4Weights, weights of 4 bits or fewer are
// int4 tensors (opset 21: DequantizeLinear of int4 with a per-axis scale;
// 2-bit codes in int4), which onnxruntime 1.30 dequantizes to float and
// convolves in float (it has no int4 QLinearConv).
//
// The graph computes the model's quantization, not its arithmetic bit for
// bit (QDQInexact): run as written (onnxruntime's graph optimizations
// disabled), Conv and Gemm sum float32 products of dequantized values in
// an order of their own and round the sum, where qat sums the integer
// codes exactly and requantizes with one float32 multiplier, and
// QuantizeLinear divides by the scale where qat multiplies by its float32
// reciprocal; either can move a value near a rounding tie to the next
// code, and a code that moves changes what later layers see. With
// onnxruntime's default optimizations its QDQ transformations fuse each
// DequantizeLinear, op, QuantizeLinear group into an integer kernel
// (QLinearConv, QGemm, QLinearAdd, QLinearConcat,
// QLinearGlobalAveragePool, uint8 MaxPool): QLinearConv's
// requantization is qat's, the others have arithmetic of their own, and
// the input's QuantizeLinear still divides. Not fused, and so run in
// float: ops with int4 weights, and ops whose QuantizeLinear follows a
// Clip of a narrowed range (4-bit activations).
// onnxruntime fuses uint8 activations with int8 weights on x86-64 into
// its uint8 x int8 kernels, which without VNNI add pairs of products into
// int16 with saturation (see Weight encodings): not measured there. The
// tests measure the agreement (docs/onnxruntime.md gives the figures);
// the exporter refuses, with an error wrapping ErrNoQDQ, what the graph
// cannot carry: fixed requantization (integer multipliers and shifts)
// and multipliers other than float32(float32(s_in*s_w[c])/s_out) of the
// model's scales, since a QDQ graph has only the scales.
//
// Measured with scripts/onnx-fidelity.sh mnist 20000 qdq (trained lenet
// and model/testdata/residual-mnist.json, all 10000 MNIST test images,
// onnxruntime-node 1.30.0, one thread, on an Intel Xeon, family 6 model
// 207, AVX-512 VNNI), against the int8 runtime's codes:
//
//	model                form (opset)    optimizations  argmax  max LSB  exact
//	lenet W8A8           qdq (13)        all            1.0000  0        100.00%
//	lenet W8A8           qdq (13)        disabled       1.0000  1         99.75%
//	lenet W4A4           qdq (13)        all, disabled  1.0000  0        100.00%
//	lenet W4A4           qdq-int4 (21)   all, disabled  1.0000  0        100.00%
//	residual-mnist W8A8  qdq (13)        all            1.0000  0        100.00%
//	residual-mnist W8A8  qdq (13)        disabled       1.0000  1         99.88%
//	residual-mnist W4A4  qdq (13)        all, disabled  1.0000  0        100.00%
//	residual-mnist W4A4  qdq-int4 (21)   all, disabled  1.0000  0        100.00%
//
// On random pixels through randomly calibrated models (TestQDQMatchesRuntime)
// it is 1 to 3 LSB off on up to 17% of the samples of a small DAG and 41%
// of resnet20's (unoptimized), argmax agreement at least 97.4%.
//
// # The float graph
//
// FromFloat writes the source's graph, each layer reading its inputs'
// tensors: Conv (kernel_shape, strides, pads, group for a grouped conv;
// bias when the layer has one), BatchNormalization in inference form (the
// layer's gamma, beta, running mean and variance, epsilon) rather than
// folding it, so that the file holds the trained tensors as they are
// (onnxruntime's default graph optimizations fold it into the conv), Relu
// or Clip(0, 6) for the fused (conv, linear, add) or standalone
// activations, Gemm (transB 1) for linear layers, MaxPool (pads when
// padded), AveragePool, GlobalAveragePool, Flatten(axis 1), Add,
// Concat(axis 1), and an Identity to "logits". It agrees with qat's float
// evaluation up to float32 rounding.
//
// # Invariants
//
// FromInt8 accepts exactly the models qmodel.Model.Validate accepts and
// is exact for all of them but fixed requantization and adds of scales
// above math.MaxFloat32/255 (Exactness says so), and NaN reaching a
// dynamic_linear; FromInt8QDQ the valid static (not Dynamic) models with
// float requantization whose multipliers come from their
// scales (every model export.Freeze makes), and with Int4Weights those
// that have weights of 4 bits or fewer; FromFloat the sources
// whose float fields are consistent (checkSource: a valid graph by
// model.Graph.Shapes, whose shapes flow from Input to [Classes], tensor
// lengths match, BatchNorm eps positive). None keeps or modifies its arguments. Tensor names
// derive from op names ("c1/weight", "c1/codes"); a name that would clash
// with another gets a numeric suffix, so every op name is accepted. Every
// error is prefixed "onnx: " and wraps the cause (qmodel's validation
// error for an invalid model).
package onnx
