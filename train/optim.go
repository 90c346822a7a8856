package train

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"qat/internal/floats"
	"qat/layers"
)

// Optimizer kinds accepted by OptimizerConfig.Kind.
const (
	KindSGD   = "sgd"
	KindAdam  = "adam"
	KindAdamW = "adamw"
)

// OptimizerConfig selects and parameterises an optimizer. Zero values mean
// the documented defaults, which are PyTorch's defaults except where noted;
// Config on the built Optimizer returns the filled-in values. The learning
// rate is not part of the config: it is passed to every Optimizer.Step (see
// ScheduleConfig.LR).
//
// A field that does not apply to the chosen Kind must be left zero
// (Validate rejects, say, Nesterov with "adam"), so that a setting is never
// silently ignored.
type OptimizerConfig struct {
	// Kind is "sgd" (torch.optim.SGD), "adam" (torch.optim.Adam) or
	// "adamw" (torch.optim.AdamW). The empty string means "adam".
	Kind string

	// Momentum is the SGD momentum factor (PyTorch momentum, with
	// dampening 0). 0 means 0.9, which differs from PyTorch's default of
	// 0; for plain SGD without a momentum buffer set NoMomentum instead.
	// Must be in (0, 1) when set. "sgd" only.
	Momentum float64
	// NoMomentum selects plain SGD, p -= lr*(g + wd*p), with no momentum
	// buffer (PyTorch momentum=0). Momentum and Nesterov must then be
	// zero. "sgd" only.
	NoMomentum bool
	// Nesterov enables Nesterov momentum (PyTorch nesterov=True). "sgd"
	// only, and not with NoMomentum.
	Nesterov bool

	// Beta1 and Beta2 are Adam's moment decay rates (PyTorch betas); 0
	// means 0.9 and 0.999. Each must be in (0, 1). "adam"/"adamw" only.
	Beta1, Beta2 float64
	// Eps is added to the denominator after the square root of the
	// bias-corrected second moment (PyTorch eps); 0 means 1e-8. Must be
	// positive. "adam"/"adamw" only.
	Eps float64

	// WeightDecay is the weight-decay coefficient (PyTorch weight_decay).
	// For "sgd" and "adam" it is an L2 penalty added to the gradient
	// (g += wd*p); for "adamw" it is decoupled (p *= 1 - lr*wd before the
	// Adam update). 0 means 0 for "sgd" and "adam" and 0.01 for "adamw"
	// (PyTorch's AdamW default). Must be non-negative. Quantizer params
	// (layers.Param.Quantizer: a learnable quantizer's scale or zero point)
	// are exempt, as if in a PyTorch parameter group with weight_decay=0.
	WeightDecay float64
}

// withDefaults returns c with zero values replaced by the defaults. It does
// not validate.
func (c OptimizerConfig) withDefaults() OptimizerConfig {
	if c.Kind == "" {
		c.Kind = KindAdam
	}
	switch c.Kind {
	case KindSGD:
		if c.Momentum == 0 && !c.NoMomentum {
			c.Momentum = 0.9
		}
	case KindAdam, KindAdamW:
		if c.Beta1 == 0 {
			c.Beta1 = 0.9
		}
		if c.Beta2 == 0 {
			c.Beta2 = 0.999
		}
		if c.Eps == 0 {
			c.Eps = 1e-8
		}
		if c.Kind == KindAdamW && c.WeightDecay == 0 {
			c.WeightDecay = 0.01
		}
	}
	return c
}

// Validate reports the first invalid field of c, naming it, or nil. Zero
// values are valid (they mean the defaults).
func (c OptimizerConfig) Validate() error {
	open01 := func(x float64) bool { return x > 0 && x < 1 }
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("train: OptimizerConfig.%s = %v: %s", field, v, why)
	}
	kind := c.Kind
	if kind == "" {
		kind = KindAdam
	}
	switch kind {
	case KindSGD, KindAdam, KindAdamW:
	default:
		return bad("Kind", fmt.Sprintf("%q", c.Kind), `want "sgd", "adam" or "adamw"`)
	}
	if !floats.Finite(c.WeightDecay) || c.WeightDecay < 0 {
		return bad("WeightDecay", c.WeightDecay, "must be finite and >= 0")
	}
	if kind == KindSGD {
		if c.NoMomentum {
			if c.Momentum != 0 {
				return bad("Momentum", c.Momentum, "must be 0 with NoMomentum")
			}
			if c.Nesterov {
				return bad("Nesterov", true, "needs momentum (NoMomentum is set)")
			}
		} else if c.Momentum != 0 && !open01(c.Momentum) {
			return bad("Momentum", c.Momentum, "must be in (0, 1); 0 means 0.9, use NoMomentum for plain SGD")
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"Beta1", c.Beta1}, {"Beta2", c.Beta2}, {"Eps", c.Eps}} {
			if f.v != 0 {
				return bad(f.name, f.v, `applies only to "adam" and "adamw"`)
			}
		}
		return nil
	}
	// adam, adamw
	if c.Momentum != 0 {
		return bad("Momentum", c.Momentum, `applies only to "sgd"`)
	}
	if c.NoMomentum {
		return bad("NoMomentum", true, `applies only to "sgd"`)
	}
	if c.Nesterov {
		return bad("Nesterov", true, `applies only to "sgd"`)
	}
	if c.Beta1 != 0 && !open01(c.Beta1) {
		return bad("Beta1", c.Beta1, "must be in (0, 1)")
	}
	if c.Beta2 != 0 && !open01(c.Beta2) {
		return bad("Beta2", c.Beta2, "must be in (0, 1)")
	}
	if !floats.Finite(c.Eps) || c.Eps < 0 {
		return bad("Eps", c.Eps, "must be finite and > 0")
	}
	return nil
}

