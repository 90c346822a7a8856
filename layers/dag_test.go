package layers

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"qat/internal/gradcheck"
	"qat/model"
	"qat/quant"
	"qat/safetensors"
)

// smallDAG is a small network with every DAG node type: a conv with BN
// and ReLU, a padded max pool feeding two branches (a depthwise conv with
// BN and ReLU6, a grouped 1x1 conv with bias), their add with ReLU, the
// concat of the add and the pool (which so has three consumers), a global
// average pool, flatten and the classifier. Names have dots, as
// PyTorch's module paths.
func smallDAG() model.Graph {
	return model.Graph{Name: "dag", Input: []int{3, 7, 9}, Classes: 3, Nodes: []model.Node{
		{Op: model.OpConv, Name: "features.0", Out: 4, Kernel: 3, Padding: 1, NoBias: true, BN: "features.1", Act: model.OpReLU},
		{Op: model.OpMaxPool, Name: "pool", Kernel: 3, Stride: 2, Padding: 1},
		{Op: model.OpConv, Name: "block.dw", Out: 4, Kernel: 3, Padding: 1, Groups: 4, BN: "block.dw_bn", Act: model.OpReLU6},
		{Op: model.OpConv, Name: "block.pw", Inputs: []string{"pool"}, Out: 4, Kernel: 1, Groups: 2},
		{Op: model.OpAdd, Name: "block.add", Inputs: []string{"block.dw", "block.pw"}, Act: model.OpReLU},
		{Op: model.OpConcat, Name: "block.cat", Inputs: []string{"block.add", "pool"}},
		{Op: model.OpGlobalAvgPool, Name: "gap"},
		{Op: model.OpFlatten},
		{Op: model.OpLinear, Name: "fc", Out: 3},
	}}
}

func newModel(t testing.TB, s model.Graph, seed uint64) *Model {
	t.Helper()
	m, err := NewModel(s, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// randomBatch fills the graph's input with standard normal values from
// seed and returns labels cycling through the classes.
func randomBatch(gr *Graph, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range gr.Input() {
		gr.Input()[i] = float32(r.NormFloat64())
	}
	y := make([]int, gr.Batch())
	for i := range y {
		y[i] = i % gr.model.Spec.Classes
	}
	return y
}

// TestBuiltinDAGsTrain builds resnet20 and mobilenet_v2, float and W8A8,
// runs a training step on a batch of 2 random 3x32x32 inputs and checks
// that the loss is finite, that every param has a finite gradient, that
// no layer output is NaN or Inf, and that every quantizer, those of the
// adds included, saw its tensor; then a step with BN frozen, after which
// no param's gradient is all zero.
func TestBuiltinDAGsTrain(t *testing.T) {
	for _, name := range []string{"resnet20", "mobilenet_v2"} {
		for _, quantized := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/quantized=%v", name, quantized), func(t *testing.T) {
				s, err := model.Builtin(name)
				if err != nil {
					t.Fatal(err)
				}
				m := newModel(t, s, 3)
				adds := 0
				for _, l := range s.Nodes {
					if l.Op == model.OpAdd {
						adds++
					}
				}
				if quantized {
					qc, _ := ParseBits("W8A8")
					if err := m.Quantize(qc); err != nil {
						t.Fatal(err)
					}
					n := 0
					for _, q := range m.Quantizers() {
						if strings.HasSuffix(q.Layer, "add") || strings.HasSuffix(q.Layer, "add_relu") {
							n++
						}
					}
					if n != adds || adds == 0 {
						t.Errorf("%d add quantizers for %d adds", n, adds)
					}
				}
				gr, err := m.NewGraph(2, Train)
				if err != nil {
					t.Fatal(err)
				}
				if err := gr.Run(randomBatch(gr, 4)); err != nil {
					t.Fatal(err)
				}
				if l := gr.Loss(); math.IsNaN(l) || math.IsInf(l, 0) || l <= 0 {
					t.Errorf("loss %v", l)
				}
				if where := gr.NonFinite(); where != "" {
					t.Errorf("non-finite value at %s", where)
				}
				for _, p := range m.Params() {
					if i := firstNonFinite(p.Grad); i >= 0 {
						t.Errorf("gradient of %s: element %d is %v", p.Name, i, p.Grad[i])
					}
				}
				// A batch-statistics BN removes a constant shift of its
				// input channel, so the BN biases of mobilenet_v2's 1x1
				// stages, whose shifts reach only such BNs, have a zero
				// gradient there. With BN on its running statistics
				// every param's gradient is nonzero.
				m.FreezeBN(true)
				if err := gr.Run(randomBatch(gr, 5)); err != nil {
					t.Fatal(err)
				}
				for _, p := range m.Params() {
					if !slices.ContainsFunc(p.Grad, func(g float32) bool { return g != 0 }) {
						t.Errorf("gradient of %s is zero", p.Name)
					}
				}
				if got, want := len(gr.QuantStats()), len(m.Quantizers()); got != want {
					t.Errorf("%d quantizer stats, want one per quantizer, %d", got, want)
				}
			})
		}
	}
}

