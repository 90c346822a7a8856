// Package layers holds qat's layer ops for gorgonia graphs and the models
// built from them.
//
// # Models
//
// A ModelSpec (a built-in "mlp" or "lenet", or a JSON config file) lists
// conv, linear, pool, flatten and activation layers. NewModel creates its
// float params with PyTorch's default initialisation, named like PyTorch
// state_dict keys ("c1.weight", "b1.running_var"). Quantize adds fake
// quantizers from a QuantConfig: the input, each conv and linear weight
// (default: int8 symmetric per-channel along the output channel, axis 0)
// and each conv and linear output after its fused ReLU (default: uint8
// affine per-tensor); per-layer overrides give mixed precision. One
// definition serves float and QAT: NewGraph builds the same layers with or
// without the quantizers.
//
// A conv followed by BatchNorm is folded in QAT as PyTorch's ConvBn2d
// does (unless QuantConfig.NoFoldBN): with sf = gamma/sqrt(running_var +
// eps), the weight w*sf is fake-quantized, the conv output divided by sf,
// the bias added and BN applied; in eval, or once BN is frozen, this is
// exactly conv(x, fq(w*sf)) + beta + (bias - running_mean)*sf, the conv
// an int8 export computes without BN. With quantizers off the folded form
// computes the unfolded function and gradients (TestFoldingMatchesUnfolded).
//
// Graphs share the model's state: params (updated in place by an
// optimizer), BN statistics and quantizers. Run sets BN and quantizer
// modes for the graph's kind: Train (observers observe unless frozen, BN
// uses batch statistics unless frozen), Eval (everything frozen) or
// Calibrate (observers observe, no gradients). SaveState and LoadState
// move a model to and from a safetensors checkpoint.
//
// # Convolution
//
// Conv2d is a float32 2-D convolution that replaces gorgonia's own
// (im2col through a generic Transpose and fresh allocations every run) with
// an im2col into a reused buffer and one GEMM per sample through
// qat/internal/gemm.
//
// # Layout
//
// Activations are NCHW: x is [N, C, H, W], row-major, and the output is
// [N, O, OH, OW] with OH = (H+2P-KH)/S+1 and OW = (W+2P-KW)/S+1 (integer
// division: trailing rows and columns a stride does not reach are
// ignored, as in PyTorch and gorgonia). Weights are OIHW: w is
// [O, C, KH, KW], so w viewed as a matrix [O, C*KH*KW] multiplies the
// im2col matrix [C*KH*KW, OH*OW] whose row (c*KH+kh)*KW+kw holds the input
// pixels that kernel tap meets at each output position. ConvConfig's zero
// value is stride 1 and no padding: Stride 0 means 1. There is no dilation
// and no groups, and no bias: add a bias as a separate broadcast add.
//
// # Padding
//
// Padding is zero padding of P pixels on all four sides: taps that fall
// outside the input read 0 in the forward pass and their gradient is
// dropped in the backward pass. The padded input is never materialized.
//
// # Gradients
//
// Conv2d's op is a gorgonia.SDOp: gorgonia.Grad calls SymDiff, which adds
// two separate op nodes, dX = col2im(W^T · dY) and
// dW = sum over samples of dY · col^T, one GEMM per sample each. The dW op
// recomputes im2col from x instead of caching the forward's columns: that
// costs one more im2col pass per sample (a copy, small next to the GEMMs)
// and keeps memory at one sample's columns, C*KH*KW*OH*OW floats per op,
// where a cache would hold N times that (13 MB for LeNet's second conv at
// batch 128) and would tie the gradient to the forward of the same run.
// Both gradient ops take x, w and dY as inputs, so their shapes follow from
// the graph alone. gorgonia.Grad builds dX even when x is a data input that
// needs no gradient (the first layer's images); that GEMM and col2im are
// then wasted work.
//
// # Buffers
//
// Every op node of this package owns its output: the tensor its Do
// returns is allocated on the node's first run (again only if a run
// brings a larger shape) and overwritten in place by every later run, so
// a training step allocates no tensors. Inputs are never written. A
// node's value therefore lives until the node runs again: downstream ops
// read it within the run, the caller after it (Graph.Logits, Graph.Loss,
// Graph.QuantStats, the gradients Graph.Run copies into Param.Grad), and
// whoever keeps it longer must copy it. Each op writes every element of
// its output on every run, so nothing of an earlier run survives. gorgonia
// may write into such a value in place where its compiler finds it dead:
// the Add that sums the gradients of a node with two consumers (gamma and
// sf of a folded ConvBn) adds into one of the two addends, which no later
// op of that run reads; the value then holds the sum until its op
// overwrites it in the next run (TestRerunMatchesFreshGraph).
//
// Besides its output a node may keep scratch and records, also reused
// from run to run: each Conv2d node (forward, dX, dW) the im2col (or
// column gradient) matrix of one sample (forward and dX: one per
// goroutine, see Threads), none for a 1×1 kernel with
// stride 1 and no padding, where x itself is the column matrix; a
// MaxPool2d forward the index of the element each output picked, which
// its gradient node routes by; a BatchNorm forward the batch statistics
// its gradient statistics node reuses. Because of these buffers, one graph
// must not be run by two machines at once; separate graphs (separate
// Conv2d, Linear, ... calls) are independent.
//
// # Threads
//
// The ops use up to Threads() goroutines (SetThreads, a process-wide
// setting shared with package fakequant through internal/par; by default
// GOMAXPROCS) and give the same bits for every thread count. The conv
// forward and dX ops split the batch into contiguous ranges of samples,
// each goroutine with its own column scratch, running exactly the
// single-threaded per-sample GEMMs. dW sums the samples' products into
// one matrix in sample order, so there each product is split instead, and
// so are Linear's GEMMs, by gemm.SgemmParallel: rows or columns of C,
// never k, bit for bit Sgemm's result. Exact evaluation splits its int8
// layers' batches (infer.Layer.RunParallel).
//
// The elementwise ops split their elements into contiguous ranges: ReLU
// and ReLU6 and their gradients, the forwards and input gradients of
// ChannelMul, ChannelDiv and AddChannelBias (by runs of one channel), and
// pooling and its gradient (by planes, which no window leaves). Ops that
// reduce over a channel split the channels instead, so that each
// channel's sum is computed by one goroutine in the single-threaded order:
// the per-channel gradients of the channel ops and BatchNorm's batch
// statistics, gradient statistics, normalisation and input gradient.
// Loops of fewer than par.MinWork elements per goroutine are not split;
// the small remaining ops (FoldScale, the running-statistics update,
// cross entropy) run on the calling goroutine.
//
// Shapes are checked when the graph is built: x and w must be 4-D float32
// nodes of known shape, their channel counts must agree, the kernel must
// fit in the padded input, and stride and padding must not be negative. A
// run checks the values' shapes again and returns an error, never a panic.
package layers
