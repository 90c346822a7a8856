package ops

import (
	"fmt"
	"math"
	"strconv"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/internal/par"
)

// BatchNormConfig holds a BatchNorm's hyperparameters. The zero value is
// PyTorch's default, momentum 0.1 and eps 1e-5.
type BatchNormConfig struct {
	// Momentum is the weight of the new batch in the running statistics:
	// running = (1-Momentum)*running + Momentum*batch. 0 means 0.1 (so a
	// BatchNorm whose statistics never move is not expressible; use
	// Training = false instead). It must lie in [0, 1]. PyTorch's
	// momentum=None (cumulative average) is not supported.
	Momentum float32
	// Eps is added to the variance before its square root. 0 means 1e-5;
	// negative, NaN or infinite is an error.
	Eps float32
}

// BatchNorm is the state of one batch-normalisation layer, PyTorch 1.13's
// BatchNorm2d (or BatchNorm1d) with affine parameters and tracked running
// statistics. The affine parameters are not part of it: they are graph
// nodes passed to Apply, so that they are trained like any other.
//
// The op nodes Apply (and FoldScale) create point to the BatchNorm and
// read its fields on every run, so Training and the running statistics
// may be changed between runs without rebuilding the graph, and several
// Apply calls (in one graph or in several, e.g. a training graph and an
// evaluation graph built separately) share one state. Fields must not be
// changed while a graph using them runs, and graphs sharing a BatchNorm
// must not run concurrently.
type BatchNorm struct {
	// RunningMean and RunningVar are the running statistics, one per
	// channel. NewBatchNorm allocates them, at 0 and 1. A training run
	// writes them in place; they may be replaced (e.g. loaded from a
	// checkpoint) between runs, but must keep their length C: a run
	// finding another length returns an error.
	RunningMean, RunningVar []float32
	// NumBatchesTracked counts the training runs that updated the running
	// statistics, as PyTorch's num_batches_tracked buffer.
	NumBatchesTracked int64
	// Training is read each time the forward op runs. True: normalise with
	// the batch's statistics and update the running ones. False: normalise
	// with the running statistics and leave them alone (PyTorch's eval
	// mode, and how QAT freezes BN statistics). NewBatchNorm sets it to
	// true, as a new PyTorch module is in training mode.
	Training bool

	momentum, eps float64 // resolved, as PyTorch's Python floats
	eps32         float32
	channels      int
}

// NewBatchNorm returns a BatchNorm for the given number of channels, in
// training mode, with RunningMean all 0, RunningVar all 1 and
// NumBatchesTracked 0. channels < 1 and out-of-range config values are
// errors.
func NewBatchNorm(channels int, cfg BatchNormConfig) (*BatchNorm, error) {
	if channels < 1 {
		return nil, fmt.Errorf("ops.NewBatchNorm: %d channels, want at least 1", channels)
	}
	m, eps := cfg.Momentum, cfg.Eps
	if m == 0 {
		m = 0.1
	}
	if eps == 0 {
		eps = 1e-5
	}
	if !(m >= 0 && m <= 1) {
		return nil, fmt.Errorf("ops.NewBatchNorm: momentum %v outside [0, 1]", cfg.Momentum)
	}
	if !(eps > 0) || math.IsInf(float64(eps), 0) {
		return nil, fmt.Errorf("ops.NewBatchNorm: eps %v is not positive and finite", cfg.Eps)
	}
	bn := &BatchNorm{
		RunningMean: make([]float32, channels),
		RunningVar:  make([]float32, channels),
		Training:    true,
		momentum:    decimal64(m),
		eps:         decimal64(eps),
		eps32:       eps,
		channels:    channels,
	}
	for i := range bn.RunningVar {
		bn.RunningVar[i] = 1
	}
	return bn, nil
}

// decimal64 returns the float64 of v's shortest decimal form, so that
// float32(0.1) becomes the 0.1 a PyTorch module holds as a Python float.
func decimal64(v float32) float64 {
	d, err := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
	if err != nil {
		return float64(v)
	}
	return d
}