// TestNewModelParamShapes checks that NewModel makes every param and BN
// buffer of every built-in model with the name and shape that
// model.Node.ParamShapes gives (SaveState writes both), that these are
// torchvision 0.14.1's state_dicts for resnet18 and mobilenet_v2
// (../model/testdata/torchvision-state-dicts.txt, written by torchvision
// itself, see model/builtin_test.go), and that a depthwise conv's weight
// is initialised with PyTorch's fan_in = C/G*K*K = 9: uniform in ±1/3,
// so that 288 draws reach past 0.3 (a fan_in of C*K*K = 288 would bound
// them by 0.059).
func TestNewModelParamShapes(t *testing.T) {
	torchvision := map[string]map[string]string{}
	f, err := os.Open("../model/testdata/torchvision-state-dicts.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			fields := strings.Fields(line)
			if torchvision[fields[0]] == nil {
				torchvision[fields[0]] = map[string]string{}
			}
			torchvision[fields[0]][fields[1]] = fields[2]
		}
	}
	shapeString := func(s []int) string {
		if len(s) == 0 {
			return "scalar"
		}
		return strings.Trim(strings.ReplaceAll(fmt.Sprint(s), " ", "x"), "[]")
	}
	for _, name := range model.BuiltinNames() {
		s, _ := model.Builtin(name)
		m := newModel(t, s, 1)
		var ck safetensors.File
		if err := m.SaveState(&ck); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for k, v := range ck.Tensors {
			got[k] = shapeString(v.Shape)
		}
		shapes, _ := s.Shapes()
		src, _ := s.Sources()
		want := map[string]string{}
		for i, l := range s.Nodes {
			in := s.Input
			if j := src[i][0]; j >= 0 {
				in = shapes[j]
			}
			for k, p := range l.ParamNames() {
				want[p] = shapeString(l.ParamShapes(in)[k])
			}
		}
		for _, w := range []map[string]string{want, torchvision[name]} {
			if w == nil {
				continue
			}
			for k, v := range w {
				if got[k] != v {
					t.Errorf("%s: tensor %s has shape %q, want %q", name, k, got[k], v)
				}
			}
			if len(got) != len(w) {
				t.Errorf("%s: %d tensors, want %d", name, len(got), len(w))
			}
		}
		if name == "mobilenet_v2" {
			w := m.Param("features.1.conv.0.0.weight")
			top := 0.0
			for _, v := range w.Data {
				top = max(top, math.Abs(float64(v)))
			}
			if !(top > 0.3 && top <= 1.0/3) {
				t.Errorf("depthwise weight %v: max |w| = %v, want in (0.3, 1/3]", w.Shape, top)
			}
		}
	}
}

