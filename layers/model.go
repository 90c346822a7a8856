package layers

import (
	"fmt"
	"math"
	"math/rand/v2"

	"qat/fakequant"
	"qat/model"
	"qat/ops"
	"qat/quant"
)

// Param is a named float32 tensor of a model: a trainable parameter or a
// learnable quantizer's scale or zero point. Data is owned by the model
// and shared by every graph built from it: an optimizer updates it in
// place between runs. Grad is filled by Graph.Run in training graphs.
type Param struct {
	Name  string
	Shape []int
	Data  []float32
	Grad  []float32
	// Quantizer marks a learnable quantizer's scale or zero point; the
	// optimizer (package train) exempts such params from weight decay.
	Quantizer bool
}

func newParam(name string, shape ...int) *Param {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return &Param{Name: name, Shape: shape, Data: make([]float32, n), Grad: make([]float32, n)}
}

// Quantizer roles.
const (
	RoleInput  = "input"
	RoleWeight = "weight"
	RoleAct    = "act"
)

// Quantizer is one fake quantizer of a model. Its observer-driven
// FakeQuant always exists (it calibrates learnable quantizers too);
// a learnable quantizer also has Learn and the Scale and ZeroPoint params.
type Quantizer struct {
	// Name is the state_dict prefix: "input_fake_quant",
	// LAYER+".weight_fake_quant" or LAYER+".activation_post_process".
	Name   string
	Layer  string // the conv, linear, add or concat node ("" for the input)
	Role   string // RoleInput, RoleWeight or RoleAct
	Spec   QuantSpec
	Scheme quant.Scheme

	FQ    *fakequant.FakeQuant
	Learn *fakequant.LearnableFakeQuant
	// Scale and ZeroPoint hold a learnable quantizer's values; they take
	// part in training once Learning is set (after initialisation).
	Scale, ZeroPoint *Param
	Learning         bool
}

// Params returns the params the quantizer applies now: the learnable
// values when learning, else the FakeQuant's (false if it has none yet).
func (q *Quantizer) Params() (quant.Params, bool) {
	if q.Learning {
		p, err := q.Learn.ParamsOf(denseOf(q.Scale), denseOf(q.ZeroPoint))
		return p, err == nil
	}
	return q.FQ.Params()
}

// Model is a network's state: its spec, quantization config (nil for a
// float model), parameters, BatchNorm statistics and quantizers. Graphs
// built from it (NewGraph) share that state.
type Model struct {
	Spec  model.Graph
	Quant *QuantConfig

	params     []*Param // weights, biases, BN affine, learnable quant params
	bns        map[string]*ops.BatchNorm
	quantizers []*Quantizer
	// observersFrozen and bnFrozen are the QAT schedule's switches.
	observersFrozen, bnFrozen bool
	// version counts changes to the quantizers that invalidate graphs.
	version int
}

// NewModel returns a float model of spec s with PyTorch's default
// initialisation (Kaiming-uniform weights with a = sqrt(5), biases
// uniform in ±1/sqrt(fan_in), BN weight 1 and bias 0) from seed. Every
// param has the shape model.Node.ParamShapes gives on its node's input.
func NewModel(s model.Graph, seed uint64) (*Model, error) {
	shapes, err := s.Shapes()
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", s.Name, err)
	}
	src, err := s.Sources()
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", s.Name, err)
	}
	m := &Model{Spec: s, bns: map[string]*ops.BatchNorm{}}
	rng := rand.New(rand.NewPCG(seed, 0x9a7))
	for i, l := range s.Nodes {
		in := s.Input
		if j := src[i][0]; j >= 0 {
			in = shapes[j]
		}
		if err := m.addParams(l, l.ParamShapes(in), rng); err != nil {
			return nil, fmt.Errorf("model %s: layer %s: %w", s.Name, l.Name, err)
		}
	}
	return m, nil
}