// Eps returns the epsilon in use (1e-5 when the config gave 0).
func (bn *BatchNorm) Eps() float32 { return bn.eps32 }

// Apply returns y = gamma[c] * (x - mean[c]) / sqrt(var[c] + eps) +
// beta[c] for x [N, C, H, W] (or [N, C], or any [N, C, ...]), gamma and
// beta [C], all float32 nodes of known shape; y has x's shape. A channel
// count other than the BatchNorm's, or other ranks or dtypes, are errors
// here, at build time.
//
// In training mode (Training true when the op runs) mean and var are the
// batch's, over N and the spatial axes (n = N*H*W values a channel),
// accumulated in float64, var biased (divided by n). The same run then
// updates running_mean = (1-m)*running_mean + m*mean and running_var =
// (1-m)*running_var + m*var*n/(n-1) (the unbiased variance), in float64
// rounded to float32, and increments NumBatchesTracked: exactly once per
// run of this node (the update happens in its Do, even if a later op of
// the run fails). n = 1 is an error in training mode, as in PyTorch. In
// evaluation mode (Training false) mean and var are RunningMean and
// RunningVar, which the run leaves alone.
//
// Gradients, for x, gamma and beta, are separate op nodes that gorgonia.Grad
// adds. The forward op records, privately to its node, which mode it ran
// in and the statistics it used (the batch mean and biased variance in
// training mode, the running mean and 1/sqrt(var+eps) in evaluation mode);
// the gradient ops read that record and take the forward's output as an
// input, so they run after it and use the same mode. In training mode they
// do the full batch-norm backward with the batch mean and inverse standard
// deviation of x (rounded to float32, as PyTorch's saved statistics),
// taken from the record, which holds exactly what computing them again
// from the same x would give:
// dx = gamma*invstd*(dy - mean(dy) - (x-mean)*invstd^2*mean(dy*(x-mean))),
// dgamma = sum(dy*(x-mean))*invstd, dbeta = sum(dy). They never read the
// running statistics, which the forward has just updated. In evaluation
// mode dx = dy*gamma*invstd_running, dgamma = sum(dy*(x-mean_running))*
// invstd_running, dbeta = sum(dy); there the forward updated nothing, so
// the recorded statistics are the current ones; the record just makes the
// gradient independent of any later change. One gradient op computes the
// four per-channel sums ([4, C]: mean, invstd, sum dy, sum dy*(x-mean)),
// the dx, dgamma and dbeta ops read them.
//
// Each op node owns its output tensor and overwrites it on every run (see
// Buffers in the package doc); inputs are never written. Run-time errors
// (values of the wrong shape, running statistics of the wrong length,
// n = 1 when training) name the op.
func (bn *BatchNorm) Apply(x, gamma, beta *gorgonia.Node) (*gorgonia.Node, error) {
	if bn == nil || bn.channels < 1 {
		return nil, fmt.Errorf("ops.BatchNorm.Apply: BatchNorm not made by NewBatchNorm")
	}
	if err := checkNode(x, "input", -1); err != nil {
		return nil, fmt.Errorf("ops.BatchNorm.Apply: %w", err)
	}
	if err := checkNode(gamma, "gamma", 1); err != nil {
		return nil, fmt.Errorf("ops.BatchNorm.Apply: %w", err)
	}
	if err := checkNode(beta, "beta", 1); err != nil {
		return nil, fmt.Errorf("ops.BatchNorm.Apply: %w", err)
	}
	if err := bn.checkShapes(x.Shape(), gamma.Shape(), beta.Shape()); err != nil {
		return nil, fmt.Errorf("ops.BatchNorm.Apply: %w", err)
	}
	y, err := gorgonia.ApplyOp(newBN(bn), x, gamma, beta)
	if err != nil {
		return nil, fmt.Errorf("ops.BatchNorm.Apply: %w", err)
	}
	return y, nil
}

