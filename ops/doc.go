// Package ops holds qat's float32 layer ops for gorgonia graphs, each a
// function that adds an op node (and, through gorgonia.Grad, its gradient
// nodes) to a graph:
//
//   - Conv2d: 2-D convolution, grouped and depthwise too, im2col and one
//     GEMM per sample and group (direct loops for depthwise 3×3);
//   - Linear: fully connected layer, y = x·w^T + b; Flatten;
//   - ReLU and ReLU6;
//   - MaxPool2d (MaxPool2dPadded with -Inf padding), AvgPool2d and
//     GlobalAvgPool;
//   - Add and Concat (along channels): the joins of residual and
//     multi-branch networks;
//   - BatchNorm (PyTorch's BatchNorm2d/1d, with its running statistics);
//   - FoldScale, ChannelMul, ChannelDiv and AddChannelBias: PyTorch's QAT
//     Conv+BN folding (see channel.go);
//   - CrossEntropy: the mean softmax cross-entropy loss, and
//     NewDistillation's: cross-entropy plus Hinton et al.'s distillation
//     term against a teacher's logits.
//
// The ops know nothing of models: no model description, quantizer or
// checkpoint. Package layers builds a model's graph from them (and
// package fakequant's quantizers); the only state an op keeps across runs
// is its own (BatchNorm's running statistics, the buffers below).
//
// Every op computes in float32 on row-major values (sums of many terms in
// float64 where the doc of the op says so), follows the definition of the
// PyTorch 1.13 function of the same name (each op's doc gives its
// arithmetic and where it rounds; the tests check them against float64
// references), and gives the same bits for the same inputs on every run,
// for any thread count.
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
// value is stride 1, no padding and one group: Stride 0 and Groups 0 mean
// 1. With G groups w is [O, C/G, KH, KW] and output channel o reads input
// channels g*C/G to (g+1)*C/G-1 of its group g = o/(O/G) only (PyTorch's
// groups): the im2col matrix is the same, and group g multiplies its O/G
// rows of w by its C/G*KH*KW rows of it. There is no dilation, and no
// bias: add a bias as a separate broadcast add.
//
// # Convolution
//
// Conv2d is a float32 2-D convolution that replaces gorgonia's own
// (im2col through a generic Transpose and fresh allocations every run) with
// an im2col into a reused buffer and one GEMM per sample and group through
// qat/internal/gemm. A depthwise convolution (G = C = O) with a 3×3
// kernel, MobileNet's, is computed by direct loops instead (depthwise.go):
// its GEMMs would have a single row.
//
// # Padding
//
// Padding is zero padding of P pixels on all four sides: taps that fall
// outside the input read 0 in the forward pass and their gradient is
// dropped in the backward pass. The padded input is never materialized.
//
// # Gradients
//
// Every op is a gorgonia.SDOp: gorgonia.Grad calls SymDiff, which adds
// separate gradient op nodes. Conv2d's are dX = col2im(W^T · dY) and
// dW = sum over samples of dY · col^T, one GEMM per sample each. The dW op
// recomputes im2col from x instead of caching the forward's columns: that
// costs one more im2col pass per sample (a copy, small next to the GEMMs)
// and keeps memory at one sample's columns, C*KH*KW*OH*OW floats per op,
// where a cache would hold N times that (13 MB for LeNet's second conv at
// batch 128) and would tie the gradient to the forward of the same run.
// Both gradient ops take x, w and dY as inputs, so their shapes follow from
// the graph alone. With groups, each is one GEMM per group of the same
// form; the depthwise 3×3 loops compute dX by scattering each output's
// gradient over its window and dW by channel (see depthwise.go). gorgonia.Grad builds dX even when x is a data input that
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
// read it within the run, the caller after it, and whoever keeps it longer
// must copy it. Each op writes every element of its output on every run,
// so nothing of an earlier run survives. gorgonia may write into such a
// value in place where its compiler finds it dead: the Add that sums the
// gradients of a node with two consumers (gamma and sf of a folded ConvBn)
// adds into one of the two addends, which no later op of that run reads;
// the value then holds the sum until its op overwrites it in the next run.
//
// Besides its output a node may keep scratch and records, also reused
// from run to run: each Conv2d node (forward, dX, dW) the im2col (or
// column gradient) matrix of one sample (forward and dX: one per
// goroutine, see Threads), none for a 1×1 kernel with
// stride 1 and no padding, where x itself is the column matrix, and one
// padded plane per goroutine for the depthwise 3×3 loops; a
// MaxPool2d forward the index of the element each output picked, which
// its gradient node routes by; a BatchNorm forward the batch statistics
// its gradient statistics node reuses. Because of these buffers, one graph
// must not be run by two machines at once; separate graphs (separate
// Conv2d, Linear, ... calls) are independent.
//
// # Threads
//
// The ops use up to par.Threads() goroutines (the process-wide setting of
// qat/internal/par, shared with package fakequant and set through
// layers.SetThreads; by default GOMAXPROCS) and give the same bits for
// every thread count. The conv forward and dX ops split the batch into
// contiguous ranges of samples, each goroutine with its own column
// scratch, running exactly the single-threaded per-sample GEMMs. dW sums
// the samples' products into one matrix in sample order, so there each
// product is split instead (blocks of a group's columns), and so are
// Linear's GEMMs, by gemm.SgemmParallel: rows or columns of C, never k,
// bit for bit Sgemm's result. The depthwise 3×3 loops split planes
// (forward, dX) and channels (dW).
//
// The elementwise ops split their elements into contiguous ranges: ReLU
// and ReLU6 and their gradients, Add, the forwards and input gradients of
// ChannelMul, ChannelDiv and AddChannelBias (by runs of one channel),
// pooling, global average pooling and their gradients (by planes, which
// no window leaves), Concat and its gradients (by samples). Ops that
// reduce over a channel split the channels instead, so that each
// channel's sum is computed by one goroutine in the single-threaded order:
// the per-channel gradients of the channel ops and BatchNorm's batch
// statistics, gradient statistics, normalisation and input gradient.
// Loops of fewer than par.MinWork elements per goroutine are not split;
// the small remaining ops (FoldScale, the running-statistics update,
// cross entropy) run on the calling goroutine.
//
// # Errors
//
// Shapes are checked when the graph is built: for Conv2d, x and w must be
// 4-D float32 nodes of known shape, their channel counts must agree (C =
// the weight's channels times the groups, O a multiple of the groups), the
// kernel must fit in the padded input, and stride, padding and groups must
// not be negative; each op's doc says what it requires. A run checks the values'
// shapes again and returns an error naming the op (its String, e.g.
// "Conv2d(s=1,p=0)#12"), never a panic.
package ops