// TestDAGGradFiniteDiff checks the gradient of the float small DAG's
// training loss (BN on batch statistics) with respect to every param
// element against finite differences of the loss the graph computes, step
// h = 1e-3 (gradcheck.Central), within 1e-3 (gradcheck.Close): the loss
// is float32, whose rounding (~1e-7) over the step is ~1e-4. Where the
// loss is smooth within a step the central difference measures the
// derivative to O(h^2); where a kink lies within a step (a ReLU or ReLU6
// input, a max-pool tie) it straddles the kink, but the one-sided
// difference on the other side, (L(x+h)-L(x))/h or (L(x)-L(x-h))/h,
// measures the derivative at x to O(h): so each element must match one
// of the three. Without activations and max pooling every element
// matches the central difference within 1e-4 (the kinks alone move it).
func TestDAGGradFiniteDiff(t *testing.T) {
	m := newModel(t, smallDAG(), 5)
	gr, err := m.NewGraph(2, Train)
	if err != nil {
		t.Fatal(err)
	}
	y := randomBatch(gr, 6)
	if err := gr.Run(y); err != nil {
		t.Fatal(err)
	}
	l0 := gr.Loss()
	grads := map[string][]float32{}
	for _, p := range m.Params() {
		grads[p.Name] = append([]float32(nil), p.Grad...)
	}
	const h, tol = 1e-3, 1e-3
	kinks, n := 0, 0
	for _, p := range m.Params() {
		for i, old := range p.Data {
			loss := func(x float64) float64 {
				p.Data[i] = float32(x)
				if err := gr.Run(y); err != nil {
					t.Fatal(err)
				}
				return gr.Loss()
			}
			up, down := loss(float64(old)+h), loss(float64(old)-h)
			p.Data[i] = old
			g := float64(grads[p.Name][i])
			central := gradcheck.Close(g, (up-down)/(2*h), tol)
			if central != nil && gradcheck.Close(g, (up-l0)/h, tol) != nil && gradcheck.Close(g, (l0-down)/h, tol) != nil {
				t.Errorf("gradient of %s, element %d: %v (one-sided %.7g and %.7g)", p.Name, i, central, (up-l0)/h, (l0-down)/h)
			}
			if central != nil {
				kinks++
			}
			n++
		}
	}
	t.Logf("%d of %d elements match a one-sided difference only", kinks, n)
}

// TestQuantizeDAG checks the quantizers Quantize gives the small DAG:
// the input, each conv and linear layer's weight and output quantizers
// and the add's and concat's output quantizers, in graph order; that
// per-layer overrides apply to the add and concat; that PACT learns the
// output of the add (fused ReLU) but not of the concat; and that Validate
// rejects a weight override of an add and overrides of other nodes.
func TestQuantizeDAG(t *testing.T) {
	m := newModel(t, smallDAG(), 1)
	qc, _ := ParseBits("W8A8")
	qc.Layers = map[string]LayerQuant{"block.add": {Act: &QuantSpec{Bits: 4}}, "block.cat": {Act: &QuantSpec{Bits: 6}}}
	qc.SetLearnable(LearnPACT)
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range m.Quantizers() {
		got = append(got, fmt.Sprintf("%s/%s/%s/%d/%v", q.Name, q.Layer, q.Role, q.Scheme.NumBits(), q.Learn != nil))
	}
	want := []string{
		"input_fake_quant//input/8/false",
		"features.0.weight_fake_quant/features.0/weight/8/false",
		"features.0.activation_post_process/features.0/act/8/true",
		"block.dw.weight_fake_quant/block.dw/weight/8/false",
		"block.dw.activation_post_process/block.dw/act/8/true",
		"block.pw.weight_fake_quant/block.pw/weight/8/false",
		"block.pw.activation_post_process/block.pw/act/8/false",
		"block.add.activation_post_process/block.add/act/4/true",
		"block.cat.activation_post_process/block.cat/act/6/false",
		"fc.weight_fake_quant/fc/weight/8/false",
		"fc.activation_post_process/fc/act/8/false",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("quantizers (name/layer/role/bits/learnable):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range []struct {
		layers map[string]LayerQuant
		want   string
	}{
		{map[string]LayerQuant{"block.add": {Weight: &QuantSpec{Bits: 4}}}, `layer "block.add" (add) of model dag has no weight to quantize`},
		{map[string]LayerQuant{"gap": {Act: &QuantSpec{Bits: 4}}}, `layer "gap" is not a conv, linear, add or concat node of model dag`},
	} {
		if err := (QuantConfig{Layers: c.layers}).Validate(smallDAG()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.layers, err, c.want)
		}
	}
}

// fakeExact is an Exact that checks what the graph claims: every input
// it gets must lie on the grid of the params it gets with it (the values
// FakeQuantize leaves unchanged), else it fails the run. It records each
// call by node name and writes outputs on the output grid: a conv or
// linear node's an arbitrary pattern of codes, an add's or concat's the
// fake quantization of the float sum (after the ReLU) or concatenation, a
// global average pool's that of the planes' means.
type fakeExact struct{ calls map[string]fakeCall }

type fakeCall struct {
	kind string // "weighted", "avgpool" or "join"
	inQ  []quant.Params
	xs   [][]float32
	y    []float32
}

