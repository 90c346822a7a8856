package ptq

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"qat/deploy"
	"qat/internal/gradcheck"
	"qat/layers"
	"qat/model"
	"qat/qmodel"
	"qat/quant"
	"qat/safetensors"
	"qat/train"
)

// layerData is a linear layer's calibration data for the AdaRound tests:
// float weights w [out, n] with 4-bit symmetric per-channel params p from
// their ranges (as the weight observer gives), rows x of the float
// model's input and xq = x plus noise of the size of an 8-bit grid step
// of the quantized model's, [rows, n].
type layerData struct {
	out, n, rows int
	w            []float32
	p            quant.Params
	x, xq        []float32
}

func newLayerData(out, n, rows int, seed uint64) layerData {
	rng := rand.New(rand.NewPCG(seed, 2))
	d := layerData{out: out, n: n, rows: rows, w: make([]float32, out*n), x: make([]float32, rows*n), xq: make([]float32, rows*n)}
	for i := range d.w {
		d.w[i] = float32(rng.NormFloat64())
	}
	for i := range d.x {
		d.x[i] = float32(rng.NormFloat64() + 0.5)
		d.xq[i] = d.x[i] + float32(0.02*rng.NormFloat64())
	}
	lo, hi := make([]float32, out), make([]float32, out)
	for o := range out {
		for _, v := range d.w[o*n : (o+1)*n] {
			lo[o], hi[o] = min(lo[o], v), max(hi[o], v)
		}
	}
	d.p = quant.ParamsFromRanges(quant.Scheme{Bits: 4, Signed: true, Symmetric: true, PerChannel: true}, lo, hi)
	return d
}

// problem builds the layer's AdaRound problem the way Calibrate does: the
// statistics of its rows (stats.add), then newRoundProblem.
func (d layerData) problem() *roundProblem {
	l := &layer{node: model.Node{Op: model.OpLinear}, out: d.out, groups: 1, inner: d.n}
	st := newStats(l, true)
	st.add(l, d.xq, d.x, d.rows)
	return newRoundProblem(d.w, d.n, d.p, 0, st.g[0], st.e[0], st.f[0], st.rows)
}

// refAdaRound is a float64 reference of AdaRound on the rows themselves
// (no second moments): the same initialisation (h(V) = the fractional
// part of w*float32(1/s)), schedule and Adam steps as roundProblem.solve,
// the reconstruction gradient summed over the rows,
// dL/dw~_oj = -2/R sum_r (w_o.x_r - w~_o.xq_r) xq_rj. It returns the hard
// codes and V.
func refAdaRound(d layerData, iters int) ([]int32, []float64) {
	k := d.out * d.n
	base, v := make([]float64, k), make([]float64, k)
	for i := range k {
		s, _ := channelParams(d.p, i/d.n)
		t := float64(d.w[i] * (1 / s))
		base[i] = math.Floor(t)
		p := (t - base[i] + 0.1) / 1.2
		v[i] = math.Log(p / (1 - p))
	}
	soft := func(v float64) (h, dh float64) {
		sig := 1 / (1 + math.Exp(-v))
		h = 1.2*sig - 0.1
		if h <= 0 || h >= 1 {
			return math.Min(math.Max(h, 0), 1), 0
		}
		return h, 1.2 * sig * (1 - sig)
	}
	m1, m2, g := make([]float64, k), make([]float64, k), make([]float64, k)
	wt, hs, dhs := make([]float64, k), make([]float64, k), make([]float64, k)
	in := make([]bool, k)
	lo, hi := float64(d.p.QMin), float64(d.p.QMax)
	for t := range iters {
		for i := range k {
			s, z := channelParams(d.p, i/d.n)
			hs[i], dhs[i] = soft(v[i])
			q := base[i] + float64(z) + hs[i]
			in[i] = q >= lo && q <= hi
			wt[i] = float64(s) * (math.Min(math.Max(q, lo), hi) - float64(z))
		}
		clear(g)
		for r := range d.rows {
			for o := range d.out {
				var res float64
				for j := range d.n {
					res += float64(d.w[o*d.n+j])*float64(d.x[r*d.n+j]) - wt[o*d.n+j]*float64(d.xq[r*d.n+j])
				}
				for j := range d.n {
					g[o*d.n+j] -= 2 * res * float64(d.xq[r*d.n+j]) / float64(d.rows)
				}
			}
		}
		start := 0.2 * float64(iters)
		for i := range k {
			s, _ := channelParams(d.p, i/d.n)
			dh := 0.0
			if in[i] {
				dh = g[i] * float64(s)
			}
			if float64(t) >= start {
				beta := 2 + 18*math.Max(0, 1-(float64(t)-start)/(float64(iters)-start))
				u := 2*hs[i] - 1
				if u != 0 {
					dh -= 0.01 * beta * math.Pow(math.Abs(u), beta-1) * 2 * math.Copysign(1, u)
				}
			}
			grad := dh * dhs[i]
			m1[i] = 0.9*m1[i] + 0.1*grad
			m2[i] = 0.999*m2[i] + 0.001*grad*grad
			bc1, bc2 := 1-math.Pow(0.9, float64(t+1)), 1-math.Pow(0.999, float64(t+1))
			v[i] -= 1e-3 / bc1 * m1[i] / (math.Sqrt(m2[i])/math.Sqrt(bc2) + 1e-8)
		}
	}
	codes := make([]int32, k)
	for i := range k {
		_, z := channelParams(d.p, i/d.n)
		c := base[i] + float64(z)
		if h, _ := soft(v[i]); h >= 0.5 {
			c++
		}
		codes[i] = int32(math.Min(math.Max(c, lo), hi))
	}
	return codes, v
}