// Optimizer updates a fixed set of params (*layers.Param, flattened: Shape
// is ignored) in place from their gradients: Step reads Grad, never
// modifies it, and updates Data. A param's Name must be non-empty and
// unique within one optimizer; it prefixes the keys of State. Params with
// Quantizer set are exempt from weight decay (both the L2 term of
// "sgd"/"adam" and the decoupled decay of "adamw"). An Optimizer is not
// safe for concurrent use.
//
// The updates reproduce PyTorch 1.13's single-tensor (foreach=False) CPU
// implementation in float32, operation by operation and with the same
// rounding (see NewOptimizer), so trajectories agree with PyTorch to within
// a few float32 ulps (bit for bit on the reference data in testdata/).
type Optimizer interface {
	// Step applies one update with learning rate lr to every param. If any
	// gradient element is NaN or ±Inf it returns an error naming the param
	// and element index and changes nothing (neither params, buffers nor
	// the step count). lr must be finite and >= 0. Step does not
	// allocate.
	Step(lr float64) error
	// Steps returns the number of successful Steps taken (Adam's t; the
	// PyTorch state "step").
	Steps() int64
	// State returns copies of the optimizer's buffers keyed by
	// "<param name>.<buffer>", with PyTorch's buffer names:
	// "<name>.momentum_buffer" for "sgd" with momentum (none for
	// NoMomentum), and "<name>.exp_avg" and "<name>.exp_avg_sq" for
	// "adam"/"adamw". Before the first Step the buffers are zero.
	State() map[string][]float32
	// LoadState restores buffers saved by State together with the step
	// count saved from Steps, so that training resumes exactly (bit for
	// bit) where it stopped. Every expected key must be present with the
	// right length and there must be no other keys; otherwise it returns
	// an error naming the key and changes nothing.
	LoadState(state map[string][]float32, steps int64) error
	// Config returns the configuration with defaults filled in.
	Config() OptimizerConfig
}

// NewOptimizer returns an optimizer for params configured by cfg. It
// returns an error if cfg is invalid, a param is nil, a name is empty or
// duplicated, or len(Grad) != len(Data). The params are used in place (not
// copied); their Data and Grad slices must not be reallocated afterwards.
//
// Equivalences, with lr the value passed to Step and wd applied only to
// params without Quantizer:
//
//	"sgd":   torch.optim.SGD(params, lr, momentum, dampening=0, nesterov, weight_decay=wd)
//	"adam":  torch.optim.Adam(params, lr, betas=(Beta1, Beta2), eps, weight_decay=wd)
//	"adamw": torch.optim.AdamW(params, lr, betas=(Beta1, Beta2), eps, weight_decay=wd)
//
// amsgrad, maximize and dampening are not supported.
func NewOptimizer(cfg OptimizerConfig, params []*layers.Param) (Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		if p == nil {
			return nil, fmt.Errorf("train: param %d is nil", i)
		}
		if p.Name == "" {
			return nil, fmt.Errorf("train: param %d has an empty name", i)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("train: duplicate param name %q", p.Name)
		}
		seen[p.Name] = true
		if len(p.Grad) != len(p.Data) {
			return nil, fmt.Errorf("train: param %q: len(Grad) = %d, len(Data) = %d", p.Name, len(p.Grad), len(p.Data))
		}
	}
	o := &optimizer{cfg: cfg, params: append([]*layers.Param(nil), params...)}
	var names []string
	switch {
	case cfg.Kind == KindSGD && !cfg.NoMomentum:
		names = []string{"momentum_buffer"}
	case cfg.Kind == KindAdam || cfg.Kind == KindAdamW:
		names = []string{"exp_avg", "exp_avg_sq"}
	}
	o.bufNames = names
	o.bufs = make([][][]float32, len(names))
	for b := range names {
		o.bufs[b] = make([][]float32, len(params))
		for i, p := range params {
			o.bufs[b][i] = make([]float32, len(p.Data))
		}
	}
	return o, nil
}