func (bn *BatchNorm) checkShapes(xs, gs, bs tensor.Shape) error {
	if len(xs) < 2 {
		return fmt.Errorf("input shape %v, want [N, C] or [N, C, H, W]", xs)
	}
	if xs[1] != bn.channels {
		return fmt.Errorf("input shape %v has %d channels, BatchNorm has %d", xs, xs[1], bn.channels)
	}
	if len(gs) != 1 || gs[0] != bn.channels {
		return fmt.Errorf("gamma shape %v, want [%d]", gs, bn.channels)
	}
	if len(bs) != 1 || bs[0] != bn.channels {
		return fmt.Errorf("beta shape %v, want [%d]", bs, bn.channels)
	}
	return nil
}

// bnRecord is what a bnOp leaves for its gradient ops in the same run.
type bnRecord struct {
	ran      bool
	training bool
	shape    tensor.Shape
	// mean and invstd are the running statistics used in evaluation
	// mode; in training mode mean and variance are the batch's.
	mean, invstd, variance []float64
}

// f64s returns buf resized to n, reallocated if it is too small.
func f64s(buf []float64, n int) []float64 {
	if cap(buf) < n {
		return make([]float64, n)
	}
	return buf[:n]
}

func (r *bnRecord) check(op fmt.Stringer, xs tensor.Shape) error {
	if !r.ran {
		return fmt.Errorf("%v: gradient run before the forward pass", op)
	}
	if !xs.Eq(r.shape) {
		return fmt.Errorf("%v: input shape %v, the forward saw %v", op, xs, r.shape)
	}
	return nil
}

// bnOp is the batch-norm forward: inputs x, gamma, beta.
type bnOp struct {
	base
	id  uint64
	bn  *BatchNorm
	rec *bnRecord
	out graphval.Buffer
}

func newBN(bn *BatchNorm) *bnOp {
	id := graphval.NewID()
	return &bnOp{base: named("BatchNorm#%d", id), id: id, bn: bn, rec: new(bnRecord)}
}

func (op *bnOp) Arity() int { return 3 }
func (op *bnOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeAny, graphval.TypeVec, graphval.TypeVec, graphval.TypeAny)
}
func (op *bnOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	var ss [3]tensor.Shape
	for i := range ss {
		s, err := graphval.ShapeArg(ds, i)
		if err != nil {
			return nil, err
		}
		ss[i] = s
	}
	if err := op.bn.checkShapes(ss[0], ss[1], ss[2]); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return ss[0], nil
}

// bnDims splits x [N, C, ...] into batch, channels and the per-sample
// size of one channel.
func bnDims(xs tensor.Shape) (n, c, inner int) {
	_, inner = outerInner(xs, 1)
	return xs[0], xs[1], inner
}

// batchStats writes the per-channel mean and biased variance of x
// [N, C, inner] to mean and variance ([C] each), two passes in float64.
// The channels are split across goroutines (par.Range); each channel's
// sums run on one of them, in the same order for any thread count.
func batchStats(mean, variance []float64, x []float32, n, c, inner int) {
	par.Range(c, 2*n*inner, func(lo, hi int) { batchStatsOf(mean, variance, x, n, c, inner, lo, hi) })
}

// batchStatsOf is batchStats for channels [lo, hi).
func batchStatsOf(mean, variance []float64, x []float32, n, c, inner, lo, hi int) {
	cnt := float64(n * inner)
	seg := func(b, ch int) []float32 { return x[(b*c+ch)*inner : (b*c+ch+1)*inner] }
	for ch := lo; ch < hi; ch++ {
		// Two samples' sums at a time (sum64x2), added in sample order:
		// the same additions as one sample at a time.
		var s float64
		b := 0
		for ; b+2 <= n; b += 2 {
			s0, s1 := sum64x2(seg(b, ch), seg(b+1, ch))
			s += s0
			s += s1
		}
		if b < n {
			s += sum64(seg(b, ch))
		}
		m := s / cnt
		var q float64
		b = 0
		for ; b+2 <= n; b += 2 {
			q0, q1 := sqDev64x2(seg(b, ch), seg(b+1, ch), m)
			q += q0
			q += q1
		}
		if b < n {
			q += sqDev64(seg(b, ch), m)
		}
		mean[ch], variance[ch] = m, q/cnt
	}
}