// TestAdaRoundMatchesReference runs AdaRound on a small layer (4 output
// channels of 6 weights, 64 rows) and the float64 reference on the rows:
// the same codes, V to 1e-4 (the GEMM of the second moments is float32),
// with every final V that matters well away from the rounding threshold 0
// so that the agreement is not luck, some codes other than round-to-nearest's, and a
// reconstruction error below round-to-nearest's.
func TestAdaRoundMatchesReference(t *testing.T) {
	d := newLayerData(4, 6, 64, 11)
	const iters = 3000
	pr := d.problem()
	codes, v := pr.solve(iters, 1)
	want, wantV := refAdaRound(d, iters)
	if !reflect.DeepEqual(codes, want) {
		t.Errorf("codes\n%v\nwant\n%v", codes, want)
	}
	for i := range v {
		if math.Abs(v[i]-wantV[i]) > 1e-4*math.Max(1, math.Abs(wantV[i])) {
			t.Errorf("V[%d] = %v, want %v", i, v[i], wantV[i])
		}
		// A weight at the top of the range, floor(w/s) = qmax, has the code
		// qmax either way and no gradient: its V stays where it started.
		s, _ := channelParams(d.p, i/d.n)
		if top := math.Floor(float64(d.w[i]*(1/s))) >= float64(d.p.QMax); !top && math.Abs(wantV[i]) < 0.05 {
			t.Errorf("V[%d] = %v ends near the threshold: the comparison is fragile", i, wantV[i])
		}
	}
	rtn := make([]int32, len(d.w))
	quant.Quantize(rtn, d.w, []int{d.out, d.n}, d.p)
	flipped := 0
	for i := range rtn {
		if rtn[i] != codes[i] {
			flipped++
		}
	}
	if ada, near := pr.recon(float64s(codes)), pr.recon(float64s(rtn)); flipped == 0 || !(ada < near) {
		t.Errorf("%d codes differ from round-to-nearest; error %g, round-to-nearest %g: want some and lower", flipped, ada, near)
	}
}

// TestAdaRoundRecon checks the reconstruction error from second moments
// against the mean over rows of the squared output error summed over
// channels, computed on the rows in float64, for random real codes.
func TestAdaRoundRecon(t *testing.T) {
	d := newLayerData(3, 5, 40, 12)
	pr := d.problem()
	rng := rand.New(rand.NewPCG(1, 1))
	q := make([]float64, len(d.w))
	for i := range q {
		q[i] = 16*rng.Float64() - 8
	}
	var want float64
	for r := range d.rows {
		for o := range d.out {
			s, _ := channelParams(d.p, o)
			var res float64
			for j := range d.n {
				res += float64(d.w[o*d.n+j])*float64(d.x[r*d.n+j]) - float64(s)*q[o*d.n+j]*float64(d.xq[r*d.n+j])
			}
			want += res * res / float64(d.rows)
		}
	}
	if err := gradcheck.Close(pr.recon(q), want, 1e-5); err != nil {
		t.Error(err)
	}
}

