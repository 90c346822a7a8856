package ste_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"qat/internal/gradcheck"
	"qat/quant"
	"qat/ste"
)

// Finite-difference checks. A straight-through gradient is the exact
// gradient of the surrogate in which each element's rounding residual
// d = round(x/s) - x/s is frozen at the point of evaluation:
//
//	f(x, s, z) = (clamp(x/s + d + z, qmin, qmax) - z) * s
//
// (and for PACT, f(x, alpha) = clip(x, 0, alpha) + d*alpha/n, with d frozen
// and the scale treated as fixed, the paper's rule). Away from rounding and
// clamping boundaries a small step does not cross a kink, so central
// differences of the surrogate, in float64 (internal/gradcheck), must
// equal the analytic gradients. Clamped elements are also checked against the real fake-quant
// function, which is smooth in the scale and zero point there.

// sample draws n values spread over and beyond the range of p (channel c),
// keeping only points at least 0.1 steps away from a rounding tie and from
// the clamping edges.
func sample(r *rand.Rand, n int, s float32, zp, qmin, qmax int32) []float32 {
	lo := float64(qmin-zp) * float64(s)
	hi := float64(qmax-zp) * float64(s)
	var out []float32
	for len(out) < n {
		margin := math.Max(3*float64(s), 0.1*(hi-lo))
		x := float32(lo - margin + (hi-lo+2*margin)*r.Float64())
		u := float64(x) / float64(s)
		frac := u - math.Floor(u)
		if math.Abs(frac-0.5) < 0.1 {
			continue
		}
		edge := math.Min(math.Abs(u+float64(zp)-float64(qmin)), math.Abs(u+float64(zp)-float64(qmax)))
		if edge < 0.6 {
			continue
		}
		out = append(out, x)
	}
	return out
}

type surrogate struct {
	x, d       []float64
	qmin, qmax float64
}

func newSurrogate(x []float32, s float32, qmin, qmax int32) surrogate {
	sg := surrogate{x: make([]float64, len(x)), d: make([]float64, len(x)), qmin: float64(qmin), qmax: float64(qmax)}
	for i, v := range x {
		u := float64(v * (1 / s))
		sg.x[i] = float64(v)
		sg.d[i] = math.RoundToEven(u) - float64(v)/float64(s)
	}
	return sg
}

// loss is sum(dy * f(x, s, z)).
func (sg surrogate) loss(dy []float32, s, z float64) float64 {
	var l float64
	for i, x := range sg.x {
		q := math.Min(math.Max(x/s+sg.d[i]+z, sg.qmin), sg.qmax)
		l += float64(dy[i]) * (q - z) * s
	}
	return l
}

func TestLSQFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name       string
		qmin, qmax int32
		s          float32
		zp         int32
	}{
		{"int8", -128, 127, 0.05, 0},
		{"uint8 affine", 0, 255, 0.02, 37},
		{"int4", -8, 7, 0.3, 0},
		{"uint4 affine", 0, 15, 0.7, 3},
		{"int2", -2, 1, 1.1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := sample(r, 200, tc.s, tc.zp, tc.qmin, tc.qmax)
			dy := make([]float32, len(x))
			for i := range dy {
				dy[i] = float32(r.NormFloat64())
			}
			p := quant.Params{Scale: []float32{tc.s}, ZeroPoint: []int32{tc.zp}, QMin: tc.qmin, QMax: tc.qmax, Axis: -1}
			gx := make([]float32, len(x))
			gs, gz := make([]float32, 1), make([]float32, 1)
			ste.LSQPlus(gx, gs, gz, dy, x, nil, p, 1)

			sg := newSurrogate(x, tc.s, tc.qmin, tc.qmax)
			s, z := float64(tc.s), float64(tc.zp)
			h := 1e-6 * s
			fdS := gradcheck.Central(func(s float64) float64 { return sg.loss(dy, s, z) }, s, h)
			fdZ := gradcheck.Central(func(z float64) float64 { return sg.loss(dy, s, z) }, z, 1e-6)
			if err := gradcheck.Close(float64(gs[0]), fdS, 1e-4); err != nil {
				t.Errorf("grad scale, finite difference: %v", err)
			}
			if err := gradcheck.Close(float64(gz[0]), fdZ, 1e-4); err != nil {
				t.Errorf("grad zero point, finite difference: %v", err)
			}
			// dL/dx_i through the surrogate.
			fdX := gradcheck.Partials(func() float64 { return sg.loss(dy, s, z) }, h, sg.x)[0]
			for i := range x {
				if err := gradcheck.Close(float64(gx[i]), fdX[i], 1e-4); err != nil {
					t.Fatalf("grad x[%d] (x=%g), finite difference: %v", i, x[i], err)
				}
			}
			checkClampedAgainstRealFunction(t, x, dy, p)
		})
	}
}

