// Package quant is qat's affine quantization arithmetic: schemes, parameters,
// quantize, dequantize and fake quantize, range observers and error metrics,
// and the BatchNorm fold scale (FoldScale).
// It imports no autodiff package; the trainer, the exporter and the int8
// runtime all build on it.
//
// # Numeric contract
//
// The mapping between a real value x and its integer code q is
//
//	q = clamp(z + roundHalfEven(float32(x * float32(1/s))), qmin, qmax)
//	x' = float32((q - z) * s)
//
// where s is the scale and z the zero point. The product with the float32
// reciprocal of the scale (never a division) and rounding half to even are
// those of PyTorch 1.13's fake quantization kernels, so results agree with
// PyTorch bit for bit. Codes saturate at the scheme's [QMin, QMax]; +Inf
// saturates at QMax and -Inf at QMin. NaN has no code: Quantize maps it to the
// zero point (the code of 0), FakeQuantize returns NaN so that the loss shows
// it, and the observers reject NaN and Inf with an error.
//
// # Channel axis
//
// A per-channel scheme has one scale and zero point per index of Scheme.Axis
// of the tensor's row-major shape (axis 0, the output channel, for weights).
// Per-tensor schemes use one pair for the whole tensor and ignore the shape.
//
// # Buffers
//
// Functions write their results into a caller-owned dst, gonum style, and
// never retain dst or src. dst may alias src where the element types agree.
// A dst whose length differs from src, or a shape whose element count
// differs from len(src), is a programmer error and panics. Params values are
// read, never modified; observers copy what they keep.
//
// # Choosing parameters
//
// ParamsFromRange follows PyTorch's observers: the range is widened to
// include 0; affine schemes use scale = max((max-min)/(qmax-qmin), eps) and
// z = clamp(qmin - roundHalfEven(min/s)); symmetric schemes use
// scale = max(max(-min, max) / ((qmax-qmin)/2), eps), z = 0 for signed and
// floor((qmin+qmax)/2) for unsigned codes (127 for [0,255]: PyTorch's rule
// for an explicit code range; its default, unspecified quint8 range gives
// 128, but a qat scheme always states its range). eps is float32's machine epsilon.
// Arithmetic is float32, as PyTorch's.
package quant
