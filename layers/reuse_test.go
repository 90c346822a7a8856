package layers

import (
	"fmt"
	"math"
	"testing"

	"qat/data"
	"qat/model"
)

// runOutputs is what a caller reads after a run: loss, logits, every
// param's gradient, the quantizer stats and BN's running statistics,
// copied.
type runOutputs struct {
	loss   float64
	logits []float32
	grads  [][]float32
	stats  []QuantStat
	bn     [][]float32
}

func collect(gr *Graph) runOutputs {
	o := runOutputs{loss: gr.Loss(), logits: append([]float32(nil), gr.Logits()...)}
	if gr.Kind() == Train {
		for _, p := range gr.model.Params() {
			o.grads = append(o.grads, append([]float32(nil), p.Grad...))
		}
	}
	o.stats = gr.QuantStats()
	for _, name := range gr.model.bnNames() {
		bn := gr.model.BatchNorm(name)
		o.bn = append(o.bn, append([]float32(nil), bn.RunningMean...), append([]float32(nil), bn.RunningVar...))
	}
	return o
}

func sameBits(a, b []float32) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d values, want %d", len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return fmt.Errorf("element %d = %v, want %v", i, a[i], b[i])
		}
	}
	return nil
}

func (o runOutputs) equal(want runOutputs) error {
	if math.Float64bits(o.loss) != math.Float64bits(want.loss) {
		return fmt.Errorf("loss %v, want %v", o.loss, want.loss)
	}
	if err := sameBits(o.logits, want.logits); err != nil {
		return fmt.Errorf("logits: %w", err)
	}
	if len(o.grads) != len(want.grads) {
		return fmt.Errorf("%d gradients, want %d", len(o.grads), len(want.grads))
	}
	for i := range o.grads {
		if err := sameBits(o.grads[i], want.grads[i]); err != nil {
			return fmt.Errorf("gradient %d: %w", i, err)
		}
	}
	if len(o.stats) != len(want.stats) {
		return fmt.Errorf("%d quantizer stats, want %d", len(o.stats), len(want.stats))
	}
	for i, s := range o.stats {
		w := want.stats[i]
		if err := sameBits(s.Scale, w.Scale); err != nil {
			return fmt.Errorf("quantizer %s scale: %w", s.Name, err)
		}
		if fmt.Sprint(s.ZeroPoint) != fmt.Sprint(w.ZeroPoint) || s.MSE != w.MSE || s.MaxAbs != w.MaxAbs || s.Clipped != w.Clipped {
			return fmt.Errorf("quantizer %s: stats %+v, want %+v", s.Name, s, w)
		}
	}
	for i := range o.bn {
		if err := sameBits(o.bn[i], want.bn[i]); err != nil {
			return fmt.Errorf("BN statistics %d: %w", i, err)
		}
	}
	return nil
}

// Ops keep their outputs and scratch between runs and overwrite them:
// a graph's second run on other data must give exactly what a fresh
// graph of the same model state gives, in training (both BN modes,
// observing and frozen quantizers, learnable ones) and evaluation.
func TestRerunMatchesFreshGraph(t *testing.T) {
	ds, err := data.LoadEmbedded("train")
	if err != nil {
		t.Fatal(err)
	}
	const batch = 16
	fillBatch := func(gr *Graph, first int) []int {
		idx := make([]int, gr.Batch())
		for i := range idx {
			idx[i] = first + 3*i
		}
		y := make([]int, len(idx))
		ds.Fill(gr.Input(), y, idx, model.Norm{Mean: data.MNISTMean, Std: data.MNISTStd})
		return y
	}
	cases := []struct {
		name   string
		model  string
		qc     *QuantConfig
		learn  bool
		freeze bool
	}{
		{name: "lenet float", model: "lenet"},
		{name: "lenet qat", model: "lenet", qc: &QuantConfig{}},
		{name: "lenet qat frozen", model: "lenet", qc: &QuantConfig{}, freeze: true},
		{name: "lenet qat unfolded", model: "lenet", qc: &QuantConfig{NoFoldBN: true}},
		{name: "lenet lsq", model: "lenet", qc: &QuantConfig{Weight: QuantSpec{Learnable: LearnLSQ}, Act: QuantSpec{Learnable: LearnLSQPlus}}, learn: true},
		{name: "mlp float", model: "mlp"},
		{name: "mlp qat", model: "mlp", qc: &QuantConfig{}},
	}
	for _, c := range cases {
		for _, kind := range []GraphKind{Train, Eval} {
			t.Run(c.name+"/"+kind.String(), func(t *testing.T) {
				s, err := model.Builtin(c.model)
				if err != nil {
					t.Fatal(err)
				}
				m, err := NewModel(s, 3)
				if err != nil {
					t.Fatal(err)
				}
				if c.qc != nil {
					if err := m.Quantize(*c.qc); err != nil {
						t.Fatal(err)
					}
					cal, err := m.NewGraph(batch, Calibrate)
					if err != nil {
						t.Fatal(err)
					}
					if err := cal.Run(fillBatch(cal, 500)); err != nil {
						t.Fatal(err)
					}
				}
				if c.learn {
					if _, err := m.InitLearnable(); err != nil {
						t.Fatal(err)
					}
				}
				if c.freeze {
					m.FreezeBN(true)
					m.FreezeObservers(true)
				}
				gr, err := m.NewGraph(batch, kind)
				if err != nil {
					t.Fatal(err)
				}
				if err := gr.Run(fillBatch(gr, 0)); err != nil {
					t.Fatal(err)
				}
				first := collect(gr)
				fresh := clone(t, m)
				// The second run: other images, and a param changed as an
				// optimizer step would change it.
				for _, mm := range []*Model{m, fresh} {
					p := mm.Params()[0]
					for i := range p.Data {
						p.Data[i] *= 0.75
					}
				}
				y := fillBatch(gr, 1)
				if err := gr.Run(y); err != nil {
					t.Fatal(err)
				}
				second := collect(gr)
				fg, err := fresh.NewGraph(batch, kind)
				if err != nil {
					t.Fatal(err)
				}
				fillBatch(fg, 1)
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
