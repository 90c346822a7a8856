package fakequant

import (
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/internal/par"
	"qat/quant"
)

// Mode is what a FakeQuant does on its next forward pass.
type Mode int

const (
	// Observing feeds every forward input to the observer, takes the
	// observer's params and fake-quantizes with them (training).
	Observing Mode = iota
	// Frozen fake-quantizes with the current params and observes nothing.
	Frozen
	// Disabled passes values through: y = x, and the gradient unchanged.
	Disabled
)

func (m Mode) String() string {
	switch m {
	case Observing:
		return "observing"
	case Frozen:
		return "frozen"
	case Disabled:
		return "disabled"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ErrNoParams is wrapped by the error of a frozen quantizer's forward pass
// when it has no params yet (nothing observed, none set).
var ErrNoParams = errors.New("no quantization params")

// Option configures a FakeQuant.
type Option func(*FakeQuant)

// Named gives the quantizer a name, used in errors and in its nodes'
// descriptions. The default is "fq" followed by a unique number.
func Named(name string) Option { return func(q *FakeQuant) { q.name = name } }

// FakeQuant is a fake quantizer whose params come from an observer or are
// set directly. It is a handle: every op that Apply adds reads its mode and
// params through it, so SetMode and SetParams take effect on the next run
// of the graph without rebuilding it. Its methods may be called from any
// goroutine; a forward pass holds its lock while observing.
type FakeQuant struct {
	name string

	mu     sync.Mutex
	obs    quant.Observer
	mode   Mode
	params quant.Params // valid when has
	has    bool
}

// New returns a FakeQuant in Observing mode that takes its params from obs.
// With a nil obs it starts Frozen without params and needs SetParams.
func New(obs quant.Observer, opts ...Option) *FakeQuant {
	q := &FakeQuant{obs: obs}
	if obs == nil {
		q.mode = Frozen
	}
	for _, o := range opts {
		o(q)
	}
	if q.name == "" {
		q.name = fmt.Sprintf("fq%d", graphval.NewID())
	}
	return q
}

// NewFixed returns a Frozen FakeQuant without observer that uses p, which
// must be valid. p is copied.
func NewFixed(p quant.Params, opts ...Option) (*FakeQuant, error) {
	q := New(nil, opts...)
	if err := q.SetParams(p); err != nil {
		return nil, err
	}
	return q, nil
}

// Name returns the quantizer's name.
func (q *FakeQuant) Name() string { return q.name }

// Observer returns the observer, nil for a quantizer with fixed params.
func (q *FakeQuant) Observer() quant.Observer { return q.obs }

// Mode returns the current mode.
func (q *FakeQuant) Mode() Mode {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.mode
}

// SetMode switches the mode for the following forward passes. Observing
// needs an observer. Frozen keeps the params the last observing pass (or
// SetParams) produced.
func (q *FakeQuant) SetMode(m Mode) error {
	switch m {
	case Observing:
		if q.obs == nil {
			return fmt.Errorf("fakequant %s: cannot observe without an observer", q.name)
		}
	case Frozen, Disabled:
	default:
		return fmt.Errorf("fakequant %s: unknown mode %v", q.name, m)
	}
	q.mu.Lock()
	q.mode = m
	q.mu.Unlock()
	return nil
}

// Params returns a copy of the current params and whether there are any.
func (q *FakeQuant) Params() (quant.Params, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.has {
		return quant.Params{}, false
	}
	return q.params.Clone(), true
}

// SetParams replaces the params with a copy of p, which must be valid. An
// Observing quantizer becomes Frozen, so that the next forward pass does not
// overwrite p; a Disabled one stays disabled.
func (q *FakeQuant) SetParams(p quant.Params) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("fakequant %s: %w", q.name, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.params, q.has = p.Clone(), true
	if q.mode == Observing {
		q.mode = Frozen
	}
	return nil
}

// Apply adds the quantizer to x's graph and returns its output, a node of
// x's type and shape. x must be a float32 tensor. Per-channel params set
// directly, or an observer's per-channel scheme, are checked against x's
// shape now; params that change later are checked on every run.
func (q *FakeQuant) Apply(x *gorgonia.Node) (*gorgonia.Node, error) {
	if err := checkNode(q.name, x, "input"); err != nil {
		return nil, err
	}
	q.mu.Lock()
	p, has, obs := q.params, q.has, q.obs
	q.mu.Unlock()
	if obs != nil {
		if s := obs.Scheme(); s.PerChannel && s.Axis >= x.Dims() {
			return nil, fmt.Errorf("fakequant %s: channel axis %d outside shape %v of %v", q.name, s.Axis, x.Shape(), x)
		}
	}
	if has {
		if err := checkShape(p, x.Shape()); err != nil {
			return nil, fmt.Errorf("fakequant %s: %v: %w", q.name, x, err)
		}
	}
	op := &fqOp{q: q, id: graphval.NewID(), rec: new(record)}
	y, err := gorgonia.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", q.name, err)
	}
	return y, nil
}

// forwardParams returns the mode and params of one forward pass over x,
// observing x first in Observing mode.
func (q *FakeQuant) forwardParams(x []float32, shape []int) (disabled bool, p quant.Params, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch q.mode {
	case Disabled:
		return true, p, nil
	case Observing:
		if err := q.obs.Observe(x, shape); err != nil {
			return false, p, err
		}
		if p, err = q.obs.Params(); err != nil {
			return false, p, err
		}
		q.params, q.has = p, true
	default:
		if !q.has {
			return false, p, fmt.Errorf("%w: frozen before observing any data, and none set", ErrNoParams)
		}
		p = q.params
	}
	return false, p, checkShape(p, shape)
}

// fqOp is one application of a FakeQuant: y = fakeQuantize(x).
type fqOp struct {
	q   *FakeQuant
	id  uint64
	rec *record
	out graphval.Buffer
}

func (op *fqOp) Arity() int    { return 1 }
func (op *fqOp) Type() hm.Type { return hm.NewFnType(graphval.TypeAny, graphval.TypeAny) }
func (op *fqOp) InferShape(ds ...gorgonia.DimSizer) (tensor.Shape, error) {
	return graphval.ShapeArg(ds, 0)
}
func (op *fqOp) ReturnsPtr() bool     { return false }
func (op *fqOp) CallsExtern() bool    { return false }
func (op *fqOp) OverwritesInput() int { return -1 }
func (op *fqOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "fakequant.FakeQuant{%q,#%d}", op.q.name, op.id)
}
func (op *fqOp) Hashcode() uint32 { return graphval.HashOf(op) }
func (op *fqOp) String() string   { return fmt.Sprintf("FakeQuant(%s)", op.q.name) }