// onGrid reports whether every value of x is on the grid of p.
func onGrid(x []float32, p quant.Params) error {
	q := make([]float32, len(x))
	quant.FakeQuantize(q, x, []int{len(x)}, p)
	for i, v := range x {
		if q[i] != v {
			return fmt.Errorf("element %d = %v is not on the grid of scale %v, zero point %d", i, v, p.Scale, p.ZeroPoint)
		}
	}
	return nil
}

func (f *fakeExact) record(kind string, n model.Node, inQ []quant.Params, xs [][]float32, y []float32) error {
	for i, x := range xs {
		if err := onGrid(x, inQ[i]); err != nil {
			return fmt.Errorf("%s input %d: %w", n.Name, i, err)
		}
	}
	c := fakeCall{kind: kind, inQ: inQ, y: y}
	for _, x := range xs {
		c.xs = append(c.xs, append([]float32(nil), x...))
	}
	f.calls[n.Name] = c
	return nil
}

func (f *fakeExact) Weighted(m *Model, n model.Node, in []int, inQ quant.Params, x, y []float32) error {
	out, _ := m.Quantizer(n.Name + ".activation_post_process").Params()
	for i := range y {
		code := out.QMin + int32(i*37)%(out.QMax-out.QMin+1)
		y[i] = float32(code-out.ZeroPoint[0]) * out.Scale[0]
	}
	return f.record("weighted", n, []quant.Params{inQ}, [][]float32{x}, y)
}

func (f *fakeExact) AvgPool(n model.Node, inQ quant.Params, x []float32, xs [4]int, y []float32) error {
	if n.Op != model.OpGlobalAvgPool || len(y) != xs[0]*xs[1] {
		return fmt.Errorf("fake AvgPool of %s %s into %d values", n.Op, n.Name, len(y))
	}
	plane := xs[2] * xs[3]
	for p := range y {
		var s float32
		for _, v := range x[p*plane : (p+1)*plane] {
			s += v
		}
		y[p] = s / float32(plane)
	}
	quant.FakeQuantize(y, y, []int{len(y)}, inQ)
	return f.record("avgpool", n, []quant.Params{inQ}, [][]float32{x}, y)
}

func (f *fakeExact) Join(n model.Node, inQ []quant.Params, outQ quant.Params, xs [][]float32, batch int, y []float32) error {
	switch n.Op {
	case model.OpAdd:
		for i := range y {
			y[i] = xs[0][i] + xs[1][i]
			if n.Act == model.OpReLU {
				y[i] = max(y[i], 0)
			}
		}
	case model.OpConcat:
		at := 0
		for s := range batch {
			for _, x := range xs {
				per := len(x) / batch
				at += copy(y[at:], x[s*per:(s+1)*per])
			}
		}
	}
	quant.FakeQuantize(y, y, []int{len(y)}, outQ)
	return f.record("join", n, inQ, xs, y)
}

