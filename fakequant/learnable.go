package fakequant

import (
	"fmt"
	"hash"
	"math"
	"sync"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/floats"
	"qat/internal/graphval"
	"qat/quant"
	"qat/ste"
)

// LearnableConfig configures a LearnableFakeQuant.
type LearnableConfig struct {
	// Name is used in errors, in node descriptions and in the names of the
	// nodes NewParamNodes creates. The default is "lfq" and a unique number.
	Name string
	// QMin and QMax are the code range; QMin < QMax.
	QMin, QMax int32
	// PerChannel gives every index of Axis of the input its own scale and
	// zero point; otherwise Axis must be 0 and there is one of each.
	PerChannel bool
	Axis       int
	// GradFactor scales the scale and zero-point gradients. Zero selects
	// LSQ's 1/sqrt(n*QMax) with n the element count of the whole input
	// (ste.GradFactor, PyTorch's use_grad_scaling=True); 1 disables
	// scaling. It must be finite and not negative.
	GradFactor float32
	// LearnZeroPoint makes the zero point a trained parameter (LSQ+). If
	// false the zero point input is used but gets no gradient (LSQ).
	LearnZeroPoint bool
	// PACT makes the quantizer PACT's clipped activation (Choi et al. 2018,
	// see InitPACT): codes [0, QMax] with QMin 0, per tensor, zero point 0,
	// and the clipping threshold alpha = scale*QMax learned through the
	// scale with PACT's gradient instead of LSQ's. The zero point input
	// must round to 0 and gets no gradient; GradFactor must be 0 (PACT
	// scales no gradient) and LearnZeroPoint false.
	PACT bool
	// AlphaDecay is PACT's L2 regularisation of the clipping threshold,
	// the paper's lambda_alpha: it adds AlphaDecay*alpha to alpha's
	// gradient (the gradient of AlphaDecay/2*alpha^2, a term the loss
	// value does not include). Zero turns it off; it must be finite, not
	// negative, and is only allowed with PACT.
	AlphaDecay float32
	// ClampScale makes the forward pass raise a finite scale below
	// quant.Eps (zero and negative ones included) to quant.Eps in place, in
	// the scale node's own value, as PyTorch's _LearnableFakeQuantize does
	// with scale.data.clamp_(min=eps). Without it such a scale is an error.
	// NaN and infinite scales are always errors.
	ClampScale bool
}

// LearnableFakeQuant is a fake quantizer whose scale and zero point are
// graph nodes, float32 vectors of one element per tensor or one per channel,
// trained by the solver (LSQ, LSQ+, or PACT's clipping threshold). The zero
// point is learned as a float and rounded half to even, then clamped to
// [QMin, QMax], in the forward pass.
type LearnableFakeQuant struct {
	cfg LearnableConfig

	mu       sync.Mutex
	disabled bool
}

// NewLearnable returns an enabled learnable quantizer for cfg.
func NewLearnable(cfg LearnableConfig) (*LearnableFakeQuant, error) {
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("lfq%d", graphval.NewID())
	}
	switch g := cfg.GradFactor; {
	case cfg.QMin >= cfg.QMax:
		return nil, fmt.Errorf("fakequant %s: empty code range [%d, %d]", cfg.Name, cfg.QMin, cfg.QMax)
	case cfg.Axis < 0:
		return nil, fmt.Errorf("fakequant %s: negative channel axis %d", cfg.Name, cfg.Axis)
	case !cfg.PerChannel && cfg.Axis != 0:
		return nil, fmt.Errorf("fakequant %s: channel axis %d set on a per-tensor quantizer", cfg.Name, cfg.Axis)
	case !(g >= 0) || math.IsInf(float64(g), 0):
		return nil, fmt.Errorf("fakequant %s: gradient factor %g is not a finite number >= 0", cfg.Name, g)
	case !(cfg.AlphaDecay >= 0) || math.IsInf(float64(cfg.AlphaDecay), 0):
		return nil, fmt.Errorf("fakequant %s: alpha decay %g is not a finite number >= 0", cfg.Name, cfg.AlphaDecay)
	case cfg.AlphaDecay != 0 && !cfg.PACT:
		return nil, fmt.Errorf("fakequant %s: alpha decay %g set on a quantizer that is not pact", cfg.Name, cfg.AlphaDecay)
	}
	if cfg.PACT {
		if err := checkPACT(cfg); err != nil {
			return nil, fmt.Errorf("fakequant %s: pact: %w", cfg.Name, err)
		}
	}
	return &LearnableFakeQuant{cfg: cfg}, nil
}

