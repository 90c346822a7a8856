// Package fakequant puts fake quantization into gorgonia graphs: ops whose
// forward pass is quant.FakeQuantize and whose gradients are the rules of
// package ste, so that gorgonia.Grad and a TapeMachine train through them.
//
// Two quantizers are offered. A FakeQuant takes its params from a
// quant.Observer or from SetParams; Apply adds it to a node's graph. A
// LearnableFakeQuant takes its scale and zero point as graph inputs, float32
// vectors that a solver updates (LSQ, LSQ+ when the zero point is
// learned, and PACT's clipping level alpha = scale*QMax when
// LearnableConfig.PACT is set).
//
// # Numerics
//
// All arithmetic is package quant's and ste's; nothing is re-implemented
// here. Codes are z + roundHalfEven(x * float32(1/s)), rounded half to even,
// and saturate at [QMin, QMax]: +Inf and values above the range give QMax,
// -Inf and values below give QMin. NaN stays NaN in the output. A learnable
// zero point is a float rounded half to even and clamped to [QMin, QMax]
// (quant.RoundZeroPoint) before use, in the forward and backward passes
// alike. The ops are float32 only: a node of another dtype is rejected by
// Apply, and a value of another dtype is an error from Do.
//
// # Channel axis
//
// Per-channel params (Params.Axis >= 0, or a learnable quantizer with
// PerChannel set) hold one scale and zero point per index of that axis of
// the input's row-major shape: axis 0, the output channel, for a conv
// weight [Cout, Cin, kh, kw]; axis 1 for an activation [N, C, H, W]. The
// input's shape is passed to the quant and ste functions. Apply checks the
// channel count when it is known (fixed params, the scale node's shape);
// every run checks it again and returns an error, never a panic.
//
// # Gradients
//
// The input gradient is the clipped straight-through estimator
// (ste.Clipped): gradX = gradY where the unclamped code of x lies in
// [QMin, QMax] under exactly the params the forward pass of the same run
// used, and 0 elsewhere, NaN included. A learnable quantizer also gets
// ste.LSQ's scale gradient (PACT's: QMax times ste.PACT's alpha gradient,
// see pact.go), and ste.LSQPlus's zero-point gradient when
// LearnZeroPoint is set; otherwise DiffWRT marks the zero point as not
// differentiable and no gradient op is built for it. The scale and
// zero-point gradients come from one pass over x (an op whose packed output
// two small ops split); the input gradient from a separate STE op. Every
// gradient is its own op node, added by SymDiff.
//
// The gradient factor g multiplies the scale and zero-point gradients. By
// default it is LSQ's 1/sqrt(n*QMax), n the element count of the whole
// input, as PyTorch's _LearnableFakeQuantize with use_grad_scaling; an
// explicit LearnableConfig.GradFactor replaces it (1 for no scaling).
//
// # Modes and shared state
//
// A *FakeQuant is a handle: the op nodes Apply creates point to it and read
// its mode and params on every run, so modes switch between runs without
// rebuilding or recompiling the graph. Observing (the default with an
// observer) feeds each forward input to the observer, then fake-quantizes
// with the observer's new params; Frozen uses the current params and
// observes nothing; Disabled is a float pass-through, y = x and
// gradX = gradY, bit for bit. SetParams fixes the params (an observing
// quantizer becomes frozen); Params returns a copy. A LearnableFakeQuant
// has SetEnabled: disabled, y = x, gradX = gradY and the parameter
// gradients are zero.
//
// Each application is a distinct node: an op's hash includes a number
// unique to it, because gorgonia merges nodes of equal hash and equal
// children. Two quantizers (or one quantizer applied twice) on the same
// input therefore stay two nodes. The forward op leaves the mode and params
// it used in a record private to its node; the gradient ops read that
// record and take the forward output as an input, so that they run after
// it. Quantizer methods may be called from any goroutine, but one graph
// must not be run by two machines at once.
//
// # Buffers
//
// Each op node owns its output: the tensor Do returns is allocated on
// the node's first run (again only if a run brings a larger shape) and
// overwritten in place, every element, by each later run. A node's value
// lives until the node runs again; downstream ops read it within the run
// and a caller after it, and whoever keeps it longer must copy it. Inputs
// are never modified, with one documented exception: a LearnableFakeQuant
// with ClampScale raises a finite scale below quant.Eps to quant.Eps in
// the scale node's own value, as PyTorch's module clamps scale.data in
// place, so that the solver continues from the clamped value. Without
// ClampScale a non-positive scale is an error, and a NaN or infinite
// scale always is. Observers copy what they keep. Values that are views
// or transposed tensors are read through a materialized copy.
//
// # Threads
//
// A FakeQuant with per-tensor params splits its forward and STE gradient
// into contiguous ranges of elements across up to layers.Threads()
// goroutines (the setting lives in internal/par), and so does its
// observer's extrema scan (package quant); both are elementwise or exact
// in any order, so every thread count gives the same bits. Per-channel
// quantizers (weights, small) and the learnable quantizers, whose scale
// gradients are float sums over the whole input, run on one goroutine.
//
// # Errors
//
// Errors from a forward or gradient op start with "fakequant NAME:", NAME
// being the quantizer's name ("fq" or "lfq" and a unique number unless one
// is given), and wrap the cause: quant.ErrNonFinite for NaN or Inf input to
// an observing quantizer (the observer is left unchanged), ErrNoParams for a
// frozen quantizer that has none. gorgonia's VM error around them exposes
// the cause through an Err method rather than Unwrap.
package fakequant