// TestDAGExactGraph runs exact graphs of the quantized small DAG with
// fakeExact, which fails the run if a node's input is not on the grid the
// graph says, and checks which nodes went through the Exact with which
// input params (the conv inputs on the grid of the stem's output
// quantizer, which max pooling keeps; the concat's on the add's and the
// stem's; the classifier's on the concat's, which global average pooling
// and flatten keep), that each exact node reads what the one before it
// wrote, and that the logits are the classifier's. With the grouped 1x1
// conv's output quantizer off, that conv and the add it feeds fall back
// to the float simulation, and the concat, on the add's output grid,
// stays exact; with the add's off, the concat falls back too, and the
// pool stays exact on the concat's grid.
func TestDAGExactGraph(t *testing.T) {
	off := &QuantSpec{Off: true}
	for _, c := range []struct {
		name   string
		layers map[string]LayerQuant
		// inQ lists, for each node the Exact computes, the quantizers of
		// its inputs' grids.
		inQ map[string][]string
	}{
		{"all exact", nil, map[string][]string{
			"features.0": {"input_fake_quant"},
			"block.dw":   {"features.0"},
			"block.pw":   {"features.0"},
			"block.add":  {"block.dw", "block.pw"},
			"block.cat":  {"block.add", "features.0"},
			"gap":        {"block.cat"},
			"fc":         {"block.cat"},
		}},
		{"1x1 conv output off", map[string]LayerQuant{"block.pw": {Act: off}}, map[string][]string{
			"features.0": {"input_fake_quant"},
			"block.dw":   {"features.0"},
			"block.cat":  {"block.add", "features.0"},
			"gap":        {"block.cat"},
			"fc":         {"block.cat"},
		}},
		{"add output off", map[string]LayerQuant{"block.add": {Act: off}}, map[string][]string{
			"features.0": {"input_fake_quant"},
			"block.dw":   {"features.0"},
			"block.pw":   {"features.0"},
			"gap":        {"block.cat"},
			"fc":         {"block.cat"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newModel(t, smallDAG(), 2)
			if err := m.Quantize(QuantConfig{Layers: c.layers}); err != nil {
				t.Fatal(err)
			}
			cal, err := m.NewGraph(4, Calibrate)
			if err != nil {
				t.Fatal(err)
			}
			if err := cal.Run(randomBatch(cal, 7)); err != nil {
				t.Fatal(err)
			}
			fake := &fakeExact{calls: map[string]fakeCall{}}
			gr, err := m.NewExactGraph(4, fake)
			if err != nil {
				t.Fatal(err)
			}
			if err := gr.Run(randomBatch(gr, 8)); err != nil {
				t.Fatal(err)
			}
			for name, call := range fake.calls {
				want, ok := c.inQ[name]
				if !ok {
					t.Errorf("%s computed by the Exact (%s)", name, call.kind)
					continue
				}
				for i, q := range want {
					if q != "input_fake_quant" {
						q += ".activation_post_process"
					}
					p, _ := m.Quantizer(q).Params()
					if fmt.Sprint(call.inQ[i]) != fmt.Sprint(p) {
						t.Errorf("%s input %d: params %v, want those of %s, %v", name, i, call.inQ[i], q, p)
					}
				}
			}
			for name := range c.inQ {
				if _, ok := fake.calls[name]; !ok {
					t.Errorf("%s not computed by the Exact", name)
				}
			}
			for _, w := range []struct{ node, from string }{{"block.cat", "block.add"}, {"gap", "block.cat"}, {"fc", "gap"}} {
				a, aok := fake.calls[w.node]
				b, bok := fake.calls[w.from]
				if aok && bok {
					if err := sameBits(a.xs[0], b.y); err != nil {
						t.Errorf("%s's input is not %s's output: %v", w.node, w.from, err)
					}
				}
			}
			if err := sameBits(gr.Logits(), fake.calls["fc"].y); err != nil {
				t.Errorf("logits are not the classifier's output: %v", err)
			}
		})
	}
}

// TestStateRoundTripResNet20 saves a quantized resnet20 after a
// calibration and a training step and loads it again: every quantizer,
// the adds' output quantizers included, comes back with the same params
// and observer range, and the loaded model's eval logits equal the
// original's bit for bit.
func TestStateRoundTripResNet20(t *testing.T) {
	s, _ := model.Builtin("resnet20")
	m := newModel(t, s, 9)
	qc, _ := ParseBits("W8A8")
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []GraphKind{Calibrate, Train} {
		gr, err := m.NewGraph(2, kind)
		if err != nil {
			t.Fatal(err)
		}
		if err := gr.Run(randomBatch(gr, 10)); err != nil {
			t.Fatal(err)
		}
	}
	var f safetensors.File
	if err := m.SaveState(&f); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scale", "zero_point", "min_val", "max_val"} {
		if _, ok := f.Tensors["layer3.2.add_relu.activation_post_process."+k]; !ok {
			t.Errorf("checkpoint has no layer3.2.add_relu.activation_post_process.%s", k)
		}
	}
	c, _, err := LoadState(&f)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Quantizers()) != len(m.Quantizers()) {
		t.Fatalf("%d quantizers loaded, want %d", len(c.Quantizers()), len(m.Quantizers()))
	}
	for i, q := range m.Quantizers() {
		lq := c.Quantizers()[i]
		p, _ := q.Params()
		lp, ok := lq.Params()
		if lq.Name != q.Name || !ok || fmt.Sprint(lp) != fmt.Sprint(p) {
			t.Errorf("quantizer %d: loaded %s %v, want %s %v", i, lq.Name, lp, q.Name, p)
		}
	}
	var logits [2][]float32
	for i, mm := range []*Model{m, c} {
		gr, err := mm.NewGraph(2, Eval)
		if err != nil {
			t.Fatal(err)
		}
		if err := gr.Run(randomBatch(gr, 11)); err != nil {
			t.Fatal(err)
		}
		logits[i] = append([]float32(nil), gr.Logits()...)
	}
	if err := sameBits(logits[1], logits[0]); err != nil {
		t.Errorf("reloaded logits: %v", err)
	}
}