// checkClampedAgainstRealFunction compares the scale and zero-point
// gradients of the clamped elements alone with central differences of
// quant.FakeQuantize itself: there y = (qbound - z)*s is linear in s and z.
func checkClampedAgainstRealFunction(t *testing.T, x, dy []float32, p quant.Params) {
	t.Helper()
	var cx, cdy []float32
	inv := 1 / p.Scale[0]
	for i, v := range x {
		if _, in := quant.Code(v, inv, p.ZeroPoint[0], p.QMin, p.QMax); !in {
			cx, cdy = append(cx, v), append(cdy, dy[i])
		}
	}
	if len(cx) == 0 {
		t.Fatal("sample has no clamped element")
	}
	loss := func(s float32, z int32) float64 {
		q := p.Clone()
		q.Scale[0], q.ZeroPoint[0] = s, z
		y := make([]float32, len(cx))
		quant.FakeQuantize(y, cx, nil, q)
		var l float64
		for i := range y {
			l += float64(cdy[i]) * float64(y[i])
		}
		return l
	}
	gx := make([]float32, len(cx))
	gs, gz := make([]float32, 1), make([]float32, 1)
	ste.LSQPlus(gx, gs, gz, cdy, cx, nil, p, 1)
	s := p.Scale[0]
	// A power-of-two step, exact in float32, that moves the clamping edges
	// by at most a quarter code, so no sampled element changes side.
	reach := math.Max(math.Abs(float64(p.QMin-p.ZeroPoint[0])), math.Abs(float64(p.QMax-p.ZeroPoint[0])))
	// s +- h are exact in float64, so rounding them to float32 is the
	// float32 sum.
	h := s / float32(math.Exp2(math.Ceil(math.Log2(4*reach))))
	z := p.ZeroPoint[0]
	fdS := gradcheck.Central(func(s float64) float64 { return loss(float32(s), z) }, float64(s), float64(h))
	if err := gradcheck.Close(float64(gs[0]), fdS, 1e-4); err != nil {
		t.Errorf("clamped: grad scale, finite difference of FakeQuantize: %v", err)
	}
	// The zero point is an integer: step by whole codes, away from the edge.
	if z-1 >= p.QMin && z+1 <= p.QMax {
		fdZ := gradcheck.Central(func(z float64) float64 { return loss(s, int32(z)) }, float64(z), 1)
		if err := gradcheck.Close(float64(gz[0]), fdZ, 1e-4); err != nil {
			t.Errorf("clamped: grad zero point, finite difference of FakeQuantize: %v", err)
		}
	}
}

func TestLSQPerChannelMatchesPerTensor(t *testing.T) {
	// A per-channel quantizer is per-tensor quantizers side by side: each
	// channel's gradients equal those of that channel alone.
	r := rand.New(rand.NewPCG(3, 4))
	scales := []float32{0.05, 0.2, 0.013}
	zps := []int32{0, -3, 5}
	const inner = 7
	shape := []int{2, len(scales), inner} // axis 1
	n := 2 * len(scales) * inner
	x, dy := make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 2)
		dy[i] = float32(r.NormFloat64())
	}
	p := quant.Params{Scale: scales, ZeroPoint: zps, QMin: -128, QMax: 127, Axis: 1}
	gx := make([]float32, n)
	gs, gz := make([]float32, 3), make([]float32, 3)
	ste.LSQPlus(gx, gs, gz, dy, x, shape, p, 0.5)
	for c := range scales {
		var cx, cdy []float32
		for o := 0; o < 2; o++ {
			off := (o*len(scales) + c) * inner
			cx = append(cx, x[off:off+inner]...)
			cdy = append(cdy, dy[off:off+inner]...)
		}
		pc := quant.Params{Scale: scales[c : c+1], ZeroPoint: zps[c : c+1], QMin: -128, QMax: 127, Axis: -1}
		cgx := make([]float32, len(cx))
		cs, cz := make([]float32, 1), make([]float32, 1)
		ste.LSQPlus(cgx, cs, cz, cdy, cx, nil, pc, 0.5)
		if cs[0] != gs[c] || cz[0] != gz[c] {
			t.Errorf("channel %d: per-channel grads (%g, %g), alone (%g, %g)", c, gs[c], gz[c], cs[0], cz[0])
		}
	}
}

func TestPACTFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, bits := range []int{2, 4, 8} {
		alpha := float32(3.5)
		p, err := ste.PACTParams(alpha, bits)
		if err != nil {
			t.Fatal(err)
		}
		x := sample(r, 300, p.Scale[0], 0, p.QMin, p.QMax)
		dy := make([]float32, len(x))
		for i := range dy {
			dy[i] = float32(r.NormFloat64())
		}
		gx := make([]float32, len(x))
		ga := ste.PACT(gx, dy, x, p)
		if g := ste.PACT(nil, dy, x, p); g != ga {
			t.Errorf("%d bits: grad alpha without gradX %g, with it %g", bits, g, ga)
		}
		alias := append([]float32(nil), dy...)
		if g := ste.PACT(alias, alias, x, p); g != ga || !slices.Equal(alias, gx) {
			t.Errorf("%d bits: aliased gradX and gradY change the gradients", bits)
		}

		n := float64(p.QMax)
		d := newSurrogate(x, p.Scale[0], p.QMin, p.QMax).d
		loss := func(a float64) float64 {
			var l float64
			for i, v := range x {
				y := math.Min(math.Max(float64(v), 0), a) + d[i]*float64(alpha)/n
				l += float64(dy[i]) * y
			}
			return l
		}
		if err := gradcheck.Close(float64(ga), gradcheck.Central(loss, float64(alpha), 1e-6), 1e-4); err != nil {
			t.Errorf("%d bits: grad alpha, finite difference: %v", bits, err)
		}
		// The real forward pass clamps at alpha, so for the clipped elements
		// alone the gradient is also its finite difference.
		var cx, cdy []float32
		for i, v := range x {
			if v > alpha {
				cx, cdy = append(cx, v), append(cdy, dy[i])
			}
		}
		real := func(a float32) float64 {
			q, err := ste.PACTParams(a, bits)
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(cx))
			quant.FakeQuantize(y, cx, nil, q)
			var l float64
			for i := range y {
				l += float64(cdy[i]) * float64(y[i])
			}
			return l
		}
		cg := ste.PACT(make([]float32, len(cx)), cdy, cx, p)
		// 2^-10 is under the 0.6-code margin of the sample at 8 bits
		// (3.5/255*0.6), and alpha +- 2^-10 are float32 values.
		const h = 1.0 / 1024
		fd := gradcheck.Central(func(a float64) float64 { return real(float32(a)) }, float64(alpha), h)
		if err := gradcheck.Close(float64(cg), fd, 1e-4); err != nil {
			t.Errorf("%d bits: clipped grad alpha, finite difference of FakeQuantize: %v", bits, err)
		}
		for i, v := range x {
			want := float32(0)
			if v >= 0 && v <= alpha {
				want = dy[i]
			}
			if gx[i] != want {
				t.Fatalf("%d bits: grad x[%d] = %g for x = %g, want %g", bits, i, gx[i], v, want)
			}
		}
	}
}

func TestPACTParamsErrors(t *testing.T) {
	for _, tc := range []struct {
		alpha float32
		bits  int
	}{{0, 8}, {-1, 8}, {float32(math.Inf(1)), 8}, {float32(math.NaN()), 8}, {1, 1}, {1, 9}} {
		if _, err := ste.PACTParams(tc.alpha, tc.bits); err == nil {
			t.Errorf("PACTParams(%g, %d): no error", tc.alpha, tc.bits)
		}
	}
}

func TestGradFactor(t *testing.T) {
	// LSQ (Esser et al. 2020): g = 1/sqrt(N*Qp).
	if g := ste.GradFactor(1000, 127); math.Abs(float64(g)-1/math.Sqrt(127000)) > 1e-9 {
		t.Errorf("GradFactor(1000, 127) = %g", g)
	}
	if g := ste.GradFactor(0, 127); g != 1 {
		t.Errorf("GradFactor(0, 127) = %g, want 1", g)
	}
}

func TestNaNGradients(t *testing.T) {
	p := quant.Params{Scale: []float32{0.1}, ZeroPoint: []int32{0}, QMin: -128, QMax: 127, Axis: -1}
	x := []float32{1, float32(math.NaN())}
	dy := []float32{1, 1}
	gx := make([]float32, 2)
	gs, gz := make([]float32, 1), make([]float32, 1)
	ste.LSQPlus(gx, gs, gz, dy, x, nil, p, 1)
	if gx[1] != 0 || !math.IsNaN(float64(gs[0])) {
		t.Errorf("NaN input: grad x %v, grad scale %v; want 0 and NaN", gx, gs)
	}
}

func TestLSQWithoutInputGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	x, dy := make([]float32, 60), make([]float32, 60)
	for i := range x {
		x[i], dy[i] = float32(r.NormFloat64()*3), float32(r.NormFloat64())
	}
	p := quant.Params{Scale: []float32{0.1, 0.05, 0.2}, ZeroPoint: []int32{0, 2, -1}, QMin: -8, QMax: 7, Axis: 0}
	shape := []int{3, 20}
	gx := make([]float32, 60)
	gs, gz := make([]float32, 3), make([]float32, 3)
	ste.LSQPlus(gx, gs, gz, dy, x, shape, p, 0.3)
	ns, nz := make([]float32, 3), make([]float32, 3)
	ste.LSQPlus(nil, ns, nz, dy, x, shape, p, 0.3)
	want := make([]float32, 60)
	ste.Clipped(want, dy, x, shape, p)
	for c := range gs {
		if gs[c] != ns[c] || gz[c] != nz[c] {
			t.Errorf("channel %d: with gradX (%g, %g), without (%g, %g)", c, gs[c], gz[c], ns[c], nz[c])
		}
	}
	for i := range gx {
		if gx[i] != want[i] {
			t.Fatalf("gradX[%d] = %g, Clipped gives %g", i, gx[i], want[i])
		}
	}
}
