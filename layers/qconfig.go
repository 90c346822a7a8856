package layers

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"qat/internal/strictjson"
	"qat/model"
	"qat/quant"
)

// Learnable quantizer kinds of a QuantSpec.
const (
	LearnLSQ     = "lsq"
	LearnLSQPlus = "lsq+"
	// LearnPACT learns the clipping threshold alpha of a ReLU output
	// (PACT, Choi et al. 2018; see fakequant.InitPACT): unsigned codes
	// over [0, alpha], zero point 0, scale alpha/(2^bits-1). It is for
	// activation and input specs of the default unsigned scheme only. PACT
	// replaces the clipping of a ReLU, so it applies to the outputs of
	// conv, linear and add nodes with a fused relu or relu6; the input and
	// the outputs of nodes without an activation (the logits, concats),
	// whose values can be negative, keep their observer-driven quantizer
	// under a pact spec.
	LearnPACT = "pact"
)

// QuantSpec configures one quantizer. Its zero value is the default of the
// role it fills: for weights, 8-bit signed symmetric per-channel (axis 0)
// with the range of the current weights (a moving average with constant
// 1: the weights move every step, and an averaged range lags them and
// clips); for activations and the input, 8-bit unsigned affine per-tensor
// with a moving-average min/max observer (constant 0.01, PyTorch's
// default QAT qconfig).
type QuantSpec struct {
	// Bits is the bit width, 2 to 8; 0 means 8.
	Bits int `json:"bits,omitempty"`
	// Symmetric and Affine override the role's default scheme; setting
	// both is an error.
	Symmetric bool `json:"symmetric,omitempty"`
	Affine    bool `json:"affine,omitempty"`
	// PerTensor makes weights per-tensor (activations always are).
	PerTensor bool `json:"per_tensor,omitempty"`
	// Signed chooses signed codes for an activation ("" role default:
	// weights signed, activations unsigned).
	Signed bool `json:"signed,omitempty"`
	// Observer is a quant observer kind; "" means the role's default above.
	// Histogram observers (percentile, mse, entropy) of per-channel weights
	// keep one histogram per output channel (quant.HistogramPerChannel).
	Observer string `json:"observer,omitempty"`
	// Learnable is "" (observer-driven), "lsq" (learned scale), "lsq+"
	// (learned scale and zero point) or "pact" (learned activation
	// clipping threshold, LearnPACT), initialised from the observer.
	Learnable string `json:"learnable,omitempty"`
	// AlphaDecay is PACT's L2 regularisation of alpha (the paper's
	// lambda_alpha): each step adds AlphaDecay*alpha to alpha's gradient.
	// 0 turns it off; only pact specs may set it.
	AlphaDecay float32 `json:"alpha_decay,omitempty"`
	// Off disables this quantizer: the tensor stays float.
	Off bool `json:"off,omitempty"`
}

// LayerQuant overrides the quantizers of one conv or linear layer, or the
// output quantizer (Act) of one add or concat node, which has no weight.
type LayerQuant struct {
	Weight *QuantSpec `json:"weight,omitempty"`
	Act    *QuantSpec `json:"act,omitempty"`
}

// QuantConfig is a model's quantization: defaults for every weight and
// activation, the input quantizer, per-layer overrides (mixed precision)
// and Conv+BN folding. The zero value is W8A8 with PyTorch-style folding.
type QuantConfig struct {
	Weight QuantSpec `json:"weight"`
	Act    QuantSpec `json:"act"`
	// Input quantizes the network input; nil means Act's spec.
	Input *QuantSpec `json:"input,omitempty"`
	// Layers maps a conv, linear, add or concat node's name to its
	// overrides.
	Layers map[string]LayerQuant `json:"layers,omitempty"`
	// NoFoldBN keeps BatchNorm separate from the conv in QAT instead of
	// folding it into the quantized weight (PyTorch ConvBn2d).
	NoFoldBN bool `json:"no_fold_bn,omitempty"`
	// PTQ selects post-training recovery methods (package ptq, run by
	// ptq.Calibrate); nil, like the zero PTQConfig, selects none. Only
	// post-training calibration applies them: QAT runs reject a config
	// that selects one.
	PTQ *PTQConfig `json:"ptq,omitempty"`
}

