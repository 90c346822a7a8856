package layers

import (
	"errors"
	"fmt"
	"math"

	pkgerrors "github.com/pkg/errors"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/model"
	"qat/ops"
	"qat/quant"
)

// GraphKind is what a graph is built for.
type GraphKind int

const (
	// Eval computes logits and loss with BN on running statistics and
	// every quantizer frozen. In a quantized model, conv and linear layers
	// on a quantizer's grid compute what the exported int8 model computes
	// (see exact.go).
	Eval GraphKind = iota
	// Train also computes the gradient of the mean loss with respect to
	// every trainable param; BN and observers follow the model's freeze
	// switches.
	Train
	// Calibrate is Eval with every observer observing (PTQ calibration and
	// the initialisation of learnable quantizers); no gradients.
	Calibrate
)

func (k GraphKind) String() string {
	switch k {
	case Eval:
		return "eval"
	case Train:
		return "train"
	case Calibrate:
		return "calibrate"
	}
	return fmt.Sprintf("GraphKind(%d)", int(k))
}

// Graph is a compiled gorgonia graph of a model for a fixed batch size.
// It shares the model's params, BN statistics and quantizers, so a change
// made through the model (an optimizer step, a freeze) is seen by the next
// run. A graph must be rebuilt after the set of learning quantizers changes
// (Run reports a stale graph). One graph must not be run concurrently.
type Graph struct {
	model   *Model
	version int
	kind    GraphKind
	batch   int
	exact   Exact // nil: the float fake-quant simulation
	// distill, if not nil, makes the loss a distillation loss
	// (NewDistillGraph).
	distill *ops.Distill

	g      *gorgonia.ExprGraph
	vm     gorgonia.VM
	x      *gorgonia.Node
	xData  []float32
	logits *gorgonia.Node
	loss   *ops.CrossEntropy

	nodes  map[*Param]*gorgonia.Node // the node of each param, made once
	params []*Param
	grads  []*gorgonia.Node
	taps   []tap
	qin    []qtap
}

// tap is a layer output, for finding where a non-finite value appeared.
type tap struct {
	label string
	node  *gorgonia.Node
}

// qtap is a quantizer's input, for quantization-error metrics.
type qtap struct {
	q    *Quantizer
	node *gorgonia.Node
}

// NewGraph builds and compiles the model's graph for batch samples. An
// Eval graph of it computes the float fake-quant simulation of the int8
// model; NewExactGraph computes the int8 model itself.
func (m *Model) NewGraph(batch int, kind GraphKind) (*Graph, error) {
	return m.newGraph(batch, kind, nil, nil)
}

// NewDistillGraph builds and compiles a Train graph for batch samples
// whose loss is the knowledge-distillation loss of ops.NewDistillation
// with d, against a teacher's logits handed over by SetTeacher before
// every Run; it is NewGraph's Train graph otherwise.
func (m *Model) NewDistillGraph(batch int, d ops.Distill) (*Graph, error) {
	return m.newGraph(batch, Train, nil, &d)
}

// NewExactGraph builds and compiles an Eval graph for batch samples in
// which exact computes every quantized conv or linear layer whose input is
// on a quantizer's grid (with both its quantizers, and any BN folded),
// every add or concat node with its output quantizer whose inputs all lie
// on grids, and every average or global average pool on a grid, as the
// exported int8 model does (see Exact). The other nodes keep the float
// fake-quant simulation. exact must not be nil; for a float model the
// graph is NewGraph's.
func (m *Model) NewExactGraph(batch int, exact Exact) (*Graph, error) {
	if exact == nil {
		panic("layers: NewExactGraph with a nil Exact")
	}
	return m.newGraph(batch, Eval, exact, nil)
}