// addParams adds the params of node l, of the given shapes in the order
// of l.ParamNames, initialised from rng as PyTorch does: the weight
// uniform in ±1/sqrt(fan_in) (Kaiming-uniform with a = sqrt(5)), fan_in
// being the product of its dimensions but the first (C/G*K*K for a conv
// of G groups), the bias uniform in the same bound, the BN weight 1 and
// bias 0. The BN's running statistics and num_batches_tracked are not
// params but the buffers of its ops.BatchNorm, which it makes too.
func (m *Model) addParams(l model.Node, shapes [][]int, rng *rand.Rand) error {
	var bound float32
	for k, name := range l.ParamNames() {
		shape := shapes[k]
		switch name {
		case l.Name + ".weight":
			fanIn := 1
			for _, d := range shape[1:] {
				fanIn *= d
			}
			bound = float32(1 / math.Sqrt(float64(fanIn)))
			fallthrough
		case l.Name + ".bias": // after the weight, whose bound it takes
			p := newParam(name, shape...)
			uniform(rng, p.Data, bound)
			m.params = append(m.params, p)
		case l.BN + ".weight":
			bn, err := ops.NewBatchNorm(shape[0], ops.BatchNormConfig{})
			if err != nil {
				return err
			}
			bn.Training = true
			m.bns[l.BN] = bn
			g := newParam(name, shape...)
			for j := range g.Data {
				g.Data[j] = 1
			}
			m.params = append(m.params, g)
		case l.BN + ".bias":
			m.params = append(m.params, newParam(name, shape...))
		}
	}
	return nil
}

func uniform(rng *rand.Rand, dst []float32, bound float32) {
	for i := range dst {
		dst[i] = (2*rng.Float32() - 1) * bound
	}
}

// Params returns the model's trainable params in a fixed order: layer
// weights, biases and BN affine params, then learnable quantizer values
// that are learning.
func (m *Model) Params() []*Param {
	out := append([]*Param(nil), m.params...)
	for _, q := range m.quantizers {
		if q.Learning {
			out = append(out, q.Scale)
			if q.Spec.Learnable == LearnLSQPlus {
				out = append(out, q.ZeroPoint)
			}
		}
	}
	return out
}

// Param returns the parameter of that name, or nil.
func (m *Model) Param(name string) *Param {
	for _, p := range m.params {
		if p.Name == name {
			return p
		}
	}
	for _, q := range m.quantizers {
		if q.Scale != nil && q.Scale.Name == name {
			return q.Scale
		}
		if q.ZeroPoint != nil && q.ZeroPoint.Name == name {
			return q.ZeroPoint
		}
	}
	return nil
}

// BatchNorm returns the BatchNorm module of that name, or nil.
func (m *Model) BatchNorm(name string) *ops.BatchNorm { return m.bns[name] }

// Quantizers returns the model's quantizers in graph order (nil for a
// float model).
func (m *Model) Quantizers() []*Quantizer { return append([]*Quantizer(nil), m.quantizers...) }

// Quantizer returns the quantizer of that name, or nil.
func (m *Model) Quantizer(name string) *Quantizer {
	for _, q := range m.quantizers {
		if q.Name == name {
			return q
		}
	}
	return nil
}

// Quantized reports whether the model has a quantization config.
func (m *Model) Quantized() bool { return m.Quant != nil }

// Folded reports whether conv layers with BN are built in PyTorch's
// ConvBn form (QAT with folding).
func (m *Model) Folded() bool { return m.Quant != nil && !m.Quant.NoFoldBN }

// Quantize prepares the float model for QAT or PTQ with config c: it adds
// the input quantizer, each conv and linear layer's weight and output
// quantizers, and the output quantizer of each add and concat node (as
// PyTorch's FloatFunctional has: NAME.activation_post_process, after an
// add's fused activation), all observing, in graph order. Output
// quantizers take c.ActSpec of their node's name, so per-layer overrides
// apply to adds and concats too. Learnable quantizers are not learning
// until InitLearnable. A pact spec makes a learnable quantizer only on the
// output of a node with a fused relu or relu6 (LearnPACT). A model is
// quantized once.
func (m *Model) Quantize(c QuantConfig) error {
	if m.Quant != nil {
		return fmt.Errorf("model %s is already quantized (%v)", m.Spec.Name, m.Quant)
	}
	if err := c.Validate(m.Spec); err != nil {
		return err
	}
	var qs []*Quantizer
	// act is the activation fused before the quantizer ("" for weights and
	// the input).
	add := func(name, layer, role string, act model.OpType, spec QuantSpec) error {
		if spec.Off {
			return nil
		}
		s, err := spec.Scheme(role == RoleWeight)
		if err != nil {
			return fmt.Errorf("quantizer %s: %w", name, err)
		}
		obs, err := quant.NewObserver(s, spec.ObserverConfig(role == RoleWeight))
		if err != nil {
			return fmt.Errorf("quantizer %s: %w", name, err)
		}
		q := &Quantizer{Name: name, Layer: layer, Role: role, Spec: spec, Scheme: s,
			FQ: fakequant.New(obs, fakequant.Named(name))}
		pact := spec.Learnable == LearnPACT
		if spec.Learnable != "" && (!pact || act == model.OpReLU || act == model.OpReLU6) {
			l, err := fakequant.NewLearnable(fakequant.LearnableConfig{
				Name: name, QMin: s.QMin(), QMax: s.QMax(), PerChannel: s.PerChannel, Axis: s.Axis,
				LearnZeroPoint: spec.Learnable == LearnLSQPlus, PACT: pact, AlphaDecay: spec.AlphaDecay,
				ClampScale: true,
			})
			if err != nil {
				return fmt.Errorf("quantizer %s: %w", name, err)
			}
			q.Learn = l
		}
		qs = append(qs, q)
		return nil
	}
	if err := add("input_fake_quant", "", RoleInput, "", c.InputSpec()); err != nil {
		return err
	}
	for _, l := range m.Spec.Nodes {
		if l.Weighted() {
			if err := add(l.Name+".weight_fake_quant", l.Name, RoleWeight, "", c.WeightSpec(l.Name)); err != nil {
				return err
			}
		}
		if l.Requantizes() {
			if err := add(l.Name+".activation_post_process", l.Name, RoleAct, l.Act, c.ActSpec(l.Name)); err != nil {
				return err
			}
		}
	}
	cc := c
	m.Quant, m.quantizers = &cc, qs
	m.version++
	return nil
}