// PTQConfig selects the post-training recovery methods of package ptq.
// The zero value selects none.
type PTQConfig struct {
	// CLE equalizes the per-channel weight ranges of consecutive conv and
	// linear layers before calibration (cross-layer equalization, Nagel
	// et al. 2019).
	CLE bool `json:"cle,omitempty"`
	// BiasCorrection subtracts each quantized layer's mean output error,
	// measured on the calibration data, from its bias (empirical bias
	// correction, Nagel et al. 2019, section 4.2).
	BiasCorrection bool `json:"bias_correction,omitempty"`
	// AdaRound learns the rounding of every quantized weight layer by
	// layer (Nagel et al. 2020); nil turns it off.
	AdaRound *AdaRoundConfig `json:"adaround,omitempty"`
}

// DefaultAdaRoundIters is the number of AdaRound steps per layer that
// AdaRoundConfig.Iters 0 means: the paper's 10000.
const DefaultAdaRoundIters = 10000

// maxAdaRoundIters bounds AdaRoundConfig.Iters.
const maxAdaRoundIters = 10_000_000

// AdaRoundConfig configures AdaRound. The zero value is the paper's
// schedule: 10000 Adam steps per layer.
type AdaRoundConfig struct {
	// Iters is the number of optimisation steps per layer; 0 means
	// DefaultAdaRoundIters.
	Iters int `json:"iters,omitempty"`
}

// EffectiveIters returns Iters with its default.
func (a AdaRoundConfig) EffectiveIters() int {
	if a.Iters == 0 {
		return DefaultAdaRoundIters
	}
	return a.Iters
}

// Any reports whether p selects a method (false for nil).
func (p *PTQConfig) Any() bool {
	return p != nil && (p.CLE || p.BiasCorrection || p.AdaRound != nil)
}

// String lists the selected methods, e.g. "CLE, bias correction,
// AdaRound 10000 iters"; "" when none is.
func (p *PTQConfig) String() string {
	if p == nil {
		return ""
	}
	var parts []string
	if p.CLE {
		parts = append(parts, "CLE")
	}
	if p.BiasCorrection {
		parts = append(parts, "bias correction")
	}
	if p.AdaRound != nil {
		parts = append(parts, fmt.Sprintf("AdaRound %d iters", p.AdaRound.EffectiveIters()))
	}
	return strings.Join(parts, ", ")
}

func (p *PTQConfig) check() error {
	if p == nil || p.AdaRound == nil {
		return nil
	}
	if n := p.AdaRound.Iters; n < 0 || n > maxAdaRoundIters {
		return fmt.Errorf("quant config: ptq: adaround iters %d: want 0 (the default, %d) to %d", n, DefaultAdaRoundIters, maxAdaRoundIters)
	}
	return nil
}

// ParseBits parses a W<w>A<a> string such as "W8A8" or "W4A4" into a
// config with those default bit widths.
func ParseBits(s string) (QuantConfig, error) {
	u := strings.ToUpper(s)
	i := strings.Index(u, "A")
	if !strings.HasPrefix(u, "W") || i < 2 {
		return QuantConfig{}, fmt.Errorf("bits %q: want W<bits>A<bits>, e.g. W8A8 or W4A4", s)
	}
	w, err1 := strconv.Atoi(u[1:i])
	a, err2 := strconv.Atoi(u[i+1:])
	if err1 != nil || err2 != nil {
		return QuantConfig{}, fmt.Errorf("bits %q: want W<bits>A<bits>, e.g. W8A8 or W4A4", s)
	}
	if w < 2 || w > 8 || a < 2 || a > 8 {
		return QuantConfig{}, fmt.Errorf("bits %q: want 2 to 8 bits for weights and activations", s)
	}
	c := QuantConfig{Weight: QuantSpec{Bits: w}, Act: QuantSpec{Bits: a}}
	if err := c.Weight.check(true); err != nil {
		return QuantConfig{}, fmt.Errorf("bits %q: weight: %w", s, err)
	}
	if err := c.Act.check(false); err != nil {
		return QuantConfig{}, fmt.Errorf("bits %q: activation: %w", s, err)
	}
	return c, nil
}