// Name returns the quantizer's name.
func (l *LearnableFakeQuant) Name() string { return l.cfg.Name }

// Config returns the configuration, with the default name filled in.
func (l *LearnableFakeQuant) Config() LearnableConfig { return l.cfg }

// Enabled reports whether the quantizer fake-quantizes.
func (l *LearnableFakeQuant) Enabled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.disabled
}

// SetEnabled switches fake quantization on or off for the following runs.
// Disabled, the output is x, the input gradient passes unchanged, and the
// scale and zero point get zero gradients.
func (l *LearnableFakeQuant) SetEnabled(on bool) {
	l.mu.Lock()
	l.disabled = !on
	l.mu.Unlock()
}

// InitFrom returns initial scale and zero-point values for a learnable
// quantizer from the params of obs, which must have seen calibration data.
func InitFrom(obs quant.Observer) (scale, zeroPoint []float32, err error) {
	p, err := obs.Params()
	if err != nil {
		return nil, nil, err
	}
	scale = append([]float32(nil), p.Scale...)
	zeroPoint = make([]float32, len(p.ZeroPoint))
	for i, z := range p.ZeroPoint {
		zeroPoint[i] = float32(z)
	}
	return scale, zeroPoint, nil
}

// NewParamNodes creates the scale and zero-point variables in g, float32
// vectors named Name+".scale" and Name+".zero_point" holding copies of the
// given values. Names already used in g are an error: gorgonia would merge
// two input nodes of the same name.
func (l *LearnableFakeQuant) NewParamNodes(g *gorgonia.ExprGraph, scale, zeroPoint []float32) (s, z *gorgonia.Node, err error) {
	name := l.cfg.Name
	switch {
	case len(scale) == 0 || len(scale) != len(zeroPoint):
		return nil, nil, fmt.Errorf("fakequant %s: %d scales and %d zero points", name, len(scale), len(zeroPoint))
	case !l.cfg.PerChannel && len(scale) != 1:
		return nil, nil, fmt.Errorf("fakequant %s: per-tensor quantizer with %d scales", name, len(scale))
	}
	for _, n := range []string{name + ".scale", name + ".zero_point"} {
		if len(g.ByName(n)) > 0 {
			return nil, nil, fmt.Errorf("fakequant %s: graph already has a node named %q", name, n)
		}
	}
	vec := func(v []float32, n string) *gorgonia.Node {
		val := graphval.NewDense(tensor.Shape{len(v)}, append([]float32(nil), v...))
		return gorgonia.NewVector(g, tensor.Float32, gorgonia.WithShape(len(v)), gorgonia.WithName(n), gorgonia.WithValue(val))
	}
	return vec(scale, name+".scale"), vec(zeroPoint, name+".zero_point"), nil
}

// ParamsOf converts scale and zero-point values to the params the forward
// pass uses: scales as they are (raised to quant.Eps under ClampScale, in a
// copy), zero points rounded half to even and clamped (under PACT they must
// round to 0). It is how a trained quantizer is exported.
func (l *LearnableFakeQuant) ParamsOf(scale, zeroPoint gorgonia.Value) (quant.Params, error) {
	s, _, err := graphval.Float32s(scale, "scale")
	if err != nil {
		return quant.Params{}, fmt.Errorf("fakequant %s: %w", l.cfg.Name, err)
	}
	z, _, err := graphval.Float32s(zeroPoint, "zero point")
	if err != nil {
		return quant.Params{}, fmt.Errorf("fakequant %s: %w", l.cfg.Name, err)
	}
	return l.params(append([]float32(nil), s...), z)
}