// sum64x2 returns sum64(s) and sum64(u), len(u) = len(s), computed side
// by side: eight independent accumulators instead of four.
func sum64x2(s, u []float32) (float64, float64) {
	u = u[:len(s)]
	var a0, a1, a2, a3, b0, b1, b2, b3 float64
	i := 0
	for ; i+4 <= len(s); i += 4 {
		t, v := s[i:i+4:i+4], u[i:i+4:i+4]
		a0 += float64(t[0])
		a1 += float64(t[1])
		a2 += float64(t[2])
		a3 += float64(t[3])
		b0 += float64(v[0])
		b1 += float64(v[1])
		b2 += float64(v[2])
		b3 += float64(v[3])
	}
	for ; i < len(s); i++ {
		a0 += float64(s[i])
		b0 += float64(u[i])
	}
	return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3)
}

// sqDev64x2 returns sqDev64(s, m) and sqDev64(u, m), len(u) = len(s),
// side by side as sum64x2.
func sqDev64x2(s, u []float32, m float64) (float64, float64) {
	u = u[:len(s)]
	var a0, a1, a2, a3, b0, b1, b2, b3 float64
	i := 0
	for ; i+4 <= len(s); i += 4 {
		t, v := s[i:i+4:i+4], u[i:i+4:i+4]
		d0, d1, d2, d3 := float64(t[0])-m, float64(t[1])-m, float64(t[2])-m, float64(t[3])-m
		e0, e1, e2, e3 := float64(v[0])-m, float64(v[1])-m, float64(v[2])-m, float64(v[3])-m
		a0 += d0 * d0
		a1 += d1 * d1
		a2 += d2 * d2
		a3 += d3 * d3
		b0 += e0 * e0
		b1 += e1 * e1
		b2 += e2 * e2
		b3 += e3 * e3
	}
	for ; i < len(s); i++ {
		d, e := float64(s[i])-m, float64(u[i])-m
		a0 += d * d
		b0 += e * e
	}
	return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3)
}

// sum64 is the float64 sum of s, in four interleaved partial sums (for
// speed: one float64 accumulator is bound by the add latency).
func sum64(s []float32) float64 {
	var a0, a1, a2, a3 float64
	i := 0
	for ; i+4 <= len(s); i += 4 {
		t := s[i : i+4 : i+4]
		a0 += float64(t[0])
		a1 += float64(t[1])
		a2 += float64(t[2])
		a3 += float64(t[3])
	}
	for ; i < len(s); i++ {
		a0 += float64(s[i])
	}
	return (a0 + a1) + (a2 + a3)
}

// sqDev64 is the float64 sum of (s[i]-m)^2, as sum64.
func sqDev64(s []float32, m float64) float64 {
	var a0, a1, a2, a3 float64
	i := 0
	for ; i+4 <= len(s); i += 4 {
		t := s[i : i+4 : i+4]
		d0, d1, d2, d3 := float64(t[0])-m, float64(t[1])-m, float64(t[2])-m, float64(t[3])-m
		a0 += d0 * d0
		a1 += d1 * d1
		a2 += d2 * d2
		a3 += d3 * d3
	}
	for ; i < len(s); i++ {
		d := float64(s[i]) - m
		a0 += d * d
	}
	return (a0 + a1) + (a2 + a3)
}

// gradSums64 returns the float64 sums of g[i] and of g[i]*(x[i]-m), as
// sum64; len(x) >= len(g).
func gradSums64(g, x []float32, m float64) (sg, dot float64) {
	x = x[:len(g)]
	var s0, s1, d0, d1 float64
	i := 0
	for ; i+2 <= len(g); i += 2 {
		gt, xt := g[i:i+2:i+2], x[i:i+2:i+2]
		g0, g1 := float64(gt[0]), float64(gt[1])
		s0 += g0
		s1 += g1
		d0 += g0 * (float64(xt[0]) - m)
		d1 += g1 * (float64(xt[1]) - m)
	}
	for ; i < len(g); i++ {
		s0 += float64(g[i])
		d0 += float64(g[i]) * (float64(x[i]) - m)
	}
	return s0 + s1, d0 + d1
}