// ParseQuantConfig decodes a JSON QuantConfig strictly (unknown or
// repeated fields, nulls and trailing data are errors naming the field,
// see internal/strictjson) and checks its specs; Validate checks it
// against a model.
func ParseQuantConfig(b []byte) (QuantConfig, error) {
	var c QuantConfig
	if err := strictjson.Decode(b, &c); err != nil {
		return QuantConfig{}, fmt.Errorf("quant config: %w", err)
	}
	if err := c.checkSpecs(); err != nil {
		return QuantConfig{}, err
	}
	return c, nil
}

// SetLearnable makes every enabled quantizer learnable of the given kind
// ("" leaves them observer-driven). LSQ+ learns the zero point of affine
// quantizers; symmetric ones (the default weights) fix it and learn only
// their scale, as LSQ. PACT learns activation clipping thresholds: it
// makes the activation and input specs pact (which takes effect after
// fused ReLUs, see LearnPACT) and leaves the weights observer-driven, as
// in the paper, which quantizes weights separately (DoReFa).
func (c *QuantConfig) SetLearnable(kind string) {
	set := func(q *QuantSpec, weight bool) {
		q.Learnable = kind
		s, err := q.Scheme(weight)
		switch {
		case kind == LearnPACT && weight:
			q.Learnable = ""
		case kind == LearnLSQPlus && err == nil && s.Symmetric:
			q.Learnable = LearnLSQ
		}
	}
	set(&c.Weight, true)
	set(&c.Act, false)
	if c.Input != nil {
		in := *c.Input
		set(&in, false)
		c.Input = &in
	}
	for n, l := range c.Layers {
		if l.Weight != nil {
			w := *l.Weight
			set(&w, true)
			l.Weight = &w
		}
		if l.Act != nil {
			a := *l.Act
			set(&a, false)
			l.Act = &a
		}
		c.Layers[n] = l
	}
}

// Validate checks every spec and that each override names a conv or
// linear layer of s, or an add or concat node of s and overrides its
// output quantizer only.
func (c QuantConfig) Validate(s model.Graph) error {
	if err := c.checkSpecs(); err != nil {
		return err
	}
	known := map[string]model.Node{}
	for _, l := range s.Nodes {
		if l.Requantizes() {
			known[l.Name] = l
		}
	}
	names := make([]string, 0, len(c.Layers))
	for n := range c.Layers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l, ok := known[n]
		switch {
		case !ok:
			return fmt.Errorf("quant config: layer %q is not a conv, linear, add or concat node of model %s", n, s.Name)
		case !l.Weighted() && c.Layers[n].Weight != nil:
			return fmt.Errorf("quant config: layer %q (%s) of model %s has no weight to quantize", n, l.Op, s.Name)
		}
	}
	return nil
}

// checkSpecs checks every spec of c on its own (bits, scheme, observer,
// learnable kind) and its PTQ options, naming the one that fails.
func (c QuantConfig) checkSpecs() error {
	if err := c.PTQ.check(); err != nil {
		return err
	}
	if err := c.Weight.check(true); err != nil {
		return fmt.Errorf("quant config: weight: %w", err)
	}
	if err := c.Act.check(false); err != nil {
		return fmt.Errorf("quant config: act: %w", err)
	}
	if c.Input != nil {
		if err := c.Input.check(false); err != nil {
			return fmt.Errorf("quant config: input: %w", err)
		}
	}
	names := make([]string, 0, len(c.Layers))
	for n := range c.Layers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := c.Layers[n]
		if l.Weight != nil {
			if err := l.Weight.check(true); err != nil {
				return fmt.Errorf("quant config: layer %s weight: %w", n, err)
			}
		}
		if l.Act != nil {
			if err := l.Act.check(false); err != nil {
				return fmt.Errorf("quant config: layer %s act: %w", n, err)
			}
		}
	}
	return nil
}