func (m *Model) newGraph(batch int, kind GraphKind, exact Exact, distill *ops.Distill) (*Graph, error) {
	if batch < 1 {
		return nil, fmt.Errorf("model %s: batch size %d", m.Spec.Name, batch)
	}
	if kind == Train && m.NeedsInit() {
		return nil, fmt.Errorf("model %s: learnable quantizers are not initialised: calibrate first", m.Spec.Name)
	}
	gr := &Graph{model: m, version: m.version, kind: kind, batch: batch, exact: exact, distill: distill, g: gorgonia.NewGraph()}
	if err := gr.build(); err != nil {
		return nil, fmt.Errorf("model %s: build %v graph: %w", m.Spec.Name, kind, err)
	}
	roots := gorgonia.Nodes{gr.logits, gr.loss.Node()}
	roots = append(roots, gr.grads...)
	// Compile only what the loss, logits and wanted gradients need:
	// gradient ops for data inputs (the first layer's dX) are left out.
	gr.vm = gorgonia.NewTapeMachine(gr.g.SubgraphRoots(roots...))
	return gr, nil
}

// build adds the model's input, layers and loss to gr's graph, and for a
// Train graph the gradients of the loss with respect to the params.
func (gr *Graph) build() error {
	gr.nodes = map[*Param]*gorgonia.Node{}
	h, cur, err := gr.buildInput()
	if err != nil {
		return err
	}
	if h, err = gr.buildLayers(h, cur); err != nil {
		return err
	}
	gr.logits = h
	if gr.distill != nil {
		gr.loss, err = ops.NewDistillation(h, *gr.distill)
	} else {
		gr.loss, err = ops.NewCrossEntropy(h)
	}
	if err != nil {
		return err
	}
	if gr.kind != Train {
		return nil
	}
	return gr.buildGrads()
}

// paramNode returns the graph node of p, making it on first use.
func (gr *Graph) paramNode(p *Param) *gorgonia.Node {
	if n, ok := gr.nodes[p]; ok {
		return n
	}
	n := gorgonia.NewTensor(gr.g, tensor.Float32, len(p.Shape), gorgonia.WithShape(p.Shape...),
		gorgonia.WithName(p.Name), gorgonia.WithValue(denseOf(p)))
	gr.nodes[p] = n
	return n
}

// buildInput makes the input node over gr.xData and, in a model with an
// input quantizer, quantizes it; it returns the result and the quantizer
// on whose grid it lies (nil when it is off-grid).
func (gr *Graph) buildInput() (*gorgonia.Node, *Quantizer, error) {
	m := gr.model
	in := append([]int{gr.batch}, m.Spec.Input...)
	gr.xData = make([]float32, gr.batch*m.Spec.Input[0]*m.Spec.Input[1]*m.Spec.Input[2])
	gr.x = gorgonia.NewTensor(gr.g, tensor.Float32, 4, gorgonia.WithShape(in...), gorgonia.WithName("input"),
		gorgonia.WithValue(graphval.NewDense(tensor.Shape(in), gr.xData)))
	q := m.Quantizer("input_fake_quant")
	if q == nil {
		return gr.x, nil, nil
	}
	h, err := gr.quantize(q, gr.x)
	if err != nil {
		return nil, nil, err
	}
	gr.taps = append(gr.taps, tap{"input quantizer", h})
	return h, q, nil
}

// nodeInput is one input of a node: its graph node, the quantizer on
// whose grid its values lie (nil: off-grid) and its per-sample shape.
type nodeInput struct {
	x     *gorgonia.Node
	grid  *Quantizer
	shape []int
}

