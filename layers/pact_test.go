package layers

import (
	"slices"
	"strings"
	"testing"

	"qat/model"
)

func TestPACTConfig(t *testing.T) {
	lenet, err := model.Builtin("lenet")
	if err != nil {
		t.Fatal(err)
	}
	pact := QuantSpec{Learnable: LearnPACT}
	for _, c := range []struct {
		name string
		qc   QuantConfig
		want string
	}{
		{"weight", QuantConfig{Weight: pact}, "weight: pact learns activation clipping thresholds"},
		{"layer weight", QuantConfig{Layers: map[string]LayerQuant{"c2": {Weight: &pact}}}, "layer c2 weight: pact learns"},
		{"signed", QuantConfig{Act: QuantSpec{Learnable: LearnPACT, Signed: true}}, "act: pact quantizes to unsigned codes"},
		{"symmetric", QuantConfig{Act: QuantSpec{Learnable: LearnPACT, Symmetric: true}}, "act: pact quantizes to unsigned codes"},
		{"affine input", QuantConfig{Input: &QuantSpec{Learnable: LearnPACT, Affine: true}}, "input: pact quantizes to unsigned codes"},
		{"decay without pact", QuantConfig{Act: QuantSpec{Learnable: LearnLSQ, AlphaDecay: 1e-4}}, "act: alpha_decay 0.0001 applies to pact quantizers only"},
		{"negative decay", QuantConfig{Act: QuantSpec{Learnable: LearnPACT, AlphaDecay: -1}}, "act: alpha_decay -1 is not a finite number >= 0"},
		{"unknown kind", QuantConfig{Act: QuantSpec{Learnable: "dorefa"}}, `learnable "dorefa": want lsq, lsq+ or pact`},
	} {
		if err := c.qc.Validate(lenet); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	qc, err := ParseQuantConfig([]byte(`{"weight":{"bits":4},"act":{"bits":4,"learnable":"pact","alpha_decay":0.0002}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := qc.Validate(lenet); err != nil {
		t.Fatal(err)
	}

	// SetLearnable makes activations and the input pact and leaves the
	// weights observer-driven.
	qc, _ = ParseBits("W4A4")
	qc.Weight.Learnable = LearnLSQ
	qc.Input = &QuantSpec{Bits: 8}
	qc.Layers = map[string]LayerQuant{"fc2": {Weight: &QuantSpec{Bits: 8}, Act: &QuantSpec{Bits: 8}}}
	qc.SetLearnable(LearnPACT)
	if err := qc.Validate(lenet); err != nil {
		t.Fatal(err)
	}
	if qc.Weight.Learnable != "" || qc.WeightSpec("fc2").Learnable != "" || qc.Act.Learnable != LearnPACT ||
		qc.InputSpec().Learnable != LearnPACT || qc.ActSpec("fc2").Learnable != LearnPACT {
		t.Errorf("SetLearnable(pact) gave %+v", qc)
	}
	// PACT learns only after a fused ReLU: not on the input nor on the
	// logits, whose values can be negative.
	m, err := NewModel(lenet, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	var learn []string
	for _, q := range m.Quantizers() {
		if q.Learn != nil {
			learn = append(learn, q.Name)
			if c := q.Learn.Config(); !c.PACT || c.QMin != 0 || c.PerChannel || c.LearnZeroPoint {
				t.Errorf("%s: learnable config %+v", q.Name, c)
			}
		}
	}
	want := []string{"c1.activation_post_process", "c2.activation_post_process", "fc1.activation_post_process"}
	if !slices.Equal(learn, want) {
		t.Errorf("PACT quantizers %v, want %v", learn, want)
	}
}

// TestPACTFineTune calibrates a LeNet with PACT activations, fine-tunes it
// a few SGD steps, and checks that the clipping thresholds start at the
// observed maxima and move, and that a checkpoint restores them (deploy's
// TestPACTInt8MatchesExactEval checks its int8 export).
func TestPACTFineTune(t *testing.T) {
	m := newLeNet(t)
	qc, _ := ParseBits("W4A4")
	qc.SetLearnable(LearnPACT)
	qc.Act.AlphaDecay = 1e-3
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	const batch = 32
	cal, err := m.NewGraph(batch, Calibrate)
	if err != nil {
		t.Fatal(err)
	}
	y := fill(t, cal)
	if err := cal.Run(y); err != nil {
		t.Fatal(err)
	}
	n, err := m.InitLearnable()
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("InitLearnable started %d quantizers, want 3", n)
	}
	var pact []*Quantizer
	start := map[string]float32{}
	for _, q := range m.Quantizers() {
		if q.Learn == nil {
			continue
		}
		pact = append(pact, q)
		_, hi := q.FQ.Observer().(rangeObserver).Range()
		alpha := q.Scale.Data[0] * 15
		if d := alpha - hi[0]; d > 1e-6*hi[0] || -d > 1e-6*hi[0] || q.ZeroPoint.Data[0] != 0 {
			t.Errorf("%s: initial alpha %g zero point %g, want the observed maximum %g and 0", q.Name, alpha, q.ZeroPoint.Data[0], hi[0])
		}
		start[q.Name] = q.Scale.Data[0]
		if ps := m.Params(); !slices.Contains(ps, q.Scale) || slices.Contains(ps, q.ZeroPoint) {
			t.Errorf("%s: the scale should train and the zero point not", q.Name)
		}
	}

	tr, err := m.NewGraph(batch, Train)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, tr)
	const lr = 0.02
	for range 5 {
		if err := tr.Run(y); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Params() {
			for i, g := range p.Grad {
				p.Data[i] -= lr * g
			}
		}
	}
	for _, q := range pact {
		if q.Scale.Data[0] == start[q.Name] {
			t.Errorf("%s: alpha did not move from %g", q.Name, start[q.Name]*15)
		}
		p, ok := q.Params()
		if !ok || p.ZeroPoint[0] != 0 || p.QMin != 0 || p.QMax != 15 || p.Scale[0] != q.Scale.Data[0] {
			t.Errorf("%s: params %+v after training", q.Name, p)
		}
	}

	ev, err := m.NewGraph(batch, Eval)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, ev)
	if err := ev.Run(y); err != nil {
		t.Fatal(err)
	}
	logits := append([]float32(nil), ev.Logits()...)

	c := clone(t, m)
	cev, err := c.NewGraph(batch, Eval)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, cev)
	if err := cev.Run(y); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cev.Logits(), logits) {
		t.Error("reloaded model computes other logits")
	}
	for _, q := range pact {
		cq := c.Quantizer(q.Name)
		if !cq.Learning || !cq.Learn.Config().PACT || cq.Learn.Config().AlphaDecay != 1e-3 || cq.Scale.Data[0] != q.Scale.Data[0] {
			t.Errorf("%s: reloaded as %+v", q.Name, cq)
		}
	}
}