// gradSums64x2 returns gradSums64(g, x, m) and gradSums64(h, y, m),
// len(x) >= len(g), len(h) = len(g), len(y) >= len(g), computed side by
// side: eight independent accumulators instead of four.
func gradSums64x2(g, x, h, y []float32, m float64) (sg, dot, sh, doth float64) {
	x, h, y = x[:len(g)], h[:len(g)], y[:len(g)]
	var s0, s1, d0, d1, t0, t1, e0, e1 float64
	i := 0
	for ; i+2 <= len(g); i += 2 {
		gt, xt := g[i:i+2:i+2], x[i:i+2:i+2]
		ht, yt := h[i:i+2:i+2], y[i:i+2:i+2]
		g0, g1 := float64(gt[0]), float64(gt[1])
		h0, h1 := float64(ht[0]), float64(ht[1])
		s0 += g0
		s1 += g1
		d0 += g0 * (float64(xt[0]) - m)
		d1 += g1 * (float64(xt[1]) - m)
		t0 += h0
		t1 += h1
		e0 += h0 * (float64(yt[0]) - m)
		e1 += h1 * (float64(yt[1]) - m)
	}
	for ; i < len(g); i++ {
		s0 += float64(g[i])
		d0 += float64(g[i]) * (float64(x[i]) - m)
		t0 += float64(h[i])
		e0 += float64(h[i]) * (float64(y[i]) - m)
	}
	return s0 + s1, d0 + d1, t0 + t1, e0 + e1
}