// params builds the forward params from scale and zero-point data, raising
// small scales to Eps in s itself under ClampScale.
func (l *LearnableFakeQuant) params(s, z []float32) (quant.Params, error) {
	name := l.cfg.Name
	if len(s) == 0 || len(s) != len(z) {
		return quant.Params{}, fmt.Errorf("fakequant %s: %d scales and %d zero points", name, len(s), len(z))
	}
	p := quant.Params{
		Scale:     make([]float32, len(s)),
		ZeroPoint: make([]int32, len(s)),
		QMin:      l.cfg.QMin,
		QMax:      l.cfg.QMax,
		Axis:      -1,
	}
	if l.cfg.PerChannel {
		p.Axis = l.cfg.Axis
	}
	for c, v := range s {
		if !floats.Finite(v) || (!(v > 0) && !l.cfg.ClampScale) {
			return quant.Params{}, fmt.Errorf("fakequant %s: scale[%d] = %g is not a positive finite number", name, c, v)
		}
		if l.cfg.ClampScale && v < quant.Eps {
			s[c], v = quant.Eps, quant.Eps
		}
		p.Scale[c] = v
		p.ZeroPoint[c] = quant.RoundZeroPoint(z[c], p.QMin, p.QMax)
		if l.cfg.PACT && p.ZeroPoint[c] != 0 {
			return quant.Params{}, fmt.Errorf("fakequant %s: pact zero point %g rounds to %d, want 0", name, z[c], p.ZeroPoint[c])
		}
	}
	return p, nil
}

// channels returns how many scales an input of the given shape needs.
func (l *LearnableFakeQuant) channels(shape []int) (int, error) {
	if !l.cfg.PerChannel {
		return 1, nil
	}
	if l.cfg.Axis >= len(shape) {
		return 0, fmt.Errorf("channel axis %d outside shape %v", l.cfg.Axis, shape)
	}
	return shape[l.cfg.Axis], nil
}

// Apply adds the quantizer to x's graph: y = fakeQuantize(x; scale,
// zeroPoint). x must be a float32 tensor; scale and zeroPoint float32
// vectors with one element per tensor or one per channel of x, in the same
// graph. Mismatched shapes are an error here. For gradients with respect to
// scale (and zeroPoint, when learned) they must be variables (input nodes).
func (l *LearnableFakeQuant) Apply(x, scale, zeroPoint *gorgonia.Node) (*gorgonia.Node, error) {
	name := l.cfg.Name
	if err := checkNode(name, x, "input"); err != nil {
		return nil, err
	}
	c, err := l.channels(x.Shape())
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %v: %w", name, x, err)
	}
	for _, v := range []struct {
		n    *gorgonia.Node
		what string
	}{{scale, "scale"}, {zeroPoint, "zero point"}} {
		if err := checkNode(name, v.n, v.what); err != nil {
			return nil, err
		}
		if sh := v.n.Shape(); v.n.Dims() != 1 || sh[0] != c {
			return nil, fmt.Errorf("fakequant %s: %s %v has shape %v, want (%d) for input shape %v", name, v.what, v.n, sh, c, x.Shape())
		}
	}
	op := &lfqOp{l: l, id: graphval.NewID(), c: c, rec: new(record)}
	y, err := gorgonia.ApplyOp(op, x, scale, zeroPoint)
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", name, err)
	}
	return y, nil
}

// lfqOp is one application of a LearnableFakeQuant: inputs x, scale, zero
// point; output y.
type lfqOp struct {
	l   *LearnableFakeQuant
	id  uint64
	c   int // scales per input
	rec *record
	out graphval.Buffer
}

