// Package infer is qat's int8 runtime: it runs a frozen integer model
// (package qmodel) on uint8 activation codes with the exact u8 x s8 -> s32
// kernels of internal/qgemm. It imports no autodiff package.
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
//     per output channel, clamped to the op's [ClampMin, ClampMax];
//   - maxpool: the maximum code of the window; avgpool: the window's code
//     sum divided by its size, rounded half to even; relu and relu6: a clamp;
//     flatten: a reshape in PyTorch's C, H, W order.
//
// # Layout and buffers
//
// Inside a Runner, activations are stored NHWC (channels last), so that a
// convolution's im2col rows are contiguous; a linear layer after a flatten
// reads its weights permuted to match, at load. Inputs and outputs of the
// exported API use PyTorch's NCHW order. Weights are packed once, when a
// Net is built (sub-byte weights stay packed); a Net is read-only and may
// be shared by goroutines, each with its own Runner. A Runner owns its
// buffers; the slices it returns are overwritten by its next run.
package infer