func (op *bnOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	op.rec.ran = false
	x, xs, err := graphval.ReadFloat32s(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	gamma, gs, err := graphval.ReadFloat32s(op, vals[1], "gamma")
	if err != nil {
		return nil, err
	}
	beta, bs, err := graphval.ReadFloat32s(op, vals[2], "beta")
	if err != nil {
		return nil, err
	}
	bn := op.bn
	if err := bn.checkShapes(xs, gs, bs); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	if len(bn.RunningMean) != bn.channels || len(bn.RunningVar) != bn.channels {
		return nil, fmt.Errorf("%v: running statistics have %d and %d elements, want %d",
			op, len(bn.RunningMean), len(bn.RunningVar), bn.channels)
	}
	training := bn.Training
	mean, invstd, err := op.statistics(x, xs, training)
	if err != nil {
		return nil, err
	}
	n, c, inner := bnDims(xs)
	out, y := op.out.Dense(xs)
	// Elementwise, split by channels across goroutines.
	par.Range(c, n*inner, func(lo, hi int) { bnNormalize(y, x, gamma, beta, mean, invstd, n, c, inner, lo, hi) })
	op.rec.training, op.rec.shape = training, xs
	op.rec.ran = true
	return out, nil
}

// statistics returns the per-channel mean and 1/sqrt(variance+eps) that
// normalise x of shape xs, held in the record for the backward: when
// training, x's batch statistics, which also update the running ones and
// the batch count; otherwise the running statistics.
func (op *bnOp) statistics(x []float32, xs tensor.Shape, training bool) (mean, invstd []float64, err error) {
	bn, rec := op.bn, op.rec
	n, c, inner := bnDims(xs)
	cnt := n * inner
	mean, invstd = f64s(rec.mean, c), f64s(rec.invstd, c)
	rec.mean, rec.invstd = mean, invstd
	if !training {
		for ch := range mean {
			mean[ch] = float64(bn.RunningMean[ch])
			invstd[ch] = 1 / math.Sqrt(float64(bn.RunningVar[ch])+bn.eps)
		}
		return mean, invstd, nil
	}
	if cnt < 2 {
		return nil, nil, fmt.Errorf("%v: expected more than 1 value per channel when training, got input shape %v", op, xs)
	}
	variance := f64s(rec.variance, c)
	rec.variance = variance
	batchStats(mean, variance, x, n, c, inner)
	m := bn.momentum
	unbias := float64(cnt) / float64(cnt-1)
	for ch := range invstd {
		invstd[ch] = 1 / math.Sqrt(variance[ch]+bn.eps)
		bn.RunningMean[ch] = float32((1-m)*float64(bn.RunningMean[ch]) + m*mean[ch])
		bn.RunningVar[ch] = float32((1-m)*float64(bn.RunningVar[ch]) + m*variance[ch]*unbias)
	}
	bn.NumBatchesTracked++
	return mean, invstd, nil
}

// bnNormalize writes BatchNorm's output y = (x-mean)*invstd*gamma + beta
// for channels [lo, hi) of x [N, C, inner].
func bnNormalize(y, x, gamma, beta []float32, mean, invstd []float64, n, c, inner, lo, hi int) {
	for ch := lo; ch < hi; ch++ {
		alpha := invstd[ch] * float64(gamma[ch])
		a, b := float32(alpha), float32(float64(beta[ch])-mean[ch]*alpha)
		for bi := 0; bi < n; bi++ {
			off := (bi*c + ch) * inner
			src := x[off : off+inner]
			dst := y[off : off+inner]
			dst = dst[:len(src)]
			for j, v := range src {
				dst[j] = v*a + b
			}
		}
	}
}

func (op *bnOp) DiffWRT(inputs int) []bool { return []bool{true, true, true} }

// SymDiff returns dx, dgamma and dbeta, built on one statistics op
// bnStatsOp(x, dY, y).
func (op *bnOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if len(inputs) != 3 {
		return nil, fmt.Errorf("%v: %d inputs, want 3", op, len(inputs))
	}
	x, gamma := inputs[0], inputs[1]
	// output is an input only so that the statistics run after the forward
	// that fills the record.
	stats, err := gorgonia.ApplyOp(newBNStats(op), x, grad, output)
	if err != nil {
		return nil, fmt.Errorf("%v: gradient statistics: %w", op, err)
	}
	gx, err := gorgonia.ApplyOp(newBNGradX(op), x, gamma, grad, stats)
	if err != nil {
		return nil, fmt.Errorf("%v: input gradient: %w", op, err)
	}
	gg, err := gorgonia.ApplyOp(newBNParamGrad(op, false), stats)
	if err != nil {
		return nil, fmt.Errorf("%v: gamma gradient: %w", op, err)
	}
	gb, err := gorgonia.ApplyOp(newBNParamGrad(op, true), stats)
	if err != nil {
		return nil, fmt.Errorf("%v: beta gradient: %w", op, err)
	}
	return gorgonia.Nodes{gx, gg, gb}, nil
}

var _ gorgonia.SDOp = (*bnOp)(nil)

// Rows of the [4, C] gradient statistics.
const (
	bnRowMean = iota
	bnRowInvstd
	bnRowSumDy
	bnRowDotP // sum of dy*(x-mean)
	bnRows
)

// bnStatsOp computes the [4, C] gradient statistics: inputs x, dY and y
// (the forward's output, for ordering only).
type bnStatsOp struct {
	base
	fwd *bnOp
	out graphval.Buffer
}

func newBNStats(fwd *bnOp) *bnStatsOp {
	return &bnStatsOp{base: named("BatchNormGradStats#%d", fwd.id), fwd: fwd}
}

func (op *bnStatsOp) Arity() int { return 3 }
func (op *bnStatsOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeAny, graphval.TypeAny, graphval.TypeAny, graphval.TypeMat)
}
func (op *bnStatsOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	xs, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	if len(xs) < 2 {
		return nil, fmt.Errorf("%v: input shape %v has no channel axis", op, xs)
	}
	return tensor.Shape{bnRows, xs[1]}, nil
}

