package fakequant_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"qat/fakequant"
	"qat/internal/gradcheck"
	"qat/quant"
	"qat/ste"
)

// pactSample draws n values over [-3s, alpha+3s] for scale s and codes
// [0, qmax], keeping only points at least 0.1 steps from a rounding tie and
// 0.6 steps from the clipping edges 0 and alpha, where a small change of x
// or alpha crosses no kink.
func pactSample(r *rand.Rand, n int, s float32, qmax int32) []float32 {
	var out []float32
	for len(out) < n {
		u := -3 + (float64(qmax)+6)*r.Float64()
		frac := u - math.Floor(u)
		if math.Abs(frac-0.5) < 0.1 || math.Abs(u) < 0.6 || math.Abs(u-float64(qmax)) < 0.6 {
			continue
		}
		out = append(out, float32(u*float64(s)))
	}
	return out
}

// TestPACTGradient checks the PACT quantizer's forward pass against
// quant.FakeQuantize with ste.PACTParams and its gradients against finite
// differences. PACT's straight-through gradient (Choi et al. 2018, eq. 3) is
// the exact gradient of the surrogate sum(gy * (clip(x, 0, alpha) + r)),
// with each element's rounding residual r frozen, plus AlphaDecay/2*alpha^2;
// on elements clipped at alpha it is also the exact gradient of the real
// forward pass, y = alpha = QMax*scale.
func TestPACTGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		bits         int
		scale, decay float32
	}{{4, 0.25, 0}, {8, 1.0 / 64, 0}, {2, 0.5, 0.01}} {
		qmax := int32(1)<<tc.bits - 1
		alpha := tc.scale * float32(qmax)
		p, err := ste.PACTParams(alpha, tc.bits)
		if err != nil {
			t.Fatal(err)
		}
		if p.Scale[0] != tc.scale {
			t.Fatalf("%d bits: PACTParams scale %g, want %g", tc.bits, p.Scale[0], tc.scale)
		}
		x := pactSample(r, 300, tc.scale, qmax)
		gy := make([]float32, len(x))
		for i := range gy {
			gy[i] = float32(r.NormFloat64())
		}
		cfg := fakequant.LearnableConfig{Name: "pact", QMin: 0, QMax: qmax, PACT: true, AlphaDecay: tc.decay}
		lq, err := fakequant.NewLearnable(cfg)
		if err != nil {
			t.Fatal(err)
		}
		l := newLGraph(t, lq, x, gy, []int{len(x)}, []float32{tc.scale}, []float32{0}, false)
		l.run(t)
		y := valueData(t, l.yv, "y")
		bitsEqual(t, "y", y, wantFQ(x, nil, p))
		gx := gradData(t, l.x)
		checkExact(t, "gradX", gx, wantClipped(gy, x, nil, p))
		gs := gradData(t, l.s)[0]
		a := float64(alpha)
		want := float32(float64(qmax) * (float64(ste.PACT(nil, gy, x, p)) + float64(tc.decay)*a))
		if gs != want {
			t.Errorf("%d bits: grad scale %g, want QMax*(grad alpha + decay*alpha) = %g", tc.bits, gs, want)
		}
		got, err := lq.ParamsOf(l.s.Value(), l.z.Value())
		if err != nil {
			t.Fatal(err)
		}
		sameParams(t, "ParamsOf", got, p)

		// The surrogate, in float64, of x64 (x, which the finite
		// differences perturb).
		res, x64 := make([]float64, len(x)), make([]float64, len(x))
		clip := func(v, a float64) float64 { return math.Min(math.Max(v, 0), a) }
		for i, v := range x {
			res[i] = float64(y[i]) - clip(float64(v), a)
			x64[i] = float64(v)
		}
		loss := func(a float64) float64 {
			var sum float64
			for i, xv := range x64 {
				sum += float64(gy[i]) * (clip(xv, a) + res[i])
			}
			return sum + float64(tc.decay)/2*a*a
		}
		const h = 1e-6
		if err := gradcheck.Close(float64(gs)/float64(qmax), gradcheck.Central(loss, a, h), 1e-4); err != nil {
			t.Errorf("%d bits: grad alpha, finite difference: %v", tc.bits, err)
		}
		fdx := gradcheck.Partials(func() float64 { return loss(a) }, h, x64)[0]
		var in, clipped int
		for i, v := range x {
			if err := gradcheck.Close(float64(gx[i]), fdx[i], 1e-4); err != nil {
				t.Fatalf("%d bits: grad x[%d] for x = %g, finite difference: %v", tc.bits, i, v, err)
			}
			switch {
			case v > alpha:
				clipped++
			case v > 0:
				in++
			}
		}
		if in == 0 || clipped == 0 {
			t.Fatalf("%d bits: %d elements in range and %d clipped at alpha; the test wants both", tc.bits, in, clipped)
		}

		// The real forward pass on the elements clipped at alpha.
		var cx, cgy []float32
		for i, v := range x {
			if v > alpha {
				cx, cgy = append(cx, v), append(cgy, gy[i])
			}
		}
		cl := newLGraph(t, lq, cx, cgy, []int{len(cx)}, []float32{tc.scale}, []float32{0}, false)
		real := func(s float32) float64 {
			cl.s.Value().Data().([]float32)[0] = s
			cl.run(t)
			var sum float64
			for i, v := range valueData(t, cl.yv, "y") {
				sum += float64(cgy[i]) * float64(v)
			}
			a := float64(s) * float64(qmax)
			return sum + float64(tc.decay)/2*a*a
		}
		// A step of scale/1024 moves alpha by under the 0.6-step margin
		// (and is exact: scale +- step are float32 values).
		hs := tc.scale / 1024
		fdReal := gradcheck.Central(func(s float64) float64 { return real(float32(s)) }, float64(tc.scale), float64(hs))
		real(tc.scale)
		if err := gradcheck.Close(float64(gradData(t, cl.s)[0]), fdReal, 1e-4); err != nil {
			t.Errorf("%d bits: clipped grad scale, finite difference of the forward pass: %v", tc.bits, err)
		}
	}
}