// buildLayers adds the model's nodes in order to the graph, each on the
// outputs of the nodes it reads (Sources), input (on the grid of
// inputGrid, or off-grid when it is nil) feeding those that read the
// model's input, tapping each output; it returns the last node's output.
func (gr *Graph) buildLayers(input *gorgonia.Node, inputGrid *Quantizer) (*gorgonia.Node, error) {
	m := gr.model
	shapes, err := m.Spec.Shapes()
	if err != nil {
		return nil, err
	}
	src, err := m.Spec.Sources()
	if err != nil {
		return nil, err
	}
	exact := gr.exact != nil && m.Quantized()
	// Node i's output, with the quantizer on whose grid it lies.
	outs := make([]nodeInput, len(shapes))
	for i, l := range m.Spec.Nodes {
		in := make([]nodeInput, len(src[i]))
		for k, j := range src[i] {
			in[k] = nodeInput{input, inputGrid, m.Spec.Input}
			if j >= 0 {
				in[k] = outs[j]
			}
		}
		label := fmt.Sprintf("layer %d (%s %s)", i, l.Op, l.Name)
		h, grid, err := gr.buildNode(l, in, shapes[i], exact)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		gr.taps = append(gr.taps, tap{label, h})
		outs[i] = nodeInput{h, grid, shapes[i]}
	}
	return outs[len(outs)-1].x, nil
}

// buildNode adds node l to the graph on its inputs in, with per-sample
// output shape outShape; with exact, the Exact computes the quantized
// nodes it can. It returns l's output and the quantizer on whose grid
// that lies (nil: off-grid): a requantizing node's output quantizer, the
// input's grid for the ops that keep it (max pooling, activations,
// flatten), none for a float average pool.
func (gr *Graph) buildNode(l model.Node, in []nodeInput, outShape []int, exact bool) (*gorgonia.Node, *Quantizer, error) {
	m := gr.model
	h, cur := in[0].x, in[0].grid
	var err error
	switch l.Op {
	case model.OpConv, model.OpLinear:
		if exact && cur != nil && m.exactable(l) {
			h, err = gr.exactLayer(l, h, cur, in[0].shape, outShape)
		} else {
			h, err = gr.weighted(l, h)
		}
		cur = m.Quantizer(l.Name + ".activation_post_process")
	case model.OpAdd, model.OpConcat:
		return gr.join(l, in, outShape, exact)
	case model.OpMaxPool:
		h, err = ops.MaxPool2dPadded(h, l.Kernel, l.Stride, l.Padding)
	case model.OpAvgPool, model.OpGlobalAvgPool:
		switch {
		case exact && cur != nil:
			h, err = gr.exactAvgPool(h, cur, l)
		case l.Op == model.OpGlobalAvgPool:
			h, err = ops.GlobalAvgPool(h)
			cur = nil
		default:
			h, err = ops.AvgPool2d(h, l.Kernel, l.Stride)
			cur = nil
		}
	case model.OpFlatten:
		h, err = ops.Flatten(h)
	case model.OpReLU:
		h, err = ops.ReLU(h)
	case model.OpReLU6:
		h, err = ops.ReLU6(h)
	default:
		err = fmt.Errorf("unknown layer type %q", l.Op)
	}
	return h, cur, err
}

// join builds the add or concat node l on its inputs in, of per-sample
// output shape outShape. With exact, when l has its output quantizer and
// every input lies on a grid, the Exact computes it; otherwise it is the
// float sum (then l's fused activation) or concatenation, then l's output
// quantizer where it has one. It returns the output and the quantizer on
// whose grid that lies: l's output quantizer, nil in a float model.
func (gr *Graph) join(l model.Node, in []nodeInput, outShape []int, exact bool) (*gorgonia.Node, *Quantizer, error) {
	out := gr.model.Quantizer(l.Name + ".activation_post_process")
	xs := make([]*gorgonia.Node, len(in))
	onGrid := exact && out != nil
	for i, x := range in {
		xs[i] = x.x
		onGrid = onGrid && x.grid != nil
	}
	if onGrid {
		h, err := gr.exactJoin(l, in, out, outShape)
		return h, out, err
	}
	var y *gorgonia.Node
	var err error
	if l.Op == model.OpAdd {
		y, err = ops.Add(xs[0], xs[1])
	} else {
		y, err = ops.Concat(xs...)
	}
	if err != nil {
		return nil, nil, err
	}
	y, err = gr.activate(l, y)
	return y, out, err
}

