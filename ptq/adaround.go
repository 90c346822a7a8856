package ptq

import (
	"fmt"
	"math"

	"qat/internal/gemm"
	"qat/layers"
	"qat/quant"
)

// AdaRound's constants (Nagel et al. 2020): the rectified sigmoid's
// stretch, the regulariser's weight and its beta annealed linearly from
// 20 to 2 after a warm-up of the first 20% of the steps without the
// regulariser, and PyTorch's default Adam.
const (
	zeta, gamma    = 1.1, -0.1
	lambda         = 0.01
	betaStart      = 20.0
	betaEnd        = 2.0
	warmup         = 0.2
	adamLR         = 1e-3
	adamB1, adamB2 = 0.9, 0.999
	adamEps        = 1e-8
)

// roundProblem is AdaRound's problem on the rows of one group of a layer:
// choose codes q = clamp(floor(w/s) + z + h, qmin, qmax) with h in {0, 1}
// per weight minimising the reconstruction error
//
//	L = mean over rows r of sum over output channels o of (w_o.x_r - w~_o.xq_r)^2
//	  = sum_o  D_o G D_o^T + 2 D_o.B_o + C_o
//
// where w~ = s*(q - z), D = w~ - w, G = sum xq xq^T / R, B_o = E w_o / R
// with E = sum xq d^T, C_o = w_o F w_o^T / R with F = sum d d^T, d = xq - x,
// R rows. Row o of every slice is output channel o of the group.
type roundProblem struct {
	out, n     int
	w          []float32 // [out, n] float weights
	scale      []float32 // [out]
	zp         []int32   // [out]
	qmin, qmax int32
	g          []float64 // [n, n]
	b          []float64 // [out, n]
	c          []float64 // [out]
}

// newRoundProblem returns the problem of the float weights w, [out, n]
// rows for output channels first, first+1, ... of params p, with sums g =
// sum xq xq^T, e = sum xq d^T and f = sum d d^T ([n, n]) over rows rows.
func newRoundProblem(w []float32, n int, p quant.Params, first int, g, e, f []float64, rows int) *roundProblem {
	out, r := len(w)/n, float64(rows)
	pr := &roundProblem{out: out, n: n, w: w, qmin: p.QMin, qmax: p.QMax,
		scale: make([]float32, out), zp: make([]int32, out),
		g: make([]float64, n*n), b: make([]float64, out*n), c: make([]float64, out)}
	for i, x := range g {
		pr.g[i] = x / r
	}
	for o := range out {
		pr.scale[o], pr.zp[o] = channelParams(p, first+o)
		wo := w[o*n : (o+1)*n]
		for i := range n {
			var ew, fw float64
			for j := range n {
				ew += e[i*n+j] * float64(wo[j])
				fw += f[i*n+j] * float64(wo[j])
			}
			pr.b[o*n+i] = ew / r
			pr.c[o] += float64(wo[i]) * fw / r
		}
	}
	return pr
}

// base returns floor(w*float32(1/s)) per weight, computed as quant
// computes the product that it rounds, and the fractional part.
func (p *roundProblem) base() (base []int32, frac []float64) {
	base, frac = make([]int32, len(p.w)), make([]float64, len(p.w))
	for o := range p.out {
		inv := 1 / p.scale[o]
		for j := range p.n {
			i := o*p.n + j
			t := float64(p.w[i] * inv)
			f := math.Floor(t)
			base[i], frac[i] = int32(f), t-f
		}
	}
	return base, frac
}

// recon returns L for code values q (any reals: the hard codes, or the
// soft ones of a V), in float64.
func (p *roundProblem) recon(q []float64) float64 {
	d := make([]float64, p.n)
	var sum float64
	for o := range p.out {
		s, z := float64(p.scale[o]), float64(p.zp[o])
		for j := range p.n {
			i := o*p.n + j
			d[j] = s*(q[i]-z) - float64(p.w[i])
		}
		l := p.c[o]
		for j := range p.n {
			var gd float64
			for k := range p.n {
				gd += p.g[j*p.n+k] * d[k]
			}
			l += d[j]*gd + 2*d[j]*p.b[o*p.n+j]
		}
		sum += l
	}
	return sum
}

