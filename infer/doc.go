// Package infer is qat's int8 runtime: it runs a frozen integer model
// (package qmodel), a chain or any graph of its ops, on uint8 activation
// codes with the exact u8 x s8 -> s32 kernels of internal/qgemm. It
// imports no autodiff package.
//
// # Arithmetic
//
// Every op computes exactly what docs/int8-model.md specifies, so results
// do not depend on the kernel the CPU selects:
//
//   - input: q = clamp(roundHalfEven(x * float32(1/s)) + z) (quant.Code),
//     for pixels through the model's normalisation first;
//   - conv and linear: acc = sum (q_in - z_in) * w in int32 (exact), plus
//     the int32 bias, then quant.RequantizeFloat or quant.RequantizeFixed
//     per output channel, clamped to the op's [ClampMin, ClampMax]; a
//     grouped conv sums over its group's input channels only;
//   - maxpool: the maximum code of the window's positions inside the
//     input; avgpool and global_avgpool: the window's code sum divided by
//     its size, rounded half to even; relu and relu6: a clamp; flatten: a
//     reshape in PyTorch's C, H, W order;
//   - add and concat: the element rules of Add and Requantize (join.go),
//     which the exact evaluation graphs of package deploy share;
//   - dynamic_linear (dynamic.go): each sample's float32 inputs (its
//     codes dequantized, float32(q - zp) * s, when it reads codes) get
//     the scale and zero point of onnxruntime's DynamicQuantizeLinear for
//     that sample alone (DynamicParams: the range extended to 0, (max -
//     min)/255, scale 1 for an all-zero range, NaN left out of the
//     range), are quantized by division, saturated to [0, 255] and
//     rounded half to even, NaN giving 0 (QuantizeDynamic), summed
//     against the int8 weights exactly in int32, and scaled back as
//     float32(acc) * float32(s * weight_scale) + bias, each float32
//     operation rounded on its own, then ReLU ((v < 0) ? 0 : v) or ReLU6.
//
// # Codes and floats
//
// A model's values are codes, or float32 values after a dynamic_linear
// (or for a model with float input). Only dynamic_linear and flatten read
// floats, so a Net runs its ops on codes first, then its dynamic ops in
// turn, each reading the one before (the first reads the last static
// op's codes or the float input), and its outputs are float32 logits:
// RunFloat (Runner, Parallel) returns them, Run refuses such a Net, and
// FloatOutput tells one from the other. The float path is separate: a Net
// without dynamic ops runs its codes exactly as before. A float flatten
// moves nothing: float values are kept in PyTorch's order, and the first
// dynamic op reading NHWC codes reads its weights permuted, as a linear
// op does.
//
// # Layout and buffers
//
// Inside a Runner, activations are stored NHWC (channels last), so that a
// convolution's im2col rows are contiguous; a linear layer after a flatten
// reads its weights permuted to match, at load, and relu, relu6 and add
// keep flat codes in that order (an add of flat codes in two orders brings
// both to PyTorch's first). A concat writes each input's channels into
// its slice of every pixel. Inputs and outputs of the exported API use
// PyTorch's NCHW order.
//
// Each op reads the buffers of the ops it reads. New plans the buffers
// once, by liveness: an op's output takes the first buffer whose codes no
// later op reads (a flatten's is its input's, a relu that is the last
// reader of its input writes over it), so a chain runs in two buffers in
// turn and a graph keeps only what a later op still reads; the input's
// buffer is never written, so running a batch again gives the same codes. Weights are packed once, when a
// Net is built (sub-byte weights stay packed); a Net is read-only and may
// be shared by goroutines, each with its own Runner. A Runner owns its
// buffers (those of the dynamic ops included); the slices it returns,
// codes or floats, are overwritten by its next run. Once a Runner has run
// a batch of its size it allocates nothing.
//
// # Kernels
//
// An ungrouped convolution whose output rows are 8 pixels or wider runs
// as an implicit GEMM (qgemm.GemmConv): its window rows are read from the
// sample itself, or from the op's own padded copy of it (the padding, the
// input zero point, written once when the copy is made), instead of being
// gathered into im2col rows; each window row of k*c codes is one segment
// of K, padded with zero weights to the weights' unit of k (4, 8 or 16
// codes) where it must be, whose extra products add nothing whatever the
// codes they read (the next pixels'). Where the selected kernel would
// gather the rows anyway (Generic, NEON) and a window row needs such
// padding, and for narrower output rows, a convolution stages each input
// sample, surrounded by its padding, and gathers its im2col rows with
// whole 8- and 16-byte words: window row by window row for k*c >= 4
// codes, the last window row of each window copied exactly, so that no
// word's slack overwrites codes already gathered. The rows go to qgemm in
// blocks of about 2048. Both requantizations run as internal/qvec's vector
// epilogues (qvec.RequantFloat, qvec.RequantFixed: AVX2, or AVX-512 for
// float, with pure-Go equivalents), equal bit for bit to the quant
// functions above. Max pooling takes the maximum of a window's input rows
// with qvec.MaxBytes and then of the window's columns with
// qvec.MaxWindows; average pooling sums each window's codes in uint32 and
// rounds with divRoundEven; a padded max pool stages each sample with
// code 0 around it, which never exceeds a code of the window. A grouped
// conv runs qgemm per group on the group's im2col rows (its channels of
// each sample staged first; a 1x1 conv of stride 1 reads them in place
// with a row stride), each group's accumulators going to its columns of
// the output. A depthwise conv (Groups = In = Out) runs internal/dwconv's
// vector kernel instead, memory-bound where a GEMM per channel would be
// one dot product of K*K: the op's own padded copy of the sample holds
// int32 q - z_in (the border 0), and dwconv.Row adds every tap's products
// channel by channel in int32, which is exactly the GEMM path's sum once
// its bias folds -z_in*sum w (the direct kernel keeps the bias as it is),
// with the same requantization epilogue. An add runs qvec.AddCodes, the
// rule of Add. None of these choices changes a code: the tests compare
// every op with a loop per index (test nets with implicit convolutions
// run both paths), and the depthwise kernel with the per-group GEMM path.
//
// A max pool that is the only reader of a conv's output is fused into it
// (Net; a Layer never fuses; never a padded pool, nor one of a conv
// another op reads, which needs the unpooled codes): the conv's
// accumulators, per block of samples, are max-pooled
// in int32 (qvec.MaxWindowsInt32: the row pass, then the column pass)
// and only the pooled ones are requantized, 4 times fewer for a 2x2
// pool, with no pass over the unpooled codes. It gives the same codes:
// per channel the code is f(acc) = clamp(requant(acc + bias)), and
// max f(a_i) = f(max a_i), ties included, because f is non-decreasing
// when acc + bias cannot wrap in int32 (|bias| + 255*128*K <= MaxInt32)
// and the multiplier is finite and positive (float: conversion, product,
// clamp and rounding are each monotone) or m0 >= 0 (fixed: shift with
// saturation, srdhm, RoundingDivideByPOT and the clamp are each
// monotone). New checks these per op and leaves the pool unfused
// otherwise; the tests compare fused nets with unfused ones and the
// reference, and the fused epilogue with requantize-then-pool per index.
//
// # Threads
//
// A Runner runs on the calling goroutine. A Parallel (Net.NewParallel)
// splits each batch by samples into equal contiguous shares, one Runner
// and goroutine each, and gathers the outputs in sample order;
// Layer.RunParallel does the same for one layer. A sample's codes depend
// on that sample alone (exact integer sums, per-element requantization),
// and so do its floats (its dynamic ranges are its own, never the
// batch's), so the outputs are bit for bit those of one Runner, and of
// the sample run alone, for every thread count and batch split.
//
// # Evaluation
//
// Evaluate runs a Net over labelled samples given as plain pixels and
// labels (the package knows no dataset type) in batches on a Parallel,
// and returns the accuracy, the mean cross-entropy of the dequantized
// (or float) logits and, on request, every output code (or float logit).
// Its result depends on neither the batch size nor the thread count.
package infer