// InitLearnable starts learning in every learnable quantizer that is not
// yet: its scale and zero point are initialised from its observer, which
// must have seen data (calibrate first); a PACT quantizer's alpha starts at
// the top of the observer's range, the observed maximum after a ReLU
// (fakequant.InitPACT). It reports how many started.
func (m *Model) InitLearnable() (int, error) {
	n := 0
	for _, q := range m.quantizers {
		if q.Learn == nil || q.Learning {
			continue
		}
		start := fakequant.InitFrom
		if q.Learn.Config().PACT {
			start = fakequant.InitPACT
		}
		scale, zp, err := start(q.FQ.Observer())
		if err != nil {
			return n, fmt.Errorf("quantizer %s: initialise from observer: %w", q.Name, err)
		}
		q.Scale = &Param{Name: q.Name + ".scale", Shape: []int{len(scale)}, Data: scale, Grad: make([]float32, len(scale)), Quantizer: true}
		q.ZeroPoint = &Param{Name: q.Name + ".zero_point", Shape: []int{len(zp)}, Data: zp, Grad: make([]float32, len(zp)), Quantizer: true}
		q.Learning = true
		n++
	}
	if n > 0 {
		m.version++
	}
	return n, nil
}

// NeedsInit reports whether a learnable quantizer is not learning yet.
func (m *Model) NeedsInit() bool {
	for _, q := range m.quantizers {
		if q.Learn != nil && !q.Learning {
			return true
		}
	}
	return false
}

// FreezeObservers stops (or restarts) every observer: frozen quantizers
// keep their params while training continues.
func (m *Model) FreezeObservers(on bool) { m.observersFrozen = on }

// ObserversFrozen reports whether FreezeObservers(true) is in effect.
func (m *Model) ObserversFrozen() bool { return m.observersFrozen }

// FreezeBN makes BatchNorm use and keep its running statistics in
// training (PyTorch's freeze_bn_stats), or undoes that.
func (m *Model) FreezeBN(on bool) { m.bnFrozen = on }

// BNFrozen reports whether FreezeBN(true) is in effect.
func (m *Model) BNFrozen() bool { return m.bnFrozen }

// setMode puts BN and quantizers in the state a training run (train) or
// an evaluation run needs; calibrate makes observers observe without
// training.
func (m *Model) setMode(train, calibrate bool) error {
	for _, bn := range m.bns {
		bn.Training = train && !m.bnFrozen
	}
	for _, q := range m.quantizers {
		mode := fakequant.Frozen
		if calibrate || (train && !m.observersFrozen) {
			mode = fakequant.Observing
		}
		if err := q.FQ.SetMode(mode); err != nil {
			return fmt.Errorf("quantizer %s: %w", q.Name, err)
		}
	}
	return nil
}

// CheckReady reports an error naming the first quantizer that has no
// params to apply yet (a quantized model must be calibrated or trained
// before evaluation).
func (m *Model) CheckReady() error {
	for _, q := range m.quantizers {
		if _, ok := q.Params(); !ok {
			return fmt.Errorf("quantizer %s has no params yet: calibrate or fine-tune the model first", q.Name)
		}
	}
	return nil
}