func (op *bnStatsOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, xs, err := graphval.ReadFloat32s(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	dy, dys, err := graphval.ReadFloat32s(op, vals[1], "output gradient")
	if err != nil {
		return nil, err
	}
	rec := op.fwd.rec
	if err := rec.check(op, xs); err != nil {
		return nil, err
	}
	if !dys.Eq(xs) {
		return nil, fmt.Errorf("%v: output gradient has shape %v, input %v", op, dys, xs)
	}
	n, c, inner := bnDims(xs)
	out, st := op.out.Dense(tensor.Shape{bnRows, c})
	if rec.training {
		// The forward's batch statistics of this very x.
		mean, variance := rec.mean, rec.variance
		for ch := 0; ch < c; ch++ {
			st[bnRowMean*c+ch] = float32(mean[ch])
			st[bnRowInvstd*c+ch] = float32(1 / math.Sqrt(variance[ch]+op.fwd.bn.eps))
		}
	} else {
		for ch := 0; ch < c; ch++ {
			st[bnRowMean*c+ch] = float32(rec.mean[ch])
			st[bnRowInvstd*c+ch] = float32(rec.invstd[ch])
		}
	}
	// Split by channels across goroutines: each channel's sums run on one
	// of them, in sample order whatever the thread count.
	par.Range(c, n*inner, func(lo, hi int) { bnGradSums(st, dy, x, n, c, inner, lo, hi) })
	return out, nil
}

// bnGradSums writes the sum of dy and of dy*(x-mean) rows of the [4, C]
// statistics st for channels [lo, hi) of x [N, C, inner], from its mean
// row, adding the samples in order.
func bnGradSums(st, dy, x []float32, n, c, inner, lo, hi int) {
	for ch := lo; ch < hi; ch++ {
		m := float64(st[bnRowMean*c+ch])
		var sdy, dot float64
		b := 0
		for ; b+2 <= n; b += 2 {
			// Two samples side by side (gradSums64x2), added in order.
			o0, o1 := (b*c+ch)*inner, ((b+1)*c+ch)*inner
			s0, d0, s1, d1 := gradSums64x2(dy[o0:o0+inner], x[o0:o0+inner], dy[o1:o1+inner], x[o1:o1+inner], m)
			sdy += s0
			dot += d0
			sdy += s1
			dot += d1
		}
		if b < n {
			off := (b*c + ch) * inner
			s, d := gradSums64(dy[off:off+inner], x[off:off+inner], m)
			sdy += s
			dot += d
		}
		st[bnRowSumDy*c+ch] = float32(sdy)
		st[bnRowDotP*c+ch] = float32(dot)
	}
}

var _ gorgonia.Op = (*bnStatsOp)(nil)

// readStats reads and checks the [4, C] statistics value.
func readStats(op fmt.Stringer, v gorgonia.Value, c int) ([]float32, error) {
	st, ss, err := graphval.ReadFloat32s(op, v, "gradient statistics")
	if err != nil {
		return nil, err
	}
	if !ss.Eq(tensor.Shape{bnRows, c}) {
		return nil, fmt.Errorf("%v: gradient statistics have shape %v, want [%d %d]", op, ss, bnRows, c)
	}
	return st, nil
}

// bnGradXOp is dx: inputs x, gamma, dY and the statistics.
type bnGradXOp struct {
	base
	fwd *bnOp
	out graphval.Buffer
}

func newBNGradX(fwd *bnOp) *bnGradXOp {
	return &bnGradXOp{base: named("BatchNormGradX#%d", fwd.id), fwd: fwd}
}

func (op *bnGradXOp) Arity() int { return 4 }
func (op *bnGradXOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeAny, graphval.TypeVec, graphval.TypeAny, graphval.TypeMat, graphval.TypeAny)
}
func (op *bnGradXOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}

