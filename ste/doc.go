// Package ste holds the backward rules of fake quantization as plain
// functions over float32 slices: the straight-through estimator (STE) with
// clipping, the step-size and offset gradients of learned step-size
// quantization (LSQ, Esser et al. 2020; LSQ+, Bhalgat et al. 2020) and the
// clipping-threshold gradient of PACT (Choi et al. 2018).
//
// # Conventions
//
// A value x is "in range" when its unclamped code z + roundHalfEven(x*(1/s))
// lies in [QMin, QMax], computed exactly as quant.Code does, so the masks
// agree with the forward pass bit for bit. NaN is never in range. Gradients
// are written into caller-owned dst slices (gradX has len(x) elements;
// per-channel parameter gradients have one element per channel) which are
// overwritten, not accumulated into. A parameter gradient is a sum over the
// elements of a channel; each term is computed in float64 from the float32
// inputs and the sum rounded to float32 once. The in-range scale term
// dy*(y-x)/s cancels in y-x: rounding each step to float32 instead missed
// two of PyTorch's per-channel conformance values by up to 4e-5 relative,
// while the float64 terms match all of them within 1e-5.
// Length or shape mismatches are programmer errors and panic, as in package
// quant.
//
// # Learnable quantizers
//
// LSQ and LSQPlus follow PyTorch 1.13's _fake_quantize_learnable_*_affine
// backward, with one rounding rule (half to even, zero point rounded before
// it is added) for both directions. With g the gradient factor, for each
// element: below the range dScale = dy*(QMin-z)*g and dZeroPoint = -dy*s*g;
// above it the same with QMax; inside it dScale = dy*(y-x)/s*g and no
// zero-point term. LSQ's gradient factor is GradFactor(n, QMax) =
// 1/sqrt(n*QMax), where PyTorch takes n as the element count of the whole
// tensor. The LSQ+ offset beta = -z*s is learned here in zero-point units,
// which is PyTorch's parametrisation; its gradient is -dZeroPoint/s.
package ste