// saturation is the |V| beyond which h(V) is clipped to 0 or 1:
// sigmoid(V)*(zeta-gamma)+gamma reaches 1 at V = ln((1-gamma)/(zeta-1))
// and 0 at its negative (ln 11 for zeta = 1.1, gamma = -0.1).
var saturation = math.Log((1 - gamma) / (zeta - 1))

// rectified is AdaRound's h(V) = clip(sigmoid(V)*(zeta-gamma)+gamma, 0, 1)
// and its derivative (0 where clipped). Beyond the saturation it needs no
// exponential.
func rectified(v float64) (h, dh float64) {
	switch {
	case v <= -saturation:
		return 0, 0
	case v >= saturation:
		return 1, 0
	}
	sig := 1 / (1 + math.Exp(-v))
	h = sig*(zeta-gamma) + gamma
	switch {
	case h <= 0:
		return 0, 0
	case h >= 1:
		return 1, 0
	}
	return h, (zeta - gamma) * sig * (1 - sig)
}

// initV returns the V whose h(V) is frac, in [0, 1).
func initV(frac float64) float64 {
	p := (frac - gamma) / (zeta - gamma)
	return math.Log(p / (1 - p))
}

// betaAt returns the regulariser's beta at step t of iters, and whether
// the regulariser applies (after the warm-up).
func betaAt(t, iters int) (float64, bool) {
	start := warmup * float64(iters)
	if float64(t) < start {
		return 0, false
	}
	rel := (float64(t) - start) / (float64(iters) - start)
	return betaEnd + (betaStart-betaEnd)*math.Max(0, 1-rel), true
}

// scratch holds objective's buffers, [out, n] each but g32, [n, n]: G in
// float32 for the GEMM.
type scratch struct {
	h, dh     []float64
	inRange   []bool
	delta, gd []float32
	g32       []float32
}

func (p *roundProblem) newScratch() *scratch {
	k := p.out * p.n
	w := &scratch{h: make([]float64, k), dh: make([]float64, k), inRange: make([]bool, k),
		delta: make([]float32, k), gd: make([]float32, k), g32: make([]float32, len(p.g))}
	for i, x := range p.g {
		w.g32[i] = float32(x)
	}
	return w
}

// gradient writes into grad the gradient with respect to V of the soft
// objective at step t of iters: L at the soft codes clamp(base + z +
// h(V), qmin, qmax), plus lambda*sum(1 - |2h(V)-1|^beta) after the
// warm-up. base is p.base's. D*G is a float32 GEMM, the rest float64.
func (p *roundProblem) gradient(grad, v []float64, base []int32, t, iters int, w *scratch, threads int) {
	n := p.n
	for o := range p.out {
		s, z := float64(p.scale[o]), float64(p.zp[o])
		for j := range n {
			i := o*n + j
			h, dh := rectified(v[i])
			q := float64(base[i]) + z + h
			qc := math.Min(math.Max(q, float64(p.qmin)), float64(p.qmax))
			w.h[i], w.dh[i], w.inRange[i] = h, dh, q >= float64(p.qmin) && q <= float64(p.qmax)
			w.delta[i] = float32(s*(qc-z) - float64(p.w[i]))
		}
	}
	gemm.SgemmParallel(w.gd, n, false, false, p.out, n, n, 1, w.delta, n, w.g32, n, 0, threads)
	beta, reg := betaAt(t, iters)
	for o := range p.out {
		s := float64(p.scale[o])
		for j := range n {
			i := o*n + j
			if w.dh[i] == 0 {
				grad[i] = 0 // h is clipped: no gradient reaches V
				continue
			}
			var dh float64
			if w.inRange[i] {
				dh = 2 * (float64(w.gd[i]) + p.b[i]) * s
			}
			if u := 2*w.h[i] - 1; reg && u != 0 {
				// d/dh of lambda*(1 - |u|^beta), u = 2h - 1.
				dh -= lambda * beta * math.Pow(math.Abs(u), beta-1) * math.Copysign(2, u)
			}
			grad[i] = dh * w.dh[i]
		}
	}
}