func (op *lfqOp) Arity() int { return 3 }
func (op *lfqOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeAny, graphval.TypeVec, graphval.TypeVec, graphval.TypeAny)
}
func (op *lfqOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}
func (op *lfqOp) ReturnsPtr() bool     { return false }
func (op *lfqOp) CallsExtern() bool    { return false }
func (op *lfqOp) OverwritesInput() int { return -1 }
func (op *lfqOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.Learnable{%q,#%d}", op.l.cfg.Name, op.id)
}
func (op *lfqOp) Hashcode() uint32 { return graphval.HashOf(op) }
func (op *lfqOp) String() string   { return fmt.Sprintf("LearnableFakeQuant(%s)", op.l.cfg.Name) }

func (op *lfqOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	name := op.l.cfg.Name
	op.rec.ran = false
	x, shape, err := graphval.Float32s(vals[0], "input")
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", name, err)
	}
	s, _, err := graphval.Float32s(vals[1], "scale")
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", name, err)
	}
	z, _, err := graphval.Float32s(vals[2], "zero point")
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", name, err)
	}
	c, err := op.l.channels(shape)
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", name, err)
	}
	if len(s) != c || len(z) != c {
		return nil, fmt.Errorf("fakequant %s: %d scales and %d zero points for %d channels of shape %v", name, len(s), len(z), c, shape)
	}
	out, y := op.out.Dense(shape)
	if !op.l.Enabled() {
		copy(y, x)
		*op.rec = record{ran: true, disabled: true, shape: shape}
		return out, nil
	}
	p, err := op.l.params(s, z)
	if err != nil {
		return nil, err
	}
	quant.FakeQuantize(y, x, shape, p)
	g := op.l.cfg.GradFactor
	if g == 0 {
		g = ste.GradFactor(len(x), p.QMax)
	}
	*op.rec = record{ran: true, p: p, shape: shape, gradFactor: g}
	return out, nil
}

// DiffWRT: x and scale always; the zero point when it is learned.
func (op *lfqOp) DiffWRT(inputs int) []bool {
	return []bool{true, true, op.l.cfg.LearnZeroPoint}
}

// SymDiff returns the three gradients: gradX from the STE op, and the scale
// (and zero-point) gradient from one LSQ or PACT pass whose packed output is
// split by two pick ops under LSQ+.
func (op *lfqOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if err := graphval.CheckArity(op, len(inputs)); err != nil {
		return nil, err
	}
	name := op.l.cfg.Name
	wrap := func(err error) error { return fmt.Errorf("fakequant %s: gradient: %w", name, err) }
	x := inputs[0]
	gx, err := gorgonia.ApplyOp(&steOp{name: name, fwd: op.id, rec: op.rec}, x, output, grad)
	if err != nil {
		return nil, wrap(err)
	}
	learnZ := op.l.cfg.LearnZeroPoint
	pg, err := gorgonia.ApplyOp(&paramGradOp{fwd: op, learnZ: learnZ}, x, output, grad)
	if err != nil {
		return nil, wrap(err)
	}
	if !learnZ {
		return gorgonia.Nodes{gx, pg, nil}, nil
	}
	gs, err := gorgonia.ApplyOp(&pickOp{fwd: op, part: 0}, pg)
	if err != nil {
		return nil, wrap(err)
	}
	gz, err := gorgonia.ApplyOp(&pickOp{fwd: op, part: 1}, pg)
	if err != nil {
		return nil, wrap(err)
	}
	return gorgonia.Nodes{gx, gs, gz}, nil
}

// paramGradOp computes the scale gradient (LSQ, PACT) or the scale and
// zero-point gradients packed as [scale..., zeroPoint...] (LSQ+) of its
// forward op in one pass. Inputs: x, the forward's y (for ordering), gradY.
type paramGradOp struct {
	fwd    *lfqOp
	learnZ bool
	out    graphval.Buffer
}

func (op *paramGradOp) size() int {
	if op.learnZ {
		return 2 * op.fwd.c
	}
	return op.fwd.c
}