func TestPACTZeroPoint(t *testing.T) {
	lq, err := fakequant.NewLearnable(fakequant.LearnableConfig{Name: "a.q", QMin: 0, QMax: 15, PACT: true})
	if err != nil {
		t.Fatal(err)
	}
	x := []float32{-1, 0.3, 2, 9}
	l := newLGraph(t, lq, x, x, []int{4}, []float32{0.25}, []float32{3}, false)
	if err := l.runErr(); err == nil || !strings.Contains(err.Error(), "a.q: pact zero point 3 rounds to 3, want 0") {
		t.Errorf("pact with zero point 3: %v", err)
	}
}

func TestPACTConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  fakequant.LearnableConfig
		want string
	}{
		{fakequant.LearnableConfig{QMin: -8, QMax: 7, PACT: true}, "pact: code range [-8, 7] does not start at 0"},
		{fakequant.LearnableConfig{QMax: 15, PerChannel: true, PACT: true}, "pact: per-channel quantizer"},
		{fakequant.LearnableConfig{QMax: 15, LearnZeroPoint: true, PACT: true}, "pact: learned zero point"},
		{fakequant.LearnableConfig{QMax: 15, GradFactor: 1, PACT: true}, "pact: gradient factor 1 set"},
		{fakequant.LearnableConfig{QMax: 15, AlphaDecay: 0.1}, "alpha decay 0.1 set on a quantizer that is not pact"},
		{fakequant.LearnableConfig{QMax: 15, AlphaDecay: -1, PACT: true}, "alpha decay -1 is not a finite number >= 0"},
		{fakequant.LearnableConfig{QMax: 15, AlphaDecay: float32(math.NaN()), PACT: true}, "alpha decay NaN is not"},
		{fakequant.LearnableConfig{QMax: 15, AlphaDecay: float32(math.Inf(1)), PACT: true}, "alpha decay +Inf is not"},
	} {
		tc.cfg.Name = "act"
		if _, err := fakequant.NewLearnable(tc.cfg); err == nil || !strings.Contains(err.Error(), "fakequant act: "+tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestInitPACT(t *testing.T) {
	relu := pattern(64, 0, 3.2, 21)
	obs := quant.NewMinMax(quant.Scheme{Bits: 4})
	if err := obs.Observe(relu, nil); err != nil {
		t.Fatal(err)
	}
	scale, zp, err := fakequant.InitPACT(obs)
	if err != nil {
		t.Fatal(err)
	}
	_, hi := extrema(relu)
	if len(scale) != 1 || len(zp) != 1 || zp[0] != 0 || math.Abs(float64(scale[0]*15-hi)) > 1e-6*float64(hi) {
		t.Errorf("after a ReLU: scale %v zero point %v, want alpha = max %g", scale, zp, hi)
	}
	// With negative values the affine range tops out near the maximum.
	obs = quant.NewMinMax(quant.Scheme{Bits: 4})
	if err := obs.Observe([]float32{-1, 0.5, 3}, nil); err != nil {
		t.Fatal(err)
	}
	p, _ := obs.Params()
	if scale, _, err = fakequant.InitPACT(obs); err != nil {
		t.Fatal(err)
	}
	if a := scale[0] * 15; math.Abs(float64(a-3)) > float64(p.Scale[0])/2 {
		t.Errorf("alpha %g, want 3 within half a step %g", a, p.Scale[0])
	}
	for _, s := range []quant.Scheme{{Bits: 4, PerChannel: true}, {Bits: 4, Signed: true}} {
		obs := quant.NewMinMax(s)
		if err := obs.Observe([]float32{0, 1, 2, 3}, []int{4}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fakequant.InitPACT(obs); err == nil || !strings.Contains(err.Error(), "pact") {
			t.Errorf("%+v: error %v", s, err)
		}
	}
	if _, _, err := fakequant.InitPACT(quant.NewMinMax(quant.Scheme{})); err == nil {
		t.Error("InitPACT of an observer without data: no error")
	}
}
