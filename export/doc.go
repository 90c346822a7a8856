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
// A Source may be any graph of model nodes (model.Node.Inputs): each op
// reads the ops its layer reads (qmodel.Op.Inputs, left nil for the layer
// before) with their quantization, as s_in and z_in above. A grouped conv
// freezes as any conv, its weight [Out, In/G, K, K]. An add or concat has
// no weights: its output params are its output quantizer's (Layer.ActQuant),
// its clamp that of its fused activation (Clamp), and the int8 runtime
// requantizes its inputs' codes to them by the element rules of
// docs/int8-model.md. Pools, flatten and standalone activations keep
// their input's quantization.
//
// Activation codes live in the uint8 domain: a signed activation scheme's
// codes and zero point are offset by -QMin. Weights must be symmetric
// (zero point 0) signed codes of at most 8 bits; they are stored in the
// narrowest width of 8, 4 or 2 bits that holds their range.
//
// FreezeDynamic freezes a model with its linear layers quantized
// dynamically instead (qmodel.OpDynamicLinear): int8 weight codes,
// symmetric per output channel, from the float weights
// (quant.Int8SymmetricPerChannel, no calibration), the float32 bias and
// fused activation kept, the input range left to run time (per sample,
// as onnxruntime's DynamicQuantizeLinear computes it). Convs freeze as
// above, so they need a quantized model; a source without an input
// quantizer (a float model's) gives a model of float input, whose layers
// must then all be flatten or linear ones.
package export
