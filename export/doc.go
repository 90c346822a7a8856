// Package export freezes a trained, fake-quantized model into an integer
// model (package qmodel) that the int8 runtime (package infer) runs.
//
// It imports quant and qmodel, never an autodiff package: the trainer
// describes its model as a Source (plain float32 tensors and quantization
// params) and Freeze does the rest. The trainer's evaluation graphs call
// FreezeLayer too, so that what they report is what the exported model
// computes.
//
// # Arithmetic
//
// For a conv or linear layer with input codes of scale s_in and zero point
// z_in, weight scale s_w[c] per output channel and output params (s_out,
// z_out):
//
//   - BN is folded as PyTorch's ConvBn does: sf = gamma / float32(sqrt(
//     float32(running_var + eps))) (quant.FoldScale), weight codes are the
//     quantization of float32(w * sf[c]) with the weight quantizer's params,
//     and the real bias is beta + (bias - running_mean) * sf in float64.
//   - The int32 bias is roundHalfEven(bias / (s_in * s_w[c])) in float64,
//     with scale s_in*s_w[c] and zero point 0; |bias| must stay below 2^30.
//   - The float requantization multiplier is float32(s_in * s_w[c]) / s_out
//     in float32 (onnxruntime's order); the fixed one is its Q31 form
//     (quant.FixedMultiplier).
//   - A fused ReLU clamps the output codes at z_out, a fused ReLU6 also at
//     the code of 6 (quant.Code(6)).
//
// Activation codes live in the uint8 domain: a signed activation scheme's
// codes and zero point are offset by -QMin. Weights must be symmetric
// (zero point 0) signed codes of at most 8 bits; they are stored in the
// narrowest width of 8, 4 or 2 bits that holds their range.
package export