func (op *bnGradXOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, xs, err := graphval.ReadFloat32s(op, vals[0], "input")
	if err != nil {
		return nil, err
	}
	gamma, gs, err := graphval.ReadFloat32s(op, vals[1], "gamma")
	if err != nil {
		return nil, err
	}
	dy, dys, err := graphval.ReadFloat32s(op, vals[2], "output gradient")
	if err != nil {
		return nil, err
	}
	rec := op.fwd.rec
	if err := rec.check(op, xs); err != nil {
		return nil, err
	}
	if err := op.fwd.bn.checkShapes(xs, gs, gs); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	if !dys.Eq(xs) {
		return nil, fmt.Errorf("%v: output gradient has shape %v, input %v", op, dys, xs)
	}
	n, c, inner := bnDims(xs)
	st, err := readStats(op, vals[3], c)
	if err != nil {
		return nil, err
	}
	out, dx := op.out.Dense(xs)
	// Elementwise, split by channels across goroutines.
	par.Range(c, n*inner, func(lo, hi int) { bnGradX(dx, dy, x, gamma, st, rec.training, n, c, inner, lo, hi) })
	return out, nil
}

// bnGradX writes BatchNorm's input gradient dx for channels [lo, hi) of
// x [N, C, inner], from the [4, C] statistics st.
func bnGradX(dx, dy, x, gamma, st []float32, training bool, n, c, inner, lo, hi int) {
	cnt := float64(n * inner)
	for ch := lo; ch < hi; ch++ {
		mean := float64(st[bnRowMean*c+ch])
		invstd := float64(st[bnRowInvstd*c+ch])
		scale := invstd * float64(gamma[ch])
		if !training {
			s := float32(scale)
			for b := 0; b < n; b++ {
				off := (b*c + ch) * inner
				src, dst := dy[off:off+inner], dx[off:off+inner]
				dst = dst[:len(src)]
				for j, g := range src {
					dst[j] = g * s
				}
			}
			continue
		}
		gradMean := float64(st[bnRowSumDy*c+ch]) / cnt
		k := float64(st[bnRowDotP*c+ch]) * invstd * invstd / cnt
		for b := 0; b < n; b++ {
			off := (b*c + ch) * inner
			src := dy[off : off+inner]
			dst, xc := dx[off:off+inner], x[off:off+inner]
			dst, xc = dst[:len(src)], xc[:len(src)]
			for j, g := range src {
				dst[j] = float32((float64(g) - gradMean - (float64(xc[j])-mean)*k) * scale)
			}
		}
	}
}

var _ gorgonia.Op = (*bnGradXOp)(nil)

// bnParamGradOp is dgamma = dotp*invstd or, when beta, dbeta = sum dy:
// input the statistics.
type bnParamGradOp struct {
	base
	fwd  *bnOp
	beta bool
	out  graphval.Buffer
}

func newBNParamGrad(fwd *bnOp, beta bool) *bnParamGradOp {
	name := "BatchNormGradGamma"
	if beta {
		name = "BatchNormGradBeta"
	}
	return &bnParamGradOp{base: named("%s#%d", name, fwd.id), fwd: fwd, beta: beta}
}

func (op *bnParamGradOp) Arity() int    { return 1 }
func (op *bnParamGradOp) Type() hm.Type { return hm.NewFnType(graphval.TypeMat, graphval.TypeVec) }
func (op *bnParamGradOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	s, err := graphval.ShapeArg(ds, 0)
	if err != nil {
		return nil, err
	}
	if len(s) != 2 {
		return nil, fmt.Errorf("%v: statistics shape %v is not 2-D", op, s)
	}
	return tensor.Shape{s[1]}, nil
}

func (op *bnParamGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	c := op.fwd.bn.channels
	st, err := readStats(op, vals[0], c)
	if err != nil {
		return nil, err
	}
	out, v := op.out.Dense(tensor.Shape{c})
	for ch := range v {
		if op.beta {
			v[ch] = st[bnRowSumDy*c+ch]
		} else {
			v[ch] = float32(float64(st[bnRowDotP*c+ch]) * float64(st[bnRowInvstd*c+ch]))
		}
	}
	return out, nil
}

var _ gorgonia.Op = (*bnParamGradOp)(nil)