func (op *paramGradOp) Arity() int { return 3 }
func (op *paramGradOp) Type() hm.Type {
	return hm.NewFnType(graphval.TypeAny, graphval.TypeAny, graphval.TypeAny, graphval.TypeVec)
}
func (op *paramGradOp) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.size()}, nil
}
func (op *paramGradOp) ReturnsPtr() bool     { return false }
func (op *paramGradOp) CallsExtern() bool    { return false }
func (op *paramGradOp) OverwritesInput() int { return -1 }
func (op *paramGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.LearnableParamGrad{%q,#%d,%v}", op.fwd.l.cfg.Name, op.fwd.id, op.learnZ)
}
func (op *paramGradOp) Hashcode() uint32 { return graphval.HashOf(op) }
func (op *paramGradOp) String() string {
	return fmt.Sprintf("LearnableFakeQuantParamGrad(%s)", op.fwd.l.cfg.Name)
}

func (op *paramGradOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	name := op.fwd.l.cfg.Name
	x, _, err := graphval.Float32s(vals[0], "x")
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", name, err)
	}
	gy, _, err := graphval.Float32s(vals[2], "gradient")
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", name, err)
	}
	if len(gy) != len(x) {
		return nil, fmt.Errorf("fakequant %s: gradient has %d elements, x %d", name, len(gy), len(x))
	}
	rec := op.fwd.rec
	if err := rec.check(name, len(x)); err != nil {
		return nil, err
	}
	res, out := op.out.Dense(tensor.Shape{op.size()})
	clear(out)
	if !rec.disabled {
		if c := len(rec.p.Scale); c != op.fwd.c {
			return nil, fmt.Errorf("fakequant %s: forward used %d scales, gradient wants %d", name, c, op.fwd.c)
		}
		c := op.fwd.c
		switch {
		case op.fwd.l.cfg.PACT:
			out[0] = op.fwd.l.pactScaleGrad(gy, x, rec.p)
		case op.learnZ:
			ste.LSQPlus(nil, out[:c], out[c:], gy, x, rec.shape, rec.p, rec.gradFactor)
		default:
			ste.LSQ(nil, out, gy, x, rec.shape, rec.p, rec.gradFactor)
		}
	}
	return res, nil
}

// pickOp copies part 0 (scale) or 1 (zero point) out of a packed LSQ+
// gradient.
type pickOp struct {
	fwd  *lfqOp
	part int
	out  graphval.Buffer
}

func (op *pickOp) Arity() int    { return 1 }
func (op *pickOp) Type() hm.Type { return hm.NewFnType(graphval.TypeAny, graphval.TypeAny) }
func (op *pickOp) InferShape(...gorgonia.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.fwd.c}, nil
}
func (op *pickOp) ReturnsPtr() bool     { return false }
func (op *pickOp) CallsExtern() bool    { return false }
func (op *pickOp) OverwritesInput() int { return -1 }
func (op *pickOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.LearnablePick{%q,#%d,%d}", op.fwd.l.cfg.Name, op.fwd.id, op.part)
}
func (op *pickOp) Hashcode() uint32 { return graphval.HashOf(op) }
func (op *pickOp) String() string {
	return fmt.Sprintf("LearnableFakeQuantPick(%s,%s)", op.fwd.l.cfg.Name, [...]string{"scale", "zero point"}[op.part])
}

func (op *pickOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	packed, _, err := graphval.Float32s(vals[0], "packed gradient")
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", op.fwd.l.cfg.Name, err)
	}
	c := op.fwd.c
	if len(packed) != 2*c {
		return nil, fmt.Errorf("fakequant %s: packed gradient has %d elements, want %d", op.fwd.l.cfg.Name, len(packed), 2*c)
	}
	res, out := op.out.Dense(tensor.Shape{c})
	copy(out, packed[op.part*c:(op.part+1)*c])
	return res, nil
}

var (
	_ gorgonia.SDOp = (*lfqOp)(nil)
	_ gorgonia.Op   = (*paramGradOp)(nil)
	_ gorgonia.Op   = (*pickOp)(nil)
)