// TestDAGRerunMatchesFreshGraph is TestRerunMatchesFreshGraph for the
// small DAG, float and W8A8 (calibrated), training and evaluation: the
// second run of a graph, on other inputs and after a param changed, gives
// exactly what a fresh graph of the same model state gives, so the new
// ops' reused buffers (grouped and depthwise conv, padded max pooling,
// add, concat, global average pooling) hold nothing of the first run.
func TestDAGRerunMatchesFreshGraph(t *testing.T) {
	const batch = 3
	for _, quantized := range []bool{false, true} {
		for _, kind := range []GraphKind{Train, Eval} {
			t.Run(fmt.Sprintf("quantized=%v/%v", quantized, kind), func(t *testing.T) {
				m := newModel(t, smallDAG(), 12)
				if quantized {
					if err := m.Quantize(QuantConfig{}); err != nil {
						t.Fatal(err)
					}
					cal, err := m.NewGraph(batch, Calibrate)
					if err != nil {
						t.Fatal(err)
					}
					if err := cal.Run(randomBatch(cal, 13)); err != nil {
						t.Fatal(err)
					}
				}
				gr, err := m.NewGraph(batch, kind)
				if err != nil {
					t.Fatal(err)
				}
				if err := gr.Run(randomBatch(gr, 14)); err != nil {
					t.Fatal(err)
				}
				first := collect(gr)
				fresh := clone(t, m)
				for _, mm := range []*Model{m, fresh} {
					p := mm.Param("block.dw.weight")
					for i := range p.Data {
						p.Data[i] *= 0.75
					}
				}
				y := randomBatch(gr, 15)
				if err := gr.Run(y); err != nil {
					t.Fatal(err)
				}
				second := collect(gr)
				fg, err := fresh.NewGraph(batch, kind)
				if err != nil {
					t.Fatal(err)
				}
				randomBatch(fg, 15)
				if err := fg.Run(y); err != nil {
					t.Fatal(err)
				}
				if err := second.equal(collect(fg)); err != nil {
					t.Errorf("second run of a graph differs from a fresh graph's run: %v", err)
				}
				if first.equal(second) == nil {
					t.Errorf("the two runs of different data gave the same outputs")
				}
			})
		}
	}
}

// TestCaptureDAG checks that CaptureQuantInputs of the quantized small
// DAG records what the add's and the concat's output quantizers saw: the
// ReLU of the branches' sum, [N, 4, 4, 5], and the concatenation of the
// add's quantized output with the pool's, [N, 8, 4, 5], whose first
// channels of each sample are the add quantizer's output.
func TestCaptureDAG(t *testing.T) {
	m := newModel(t, smallDAG(), 16)
	if err := m.Quantize(QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	cal, err := m.NewGraph(2, Calibrate)
	if err != nil {
		t.Fatal(err)
	}
	if err := cal.Run(randomBatch(cal, 17)); err != nil {
		t.Fatal(err)
	}
	got, err := m.CaptureQuantInputs(cal.Input())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]QuantInput{}
	for _, q := range got {
		byName[q.Name] = q
	}
	add, cat := byName["block.add.activation_post_process"], byName["block.cat.activation_post_process"]
	if add.Layer != "block.add" || add.Role != RoleAct || fmt.Sprint(add.Shape) != "[2 4 4 5]" {
		t.Fatalf("add quantizer input: layer %q, role %q, shape %v", add.Layer, add.Role, add.Shape)
	}
	if cat.Layer != "block.cat" || fmt.Sprint(cat.Shape) != "[2 8 4 5]" {
		t.Fatalf("concat quantizer input: layer %q, shape %v", cat.Layer, cat.Shape)
	}
	for i, v := range add.Values {
		if v < 0 {
			t.Fatalf("add quantizer input %d = %v: the fused ReLU comes first", i, v)
		}
	}
	q := make([]float32, len(add.Values))
	quant.FakeQuantize(q, add.Values, add.Shape, add.Params)
	for s := range 2 {
		if err := sameBits(cat.Values[s*160:s*160+80], q[s*80:(s+1)*80]); err != nil {
			t.Errorf("sample %d: concat's first channels are not the add's quantized output: %v", s, err)
		}
	}
}