type optimizer struct {
	cfg      OptimizerConfig
	params   []*layers.Param
	bufNames []string
	bufs     [][][]float32 // [buffer][param][element]
	steps    int64
}

func (o *optimizer) Steps() int64            { return o.steps }
func (o *optimizer) Config() OptimizerConfig { return o.cfg }

func (o *optimizer) State() map[string][]float32 {
	m := make(map[string][]float32, len(o.bufNames)*len(o.params))
	for b, bn := range o.bufNames {
		for i, p := range o.params {
			m[p.Name+"."+bn] = append([]float32(nil), o.bufs[b][i]...)
		}
	}
	return m
}

func (o *optimizer) LoadState(state map[string][]float32, steps int64) error {
	if steps < 0 {
		return fmt.Errorf("train: LoadState: negative step count %d", steps)
	}
	want := make(map[string]bool, len(o.bufNames)*len(o.params))
	for _, bn := range o.bufNames {
		for _, p := range o.params {
			k := p.Name + "." + bn
			want[k] = true
			v, ok := state[k]
			if !ok {
				return fmt.Errorf("train: LoadState: missing key %q", k)
			}
			if len(v) != len(p.Data) {
				return fmt.Errorf("train: LoadState: key %q has length %d, want %d", k, len(v), len(p.Data))
			}
		}
	}
	var extra []string
	for k := range state {
		if !want[k] {
			extra = append(extra, fmt.Sprintf("%q", k))
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("train: LoadState: unexpected key(s) %s", strings.Join(extra, ", "))
	}
	for b, bn := range o.bufNames {
		for i, p := range o.params {
			copy(o.bufs[b][i], state[p.Name+"."+bn])
		}
	}
	o.steps = steps
	return nil
}

// errNonFinite is wrapped by the error Step returns for a NaN/Inf gradient.
var errNonFinite = errors.New("non-finite gradient")

func (o *optimizer) checkGrads() error {
	for _, p := range o.params {
		for j, g := range p.Grad {
			// Exponent all ones <=> NaN or ±Inf.
			if math.Float32bits(g)&0x7f800000 == 0x7f800000 {
				return fmt.Errorf("train: param %q element %d: %w %v", p.Name, j, errNonFinite, g)
			}
		}
	}
	return nil
}

func (o *optimizer) Step(lr float64) error {
	if math.IsNaN(lr) || math.IsInf(lr, 0) || lr < 0 {
		return fmt.Errorf("train: Step: learning rate %v must be finite and >= 0", lr)
	}
	if err := o.checkGrads(); err != nil {
		return err
	}
	switch o.cfg.Kind {
	case KindSGD:
		o.stepSGD(lr)
	default:
		o.stepAdam(lr)
	}
	o.steps++
	return nil
}

// The update formulas below follow torch/optim/{sgd,adam,adamw}.py
// (_single_tensor_*) of PyTorch 1.13 and the ATen CPU kernels they call.
// Python float scalars are converted to float32 (the tensor dtype) at the
// kernel boundary, so every coefficient is rounded to float32 before use.
// The AVX2 kernels (vector loop and scalar tail alike, as built with GCC,
// which contracts a*b+c) round as follows; each line is one kernel, so
// rounding also happens between lines:
//
//	a.add(b, alpha=s)         fma(s, b, a)
//	a.mul_(s)                 fl(a*s)
//	a.addcmul_(b, c, value=s) fma(fl(s*b), c, a)
//	a.addcdiv_(b, c, value=s) fl(a + fl(fl(s*b)/c))
//	a.sqrt(), a / s, a + s    correctly rounded
//
// Explicit float32(...) conversions below keep the Go compiler from fusing
// a multiply and an add into an FMA where PyTorch rounds twice.

func (o *optimizer) stepSGD(lr float64) {
	negLR := float32(-lr)
	mom := float32(o.cfg.Momentum)
	first := o.steps == 0
	for i, p := range o.params {
		var wd float32
		if !p.Quantizer {
			wd = float32(o.cfg.WeightDecay)
		}
		data, grad := p.Data, p.Grad[:len(p.Data)]
		if o.cfg.NoMomentum {
			for j := range data {
				d := grad[j]
				if wd != 0 {
					d = fma32(data[j], wd, d) // d_p = d_p.add(param, alpha=wd)
				}
				data[j] = fma32(d, negLR, data[j]) // param.add_(d_p, alpha=-lr)
			}
			continue
		}
		buf := o.bufs[0][i][:len(data)]
		for j := range data {
			d := grad[j]
			if wd != 0 {
				d = fma32(data[j], wd, d)
			}
			b := d // first step: buf = clone(d_p)
			if !first {
				b = float32(buf[j]*mom) + d // buf.mul_(momentum).add_(d_p, alpha=1)
			}
			buf[j] = b
			if o.cfg.Nesterov {
				d = fma32(b, mom, d) // d_p = d_p.add(buf, alpha=momentum)
			} else {
				d = b
			}
			data[j] = fma32(d, negLR, data[j])
		}
	}
}

func (o *optimizer) stepAdam(lr float64) {
	c := o.cfg
	// Python-side scalars, in float64 as PyTorch computes them.
	bc1 := 1 - powInt(c.Beta1, o.steps+1)
	bc2 := 1 - powInt(c.Beta2, o.steps+1)
	negStepSize := float32(-(lr / bc1))
	bc2Sqrt := float32(math.Sqrt(bc2))
	beta1 := float32(c.Beta1)
	beta2 := float32(c.Beta2)
	omb1 := float32(1 - c.Beta1)
	omb2 := float32(1 - c.Beta2)
	eps := float32(c.Eps)
	adamw := c.Kind == KindAdamW
	decayMul := float32(1 - lr*c.WeightDecay) // AdamW: param.mul_(1 - lr*wd)
	for i, p := range o.params {
		data, grad := p.Data, p.Grad[:len(p.Data)]
		m := o.bufs[0][i][:len(data)]
		v := o.bufs[1][i][:len(data)]
		var wd float32 // Adam's L2 term
		decay := false // AdamW's decoupled decay
		if !p.Quantizer && c.WeightDecay != 0 {
			if adamw {
				decay = true
			} else {
				wd = float32(c.WeightDecay)
			}
		}
		for j := range data {
			x := data[j]
			g := grad[j]
			if decay {
				x = float32(x * decayMul)
			}
			if wd != 0 {
				g = fma32(x, wd, g) // grad = grad.add(param, alpha=wd)
			}
			// exp_avg.mul_(beta1).add_(grad, alpha=1-beta1)
			mj := fma32(g, omb1, float32(m[j]*beta1))
			// exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2)
			vj := fma32(float32(omb2*g), g, float32(v[j]*beta2))
			m[j], v[j] = mj, vj
			// denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
			denom := float32(sqrt32(vj)/bc2Sqrt) + eps
			// param.addcdiv_(exp_avg, denom, value=-step_size)
			data[j] = x + float32(float32(negStepSize*mj)/denom)
		}
	}
}

// sqrt32 returns the correctly rounded float32 square root of x (a float64
// square root rounded to float32 is correctly rounded).
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// fma32 returns a*b + c rounded once to float32, like a hardware float32
// FMA. The product is exact in float64, so s = float64 a*b + c is the exact
// sum rounded once; rounding s to float32 can then differ from rounding the
// exact sum only if s lies exactly on a float32 rounding midpoint (or in
// the float32 subnormal range). In those rare cases the float64 sum is
// redone with round-to-odd, which makes the final rounding exact
// (53 >= 2*24 + 2).
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact
	cc := float64(c)
	s := p + cc
	bits := math.Float64bits(s)
	// The low 29 of float64's 52 fraction bits are those float32 drops; a
	// midpoint has exactly the top one of them set.
	if bits&(1<<29-1) != 1<<28 && bits&0x7ff0000000000000 >= 0x3810000000000000 { // |s| >= 2^-126
		return float32(s)
	}
	// TwoSum: e is the exact rounding error of s.
	bv := s - p
	e := (p - (s - bv)) + (cc - bv)
	if e != 0 && !math.IsInf(s, 0) && bits&1 == 0 {
		// round to odd: move one ulp towards the exact sum
		if (e > 0) == (s > 0) {
			bits++
		} else {
			bits--
		}
		s = math.Float64frombits(bits)
	}
	return float32(s)
}

// powInt returns x**n for n >= 1, correctly rounded in all but
// pathological cases (as CPython's float ** float via libm pow), computed
// by binary exponentiation in double-double arithmetic.
func powInt(x float64, n int64) float64 {
	rh, rl := 1.0, 0.0 // result
	bh, bl := x, 0.0   // base
	for n > 0 {
		if n&1 == 1 {
			rh, rl = ddMul(rh, rl, bh, bl)
		}
		n >>= 1
		if n > 0 {
			bh, bl = ddMul(bh, bl, bh, bl)
		}
	}
	return rh + rl
}

// ddMul multiplies two double-double numbers.
func ddMul(ah, al, bh, bl float64) (float64, float64) {
	p := ah * bh
	e := math.FMA(ah, bh, -p)
	e += ah*bl + al*bh
	h := p + e
	return h, e - (h - p)
}