func (op *fqOp) Do(vals ...gorgonia.Value) (gorgonia.Value, error) {
	if err := graphval.CheckArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, shape, err := graphval.Float32s(vals[0], "input")
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: %w", op.q.name, err)
	}
	disabled, p, err := op.q.forwardParams(x, shape)
	if err != nil {
		op.rec.ran = false
		return nil, fmt.Errorf("fakequant %s: %w", op.q.name, err)
	}
	out, y := op.out.Dense(shape)
	switch {
	case disabled:
		copy(y, x)
	case p.PerTensor():
		// Elementwise: split into contiguous ranges across goroutines.
		par.Range(len(x), 1, func(lo, hi int) { quant.FakeQuantize(y[lo:hi], x[lo:hi], nil, p) })
	default:
		// Per-channel tensors are weights, too small to split.
		quant.FakeQuantize(y, x, shape, p)
	}
	*op.rec = record{ran: true, disabled: disabled, p: p, shape: shape}
	return out, nil
}

// DiffWRT: the output is differentiable with respect to x.
func (op *fqOp) DiffWRT(inputs int) []bool { return []bool{true} }

// SymDiff returns gradX = steGrad(x, y, grad).
func (op *fqOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if err := graphval.CheckArity(op, len(inputs)); err != nil {
		return nil, err
	}
	gx, err := gorgonia.ApplyOp(&steOp{name: op.q.name, fwd: op.id, rec: op.rec}, inputs[0], output, grad)
	if err != nil {
		return nil, fmt.Errorf("fakequant %s: gradient: %w", op.q.name, err)
	}
	return gorgonia.Nodes{gx}, nil
}

var _ gorgonia.SDOp = (*fqOp)(nil)