// solve runs iters Adam steps from h(V) = the fractional part of w/s and
// returns the hard codes clamp(floor(w/s) + z + [h(V) >= 0.5], qmin,
// qmax) and the final V.
func (p *roundProblem) solve(iters, threads int) ([]int32, []float64) {
	base, frac := p.base()
	v := make([]float64, len(p.w))
	for i, f := range frac {
		v[i] = initV(f)
	}
	grad := make([]float64, len(v))
	m1, m2 := make([]float64, len(v)), make([]float64, len(v))
	w := p.newScratch()
	for t := range iters {
		p.gradient(grad, v, base, t, iters, w, threads)
		bc1 := 1 - math.Pow(adamB1, float64(t+1))
		bc2 := 1 - math.Pow(adamB2, float64(t+1))
		for i, g := range grad {
			m1[i] = adamB1*m1[i] + (1-adamB1)*g
			m2[i] = adamB2*m2[i] + (1-adamB2)*g*g
			v[i] -= adamLR / bc1 * m1[i] / (math.Sqrt(m2[i])/math.Sqrt(bc2) + adamEps)
		}
	}
	return p.codes(base, v), v
}

// codes returns the hard codes of V.
func (p *roundProblem) codes(base []int32, v []float64) []int32 {
	q := make([]int32, len(v))
	for o := range p.out {
		for j := range p.n {
			i := o*p.n + j
			c := base[i] + p.zp[o]
			if h, _ := rectified(v[i]); h >= 0.5 {
				c++
			}
			q[i] = min(max(c, p.qmin), p.qmax)
		}
	}
	return q
}

// adaroundLayer learns the rounding of quantized layer q (weight params
// p) against the float layer f on the statistics st, group by group, and
// writes weights whose codes under p are the learned ones into q's weight
// param; rep gets the reconstruction errors.
func adaroundLayer(q, f *layer, st *stats, p quant.Params, iters int, rep *LayerReport) error {
	wf := f.folded()
	rtn := make([]int32, len(wf))
	quant.Quantize(rtn, wf, []int{q.out, q.inner}, p)
	codes := make([]int32, len(wf))
	per, n := q.out/q.groups, q.inner
	threads := layers.Threads()
	for g := range q.groups {
		pr := newRoundProblem(wf[g*per*n:(g+1)*per*n], n, p, g*per, st.g[g], st.e[g], st.f[g], st.rows)
		learned, _ := pr.solve(iters, threads)
		rtnG := rtn[g*per*n : (g+1)*per*n]
		for o := range per {
			if q.sf != nil && q.sf[g*per+o] == 0 {
				// Its folded weights are all 0 whatever the stored ones:
				// no other code can be stored.
				copy(learned[o*n:(o+1)*n], rtnG[o*n:(o+1)*n])
			}
		}
		rep.RoundToNearestError += pr.recon(float64s(rtnG))
		rep.AdaRoundError += pr.recon(float64s(learned))
		copy(codes[g*per*n:], learned)
	}
	for i := range codes {
		if codes[i] != rtn[i] {
			rep.Flipped++
		}
	}
	rep.Codes = len(codes)
	return q.setCodes(codes, p)
}

// setCodes writes weights into the layer's weight param whose folded
// values the weight quantizer (params p) maps to codes: the dequantized
// code, divided by the fold scale where there is one. Channels whose
// fold scale is 0 keep their weights (all their folded values are 0):
// their codes must be the code of 0. It checks every code as quant
// computes it and fails if one differs.
func (l *layer) setCodes(codes []int32, p quant.Params) error {
	w := make([]float32, len(codes))
	for o := range l.out {
		s, z := channelParams(p, o)
		for j := range l.inner {
			i := o*l.inner + j
			v := float32(codes[i]-z) * s
			switch {
			case l.sf == nil:
				w[i] = v
			case l.sf[o] == 0:
				w[i] = l.w.Data[i]
			default:
				w[i] = v / l.sf[o]
			}
		}
	}
	got := append([]float32(nil), w...)
	if l.sf != nil {
		for i := range got {
			got[i] *= l.sf[i/l.inner]
		}
	}
	check := make([]int32, len(got))
	quant.Quantize(check, got, []int{l.out, l.inner}, p)
	for i, c := range check {
		if c != codes[i] {
			return fmt.Errorf("weight %d: stored value %v quantizes to code %d, want %d", i, w[i], c, codes[i])
		}
	}
	copy(l.w.Data, w)
	return nil
}

func float64s(q []int32) []float64 {
	out := make([]float64, len(q))
	for i, c := range q {
		out[i] = float64(c)
	}
	return out
}