// buildGrads adds the gradients of the loss with respect to every param
// of the model, each of which the graph must use.
func (gr *Graph) buildGrads() error {
	gr.params = gr.model.Params()
	wrt := make(gorgonia.Nodes, len(gr.params))
	for i, p := range gr.params {
		n, ok := gr.nodes[p]
		if !ok {
			return fmt.Errorf("param %s is not used by the graph", p.Name)
		}
		wrt[i] = n
	}
	var err error
	if gr.grads, err = gorgonia.Grad(gr.loss.Node(), wrt...); err != nil {
		return fmt.Errorf("gradients: %w", err)
	}
	return nil
}

// weighted builds a conv or linear layer with its bias, BN, activation and
// quantizers. A conv with BN in a folded model follows PyTorch's
// _ConvBnNd: the weight is scaled by sf = gamma/sqrt(running_var+eps)
// before fake quantization, the conv output is divided by sf, the bias is
// added and BN runs on the result (batch statistics while training).
func (gr *Graph) weighted(l model.Node, h *gorgonia.Node) (*gorgonia.Node, error) {
	m := gr.model
	w := gr.paramNode(m.Param(l.Name + ".weight"))
	var b *gorgonia.Node
	if p := m.Param(l.Name + ".bias"); p != nil {
		b = gr.paramNode(p)
	}
	bn, err := gr.layerBN(l)
	if err != nil {
		return nil, err
	}
	if w, err = gr.layerWeight(l, w, bn.sf); err != nil {
		return nil, err
	}
	var y *gorgonia.Node
	if l.Op == model.OpLinear {
		y, err = ops.Linear(h, w, b)
	} else {
		y, err = convBN(l, h, w, b, bn)
	}
	if err != nil {
		return nil, err
	}
	return gr.activate(l, y)
}

// bnNodes is the BatchNorm of a conv or linear layer (bn nil: none) with
// the nodes of its params, and its fold scale sf where the model is
// folded (else nil).
type bnNodes struct {
	bn              *ops.BatchNorm
	gamma, beta, sf *gorgonia.Node
}

// layerBN returns the BatchNorm of layer l with its param nodes and, in a
// folded model, its fold scale.
func (gr *Graph) layerBN(l model.Node) (bnNodes, error) {
	m := gr.model
	r := bnNodes{bn: m.bns[l.BN]}
	if r.bn == nil {
		return r, nil
	}
	r.gamma, r.beta = gr.paramNode(m.Param(l.BN+".weight")), gr.paramNode(m.Param(l.BN+".bias"))
	if m.Folded() {
		var err error
		if r.sf, err = ops.FoldScale(r.gamma, r.bn); err != nil {
			return bnNodes{}, err
		}
	}
	return r, nil
}