// TestAdaRoundGradient checks roundProblem.gradient against central
// differences of the soft objective, recon at clamp(floor(w/s) + z +
// h(V)) plus lambda*sum(1 - |2h-1|^beta), during the warm-up (no
// regulariser) and at two betas after it. V is drawn in (-2, 2), away
// from the clipping of h.
func TestAdaRoundGradient(t *testing.T) {
	d := newLayerData(3, 5, 40, 13)
	pr := d.problem()
	base, _ := pr.base()
	rng := rand.New(rand.NewPCG(2, 2))
	v := make([]float64, len(d.w))
	for i := range v {
		v[i] = 4*rng.Float64() - 2
	}
	const iters = 100
	for _, step := range []int{5, 20, 80} {
		objective := func() float64 {
			q := make([]float64, len(v))
			var reg float64
			for i := range v {
				h, _ := rectified(v[i])
				q[i] = math.Min(math.Max(float64(base[i])+float64(pr.zp[i/pr.n])+h, float64(pr.qmin)), float64(pr.qmax))
				if beta, on := betaAt(step, iters); on {
					reg += 1 - math.Pow(math.Abs(2*h-1), beta)
				}
			}
			return pr.recon(q) + lambda*reg
		}
		grad := make([]float64, len(v))
		pr.gradient(grad, v, base, step, iters, pr.newScratch(), 1)
		fd := gradcheck.Partials(objective, 1e-5, v)[0]
		got := make([]float32, len(grad))
		for i, g := range grad {
			got[i] = float32(g)
		}
		if err := gradcheck.Normwise(got, fd, 1e-4); err != nil {
			t.Errorf("step %d of %d: %v", step, iters, err)
		}
	}
}

// TestAdaRoundExport calibrates a conv+BN+ReLU -> linear model at W3A8
// with AdaRound and checks that the learned codes are what the int8
// export freezes: every exported code is the floor or the ceiling of the
// original folded weight over its scale, as many differ from
// round-to-nearest as the report says (some do), the export equals
// quant's quantization of the stored folded weights, and a checkpoint
// round trip exports the same model. The learned error is below
// round-to-nearest's in every layer.
func TestAdaRoundExport(t *testing.T) {
	m := mustModel(t, `{"name": "adaround", "input": [1, 6, 6], "classes": 3, "layers": [
	  {"type": "conv", "name": "c", "out": 4, "kernel": 3, "bn": "bn", "act": "relu"},
	  {"type": "flatten"},
	  {"type": "linear", "name": "fc", "out": 3}]}`)
	scramble(m, rand.New(rand.NewPCG(5, 5)))
	ref, err := floatCopy(m)
	if err != nil {
		t.Fatal(err)
	}
	qc := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 3}, Act: layers.QuantSpec{Observer: quant.KindMinMax},
		PTQ: &layers.PTQConfig{AdaRound: &layers.AdaRoundConfig{Iters: 500}}}
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	ds := randomData(32, 1, 6, 6, 3, 4)
	rep, err := Calibrate(m, ds, train.CalibrateConfig{Batches: 2, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	qm, err := deploy.Freeze(m, model.Norm{}, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	fls, err := weightLayers(ref, true)
	if err != nil {
		t.Fatal(err)
	}
	qls, err := weightLayers(m, true)
	if err != nil {
		t.Fatal(err)
	}
	for k, op := range []qmodel.Op{qm.Ops[0], qm.Ops[2]} {
		lr := rep.Layers[k]
		p := params(t, m, lr.Name+".weight_fake_quant")
		orig, stored := fls[k].folded(), qls[k].folded()
		rtn, again := make([]int32, len(orig)), make([]int32, len(orig))
		quant.Quantize(rtn, orig, []int{fls[k].out, fls[k].inner}, p)
		quant.Quantize(again, stored, []int{fls[k].out, fls[k].inner}, p)
		flipped := 0
		for i, c := range op.Weight {
			s, _ := channelParams(p, i/fls[k].inner)
			f := math.Floor(float64(orig[i] * (1 / s)))
			if int32(c) != again[i] || (float64(c) != f && float64(c) != f+1) {
				t.Fatalf("%s weight %d: exported code %d, stored weights give %d, original %v/%v = %v", lr.Name, i, c, again[i], orig[i], s, orig[i]/s)
			}
			if int32(c) != rtn[i] {
				flipped++
			}
		}
		if flipped != lr.Flipped || flipped == 0 || lr.Codes != len(op.Weight) {
			t.Errorf("%s: %d codes differ from round-to-nearest, report %d of %d: want the same, above 0", lr.Name, flipped, lr.Flipped, lr.Codes)
		}
		if !(lr.AdaRoundError < lr.RoundToNearestError) {
			t.Errorf("%s: adaround error %g, round-to-nearest %g", lr.Name, lr.AdaRoundError, lr.RoundToNearestError)
		}
	}
	var f safetensors.File
	if err := m.SaveState(&f); err != nil {
		t.Fatal(err)
	}
	back, _, err := layers.LoadState(&f)
	if err != nil {
		t.Fatal(err)
	}
	qm2, err := deploy.Freeze(back, model.Norm{}, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(qm, qm2) {
		t.Error("the reloaded checkpoint exports another model")
	}
}