// WeightSpec returns the effective spec of a layer's weight quantizer.
func (c QuantConfig) WeightSpec(layer string) QuantSpec {
	if l, ok := c.Layers[layer]; ok && l.Weight != nil {
		return *l.Weight
	}
	return c.Weight
}

// ActSpec returns the effective spec of the output quantizer of a layer
// (a conv, linear, add or concat node).
func (c QuantConfig) ActSpec(layer string) QuantSpec {
	if l, ok := c.Layers[layer]; ok && l.Act != nil {
		return *l.Act
	}
	return c.Act
}

// InputSpec returns the effective spec of the input quantizer.
func (c QuantConfig) InputSpec() QuantSpec {
	if c.Input != nil {
		return *c.Input
	}
	return c.Act
}

func (q QuantSpec) check(weight bool) error {
	if _, err := q.Scheme(weight); err != nil {
		return err
	}
	switch q.Learnable {
	case "", LearnLSQ, LearnLSQPlus, LearnPACT:
	default:
		return fmt.Errorf("learnable %q: want lsq, lsq+ or pact", q.Learnable)
	}
	s, _ := q.Scheme(weight)
	switch {
	case q.Learnable == LearnLSQPlus && s.Symmetric:
		return fmt.Errorf("lsq+ learns a zero point, which a symmetric scheme fixes: use lsq or an affine scheme")
	case q.Learnable == LearnPACT && weight:
		return fmt.Errorf("pact learns activation clipping thresholds, not weight ranges: use lsq, lsq+ or no learnable kind for weights")
	case q.Learnable == LearnPACT && (q.Signed || q.Symmetric || q.Affine):
		return fmt.Errorf("pact quantizes to unsigned codes over [0, alpha] with zero point 0: drop signed, symmetric and affine")
	case !(q.AlphaDecay >= 0) || math.IsInf(float64(q.AlphaDecay), 0):
		return fmt.Errorf("alpha_decay %g is not a finite number >= 0", q.AlphaDecay)
	case q.AlphaDecay != 0 && q.Learnable != LearnPACT:
		return fmt.Errorf("alpha_decay %g applies to pact quantizers only", q.AlphaDecay)
	}
	if _, err := quant.NewObserver(s, q.ObserverConfig(weight)); err != nil {
		return fmt.Errorf("observer: %w", err)
	}
	return nil
}

// ObserverConfig returns the observer config of the spec in the weight or
// activation role.
func (q QuantSpec) ObserverConfig(weight bool) quant.ObserverConfig {
	if q.Observer == "" {
		c := quant.ObserverConfig{Kind: quant.KindMovingAverageMinMax}
		if weight {
			c.AveragingConstant = 1
		}
		return c
	}
	return quant.ObserverConfig{Kind: q.Observer}
}

// Scheme returns the quant.Scheme of the spec in the weight or
// activation role.
func (q QuantSpec) Scheme(weight bool) (quant.Scheme, error) {
	if q.Symmetric && q.Affine {
		return quant.Scheme{}, fmt.Errorf("both symmetric and affine")
	}
	s := quant.Scheme{Bits: q.Bits}
	if weight {
		s.Signed, s.Symmetric, s.PerChannel = true, true, !q.PerTensor
		if q.Affine {
			s.Symmetric = false
		}
	} else {
		if q.PerTensor {
			return quant.Scheme{}, fmt.Errorf("per_tensor applies to weights (activations are always per-tensor)")
		}
		s.Signed, s.Symmetric = q.Signed, q.Symmetric
	}
	if err := s.Validate(); err != nil {
		return quant.Scheme{}, err
	}
	return s, nil
}

// String is a short description such as "W8A8" of the default widths.
func (c QuantConfig) String() string {
	return fmt.Sprintf("W%dA%d", bitsOr8(c.Weight.Bits), bitsOr8(c.Act.Bits))
}

func bitsOr8(b int) int {
	if b == 0 {
		return 8
	}
	return b
}