// layerWeight returns the weight node w of layer l scaled by the fold
// scale sf (where not nil) and passed through the layer's weight
// quantizer (where it has one).
func (gr *Graph) layerWeight(l model.Node, w, sf *gorgonia.Node) (*gorgonia.Node, error) {
	var err error
	if sf != nil {
		if w, err = ops.ChannelMul(w, sf, 0); err != nil {
			return nil, err
		}
	}
	if q := gr.model.Quantizer(l.Name + ".weight_fake_quant"); q != nil {
		if w, err = gr.quantize(q, w); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// convBN computes conv layer l of input h with weight w, then divides by
// the fold scale, adds the bias b and applies the BatchNorm, each where
// the layer has it.
func convBN(l model.Node, h, w, b *gorgonia.Node, bn bnNodes) (*gorgonia.Node, error) {
	y, err := ops.Conv2d(h, w, ops.ConvConfig{Stride: l.Stride, Padding: l.Padding, Groups: l.Groups})
	if err != nil {
		return nil, err
	}
	if bn.sf != nil {
		if y, err = ops.ChannelDiv(y, bn.sf, 1); err != nil {
			return nil, err
		}
	}
	if b != nil {
		if y, err = ops.AddChannelBias(y, b); err != nil {
			return nil, err
		}
	}
	if bn.bn != nil {
		if y, err = bn.bn.Apply(y, bn.gamma, bn.beta); err != nil {
			return nil, err
		}
	}
	return y, nil
}

// activate applies node l's fused activation, if any, to y and then its
// output quantizer, if it has one.
func (gr *Graph) activate(l model.Node, y *gorgonia.Node) (*gorgonia.Node, error) {
	var err error
	switch l.Act {
	case model.OpReLU:
		y, err = ops.ReLU(y)
	case model.OpReLU6:
		y, err = ops.ReLU6(y)
	}
	if err != nil {
		return nil, err
	}
	if q := gr.model.Quantizer(l.Name + ".activation_post_process"); q != nil {
		if y, err = gr.quantize(q, y); err != nil {
			return nil, err
		}
	}
	return y, nil
}

// quantize passes x through quantizer q, learned or observed, recording
// x as q's input for the quantization-error metrics.
func (gr *Graph) quantize(q *Quantizer, x *gorgonia.Node) (*gorgonia.Node, error) {
	gr.qin = append(gr.qin, qtap{q, x})
	if q.Learning {
		return q.Learn.Apply(x, gr.paramNode(q.Scale), gr.paramNode(q.ZeroPoint))
	}
	return q.FQ.Apply(x)
}

// denseOf wraps p's data, without copying, as a tensor of p's shape.
func denseOf(p *Param) *tensor.Dense {
	return graphval.NewDense(tensor.Shape(p.Shape), p.Data)
}

// Stale reports whether the model's quantizers changed since the graph
// was built, so that it must be rebuilt.
func (gr *Graph) Stale() bool { return gr.version != gr.model.version }

// Batch returns the graph's batch size.
func (gr *Graph) Batch() int { return gr.batch }

// Kind returns what the graph was built for.
func (gr *Graph) Kind() GraphKind { return gr.kind }

// Input returns the input buffer, [batch, C, H, W] row-major, owned by the
// graph: fill it before Run.
func (gr *Graph) Input() []float32 { return gr.xData }

// Run runs the graph on the current input with labels (one per sample, in
// [0, classes)). A training run leaves each param's gradient in its Grad.
// BN and quantizer modes are set for the graph's kind first.
func (gr *Graph) Run(labels []int) error {
	m := gr.model
	if gr.version != m.version {
		return fmt.Errorf("model %s: %v graph is stale (quantizers changed since it was built): rebuild it", m.Spec.Name, gr.kind)
	}
	if gr.kind == Eval || (gr.kind == Train && m.observersFrozen) {
		if err := m.CheckReady(); err != nil {
			return err
		}
	}
	if err := m.setMode(gr.kind == Train, gr.kind == Calibrate); err != nil {
		return err
	}
	if len(labels) != gr.batch {
		return fmt.Errorf("model %s: %d labels for a batch of %d", m.Spec.Name, len(labels), gr.batch)
	}
	gr.loss.SetLabels(labels)
	gr.vm.Reset()
	if err := gr.vm.RunAll(); err != nil {
		return unwrapVM(err)
	}
	for i, p := range gr.params {
		g, _, err := graphval.Float32s(gr.grads[i].Value(), p.Name)
		if err != nil {
			return fmt.Errorf("gradient of %s: %w", p.Name, err)
		}
		if len(g) != len(p.Grad) {
			return fmt.Errorf("gradient of %s has %d elements, want %d", p.Name, len(g), len(p.Grad))
		}
		copy(p.Grad, g)
	}
	return nil
}

// unwrapVM turns gorgonia's VM error into its cause, named by the op that
// failed: the VM's framing ("PC 2. Failed to execute instruction ...
// Failed to carry op.Do()", github.com/pkg/errors wrappers, which expose
// their cause through Cause rather than Unwrap) is dropped, and the result
// wraps the op's own error, so errors.Is and errors.As see through it.
func unwrapVM(err error) error {
	var c interface {
		Err() error
		Node() *gorgonia.Node
	}
	if !errors.As(err, &c) || c.Err() == nil {
		return err
	}
	cause := pkgerrors.Cause(c.Err())
	if n := c.Node(); n != nil && n.Op() != nil {
		return fmt.Errorf("%v: %w", n.Op(), cause)
	}
	return fmt.Errorf("%w", cause)
}

// SetTeacher hands the teacher's logits, [batch, classes] row-major, to
// the loss of a NewDistillGraph graph for the next Run (which fails
// without them); teacher is copied. It panics on any other graph.
func (gr *Graph) SetTeacher(teacher []float32) { gr.loss.SetTeacher(teacher) }

// LossTerms returns the last run's mean cross-entropy and, for a
// NewDistillGraph graph, distillation term (ops.CrossEntropy.Terms; kd
// is 0 for the others), in float64.
func (gr *Graph) LossTerms() (ce, kd float64) { return gr.loss.Terms() }

// Loss returns the mean loss of the last run: the cross-entropy, or the
// distillation loss of a NewDistillGraph graph.
func (gr *Graph) Loss() float64 {
	switch v := gr.loss.Node().Value().(type) {
	case *gorgonia.F32:
		return float64(*v)
	case gorgonia.Value:
		if d, _, err := graphval.Float32s(v, "loss"); err == nil && len(d) == 1 {
			return float64(d[0])
		}
	}
	return math.NaN()
}

// Logits returns the last run's logits, [batch, classes] row-major. The
// slice belongs to the graph and is overwritten by the next run: copy
// what must outlive it.
func (gr *Graph) Logits() []float32 {
	v, _, _ := graphval.Float32s(gr.logits.Value(), "logits")
	return v
}

// NonFinite names the first place where the last run produced NaN or Inf:
// a param, then the input quantizer and the layer outputs in order. It
// returns "" if every checked value is finite.
func (gr *Graph) NonFinite() string {
	for _, p := range gr.model.Params() {
		if i := firstNonFinite(p.Data); i >= 0 {
			return fmt.Sprintf("param %s (element %d = %v)", p.Name, i, p.Data[i])
		}
	}
	for _, t := range gr.taps {
		v, _, err := graphval.Float32s(t.node.Value(), t.label)
		if err != nil {
			continue
		}
		if i := firstNonFinite(v); i >= 0 {
			return fmt.Sprintf("output of %s (element %d = %v)", t.label, i, v[i])
		}
	}
	return ""
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

// QuantStat is one quantizer's state and error on the last run's tensor.
type QuantStat struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Scale     []float32 `json:"scale"`
	ZeroPoint []int32   `json:"zero_point"`
	MSE       float64   `json:"mse"`
	SQNR      float64   `json:"sqnr_db"`
	MaxAbs    float64   `json:"max_abs_error"`
	Clipped   float64   `json:"clipped"`
}

// QuantStats measures every quantizer on the tensor it saw in the last
// run, with the params it has now.
func (gr *Graph) QuantStats() []QuantStat {
	out := make([]QuantStat, 0, len(gr.qin))
	for _, t := range gr.qin {
		p, ok := t.q.Params()
		if !ok {
			continue
		}
		x, shape, err := graphval.Float32s(t.node.Value(), t.q.Name)
		if err != nil {
			continue
		}
		e := quant.MeasureError(x, shape, p)
		out = append(out, QuantStat{Name: t.q.Name, Role: t.q.Role, Scale: p.Scale, ZeroPoint: p.ZeroPoint,
			MSE: e.MSE, SQNR: e.SQNR, MaxAbs: e.MaxAbsError, Clipped: e.Clipped})
	}
	return out
}
