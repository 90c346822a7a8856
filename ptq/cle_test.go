package ptq

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"qat/layers"
	"qat/model"
)

// cleSpec is a chain with the three kinds of equalizable pair: conv+BN ->
// grouped conv through a max pool, conv -> linear through flatten (4
// inputs per channel), linear -> linear.
const cleSpec = `{"name": "cle", "input": [2, 9, 9], "classes": 4, "layers": [
  {"type": "conv", "name": "c1", "out": 6, "kernel": 3, "padding": 1, "bn": "b1", "act": "relu"},
  {"type": "maxpool", "kernel": 2},
  {"type": "conv", "name": "c2", "out": 8, "kernel": 3, "groups": 2, "act": "relu"},
  {"type": "flatten"},
  {"type": "linear", "name": "fc1", "out": 5, "act": "relu"},
  {"type": "linear", "name": "fc2", "out": 4}
]}`

func mustModel(t *testing.T, spec string) *layers.Model {
	t.Helper()
	g, err := model.Parse([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	m, err := layers.NewModel(g, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// scramble gives every output channel of every weight its own magnitude
// (factors e^-2 to e^2) and every BatchNorm random statistics and affine
// params (gamma of either sign), so that ranges differ across channels.
func scramble(m *layers.Model, rng *rand.Rand) {
	for _, n := range m.Spec.Nodes {
		if !n.Weighted() {
			continue
		}
		w := m.Param(n.Name + ".weight")
		inner := len(w.Data) / n.Out
		for o := range n.Out {
			f := float32(math.Exp(4*rng.Float64() - 2))
			for i := range inner {
				w.Data[o*inner+i] *= f
			}
		}
		if n.BN == "" {
			continue
		}
		bn := m.BatchNorm(n.BN)
		gamma, beta := m.Param(n.BN+".weight"), m.Param(n.BN+".bias")
		for c := range n.Out {
			gamma.Data[c] = float32((0.5 + 1.5*rng.Float64()) * []float64{-1, 1}[rng.IntN(2)])
			beta.Data[c] = float32(rng.NormFloat64())
			bn.RunningMean[c] = float32(rng.NormFloat64())
			bn.RunningVar[c] = float32(0.1 + 3*rng.Float64())
		}
	}
}

// logits runs the float model's eval graph on x.
func logits(t *testing.T, m *layers.Model, x []float32, batch int) []float32 {
	t.Helper()
	gr, err := m.NewGraph(batch, layers.Eval)
	if err != nil {
		t.Fatal(err)
	}
	copy(gr.Input(), x)
	if err := gr.Run(make([]int, batch)); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(gr.Logits())
}

// rowMax is max |w| per output channel of w, [out, inner], each row o
// scaled by sf[o] (nil: 1) in float64: the test's own folding.
func rowMax(w []float32, out int, sf []float64) []float64 {
	inner := len(w) / out
	r := make([]float64, out)
	for o := range out {
		f := 1.0
		if sf != nil {
			f = sf[o]
		}
		for _, v := range w[o*inner : (o+1)*inner] {
			r[o] = math.Max(r[o], math.Abs(float64(v)*f))
		}
	}
	return r
}

// cleRanges returns, for each pair of cleSpec, the range of each output
// channel of the first layer (BN folded) and of the matching input
// channel of the second, computed from the spec's layout by hand.
func cleRanges(m *layers.Model) [3][2][]float64 {
	w := func(n string) []float32 { return m.Param(n + ".weight").Data }
	bn, gamma := m.BatchNorm("b1"), m.Param("b1.weight").Data
	sf := make([]float64, 6)
	for c := range sf {
		sf[c] = float64(gamma[c]) / math.Sqrt(float64(bn.RunningVar[c])+1e-5)
	}
	var r [3][2][]float64
	r[0][0] = rowMax(w("c1"), 6, sf)
	// c2: [8, 3, 3, 3], 2 groups: input channel c is local channel c%3 of
	// output channels 4*(c/3) .. 4*(c/3)+3.
	r[0][1] = make([]float64, 6)
	for c := range 6 {
		for o := 4 * (c / 3); o < 4*(c/3)+4; o++ {
			for k := range 9 {
				r[0][1][c] = math.Max(r[0][1][c], math.Abs(float64(w("c2")[o*27+(c%3)*9+k])))
			}
		}
	}
	r[1][0] = rowMax(w("c2"), 8, nil)
	// fc1: [5, 32], channel c of c2's [8, 2, 2] output is columns 4c..4c+3.
	r[1][1] = make([]float64, 8)
	r[2][0] = rowMax(w("fc1"), 5, nil)
	r[2][1] = make([]float64, 5)
	for o := range 5 {
		for j := range 32 {
			r[1][1][j/4] = math.Max(r[1][1][j/4], math.Abs(float64(w("fc1")[o*32+j])))
		}
	}
	for o := range 4 {
		for j := range 5 {
			r[2][1][j] = math.Max(r[2][1][j], math.Abs(float64(w("fc2")[o*5+j])))
		}
	}
	return r
}

// TestEqualizeKeepsFunction checks CLE's two properties on cleSpec with
// scrambled channel magnitudes: the float model's logits on random inputs
// are unchanged to 1e-5 of their largest magnitude, and each pair's
// per-channel ranges (computed here from the layout) become equal, to the
// 1e-6 convergence tolerance of the passes, where they differed by large
// factors before.
func TestEqualizeKeepsFunction(t *testing.T) {
	m := mustModel(t, cleSpec)
	rng := rand.New(rand.NewPCG(3, 4))
	scramble(m, rng)
	const batch = 16
	x := make([]float32, batch*2*9*9)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	before := logits(t, m, x, batch)
	r0 := cleRanges(m)
	rep, err := Equalize(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"c1->c2", "c2->fc1", "fc1->fc2"}; !slices.Equal(rep.Pairs, want) {
		t.Errorf("pairs %v, want %v", rep.Pairs, want)
	}
	if len(rep.Skipped) != 1 || !strings.HasPrefix(rep.Skipped[0], "fc2: ") {
		t.Errorf("skipped %q, want fc2 only", rep.Skipped)
	}
	if rep.MaxStep >= cleTol || rep.Passes < 2 {
		t.Errorf("%d passes, last max step %g: want convergence below %g in more than one pass", rep.Passes, rep.MaxStep, cleTol)
	}
	after := logits(t, m, x, batch)
	var big, diff float64
	for i := range before {
		big = math.Max(big, math.Abs(float64(before[i])))
		diff = math.Max(diff, math.Abs(float64(after[i]-before[i])))
	}
	if diff > 1e-5*big {
		t.Errorf("logits changed by %g, max |logit| %g: want at most 1e-5 of it", diff, big)
	}
	r := cleRanges(m)
	for p := range r {
		ratio := 1.0
		for c := range r[p][0] {
			a, b := r[p][0][c], r[p][1][c]
			if math.Abs(a-b) > 1e-5*math.Max(a, b) {
				t.Errorf("pair %d channel %d: ranges %g and %g, want equal", p, c, a, b)
			}
			ratio = math.Max(ratio, math.Max(r0[p][0][c]/r0[p][1][c], r0[p][1][c]/r0[p][0][c]))
		}
		if ratio < 2 {
			t.Errorf("pair %d: ranges differed by at most %.2gx before: the test does not exercise CLE", p, ratio)
		}
	}
}

// TestEqualizeSkips checks which layers CLE refuses and why: the residual
// graph has one pair (block.conv1 -> block.conv2); the others feed a
// branch, an add, or go through relu6, or are the output.
func TestEqualizeSkips(t *testing.T) {
	b, err := os.ReadFile("../model/testdata/residual-mnist.json")
	if err != nil {
		t.Fatal(err)
	}
	m := mustModel(t, string(b))
	rep, err := Equalize(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"block.conv1->block.conv2"}; !slices.Equal(rep.Pairs, want) {
		t.Errorf("pairs %v, want %v", rep.Pairs, want)
	}
	want := []string{
		"stem: node 1 (maxpool pool) feeds 2 nodes",
		"block.conv2: node 4 (add block.add_relu) is not positively homogeneous per channel",
		"dw: fused relu6 is not positively homogeneous",
		"fc: its output is the model's",
	}
	if !slices.Equal(rep.Skipped, want) {
		t.Errorf("skipped\n%q\nwant\n%q", rep.Skipped, want)
	}

	// A model without any pair is an error naming why.
	m = mustModel(t, `{"name": "none", "input": [1, 4, 4], "classes": 2, "layers": [
	  {"type": "conv", "name": "c", "out": 2, "kernel": 3, "act": "relu6"},
	  {"type": "flatten"},
	  {"type": "linear", "name": "fc", "out": 2}]}`)
	if _, err := Equalize(m); !errors.Is(err, ErrNoPair) || !strings.Contains(err.Error(), "relu6") {
		t.Errorf("no pair: got %v, want ErrNoPair naming relu6", err)
	}

	// Unfolded BatchNorm: scaling through it is not exact.
	m = mustModel(t, cleSpec)
	if err := m.Quantize(layers.QuantConfig{NoFoldBN: true}); err != nil {
		t.Fatal(err)
	}
	rep, err = Equalize(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pairs) != 2 || !strings.Contains(rep.Skipped[0], "c1: its BatchNorm is not folded") {
		t.Errorf("no_fold_bn: pairs %v, skipped %q: want c1 skipped", rep.Pairs, rep.Skipped)
	}
}
