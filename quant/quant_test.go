package quant_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"qat/quant"
)

func TestSchemeRange(t *testing.T) {
	for _, tc := range []struct {
		s          quant.Scheme
		qmin, qmax int32
		str        string
	}{
		{quant.Scheme{}, 0, 255, "uint8 affine per-tensor"},
		{quant.Uint8Affine, 0, 255, "uint8 affine per-tensor"},
		{quant.Scheme{Signed: true}, -128, 127, "int8 affine per-tensor"},
		{quant.Int8SymmetricPerChannel, -127, 127, "int8 symmetric narrow per-channel(axis 0)"},
		{quant.Scheme{Bits: 4, Signed: true, Symmetric: true}, -8, 7, "int4 symmetric per-tensor"},
		{quant.Scheme{Bits: 4, Signed: true, NarrowRange: true}, -7, 7, "int4 affine narrow per-tensor"},
		{quant.Scheme{Bits: 4}, 0, 15, "uint4 affine per-tensor"},
		{quant.Scheme{Bits: 2, Signed: true}, -2, 1, "int2 affine per-tensor"},
		{quant.Scheme{Bits: 3}, 0, 7, "uint3 affine per-tensor"},
		{quant.Scheme{Bits: 6, Signed: true, PerChannel: true, Axis: 1}, -32, 31, "int6 affine per-channel(axis 1)"},
	} {
		if err := tc.s.Validate(); err != nil {
			t.Errorf("%v: %v", tc.s, err)
		}
		if tc.s.QMin() != tc.qmin || tc.s.QMax() != tc.qmax {
			t.Errorf("%v: range [%d, %d], want [%d, %d]", tc.s, tc.s.QMin(), tc.s.QMax(), tc.qmin, tc.qmax)
		}
		if tc.s.String() != tc.str {
			t.Errorf("String() = %q, want %q", tc.s.String(), tc.str)
		}
	}
}

func TestSchemeValidate(t *testing.T) {
	for _, tc := range []struct {
		s    quant.Scheme
		want string
	}{
		{quant.Scheme{Bits: 1}, "bits 1"},
		{quant.Scheme{Bits: 9}, "bits 9"},
		{quant.Scheme{Bits: -3}, "bits -3"},
		{quant.Scheme{NarrowRange: true}, "narrow range needs signed"},
		{quant.Scheme{Axis: 1}, "per-tensor"},
		{quant.Scheme{PerChannel: true, Axis: -1}, "negative channel axis"},
	} {
		err := tc.s.Validate()
		if !errors.Is(err, quant.ErrScheme) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.s, err, tc.want)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	ok := quant.Params{Scale: []float32{0.1}, ZeroPoint: []int32{3}, QMin: 0, QMax: 255, Axis: -1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]quant.Params{
		"no scale":        {QMin: 0, QMax: 255, Axis: -1},
		"lengths":         {Scale: []float32{1, 1}, ZeroPoint: []int32{0}, QMin: 0, QMax: 255, Axis: 0},
		"range":           {Scale: []float32{1}, ZeroPoint: []int32{0}, QMin: 5, QMax: 5, Axis: -1},
		"per-tensor many": {Scale: []float32{1, 1}, ZeroPoint: []int32{0, 0}, QMin: 0, QMax: 255, Axis: -1},
		"zero scale":      {Scale: []float32{0}, ZeroPoint: []int32{0}, QMin: 0, QMax: 255, Axis: -1},
		"NaN scale":       {Scale: []float32{float32(math.NaN())}, ZeroPoint: []int32{0}, QMin: 0, QMax: 255, Axis: -1},
		"Inf scale":       {Scale: []float32{float32(math.Inf(1))}, ZeroPoint: []int32{0}, QMin: 0, QMax: 255, Axis: -1},
		"denormal scale":  {Scale: []float32{1e-40}, ZeroPoint: []int32{0}, QMin: 0, QMax: 255, Axis: -1},
		"zero point":      {Scale: []float32{1}, ZeroPoint: []int32{300}, QMin: 0, QMax: 255, Axis: -1},
	} {
		if err := p.Validate(); !errors.Is(err, quant.ErrParams) {
			t.Errorf("%s: error %v, want ErrParams", name, err)
		}
	}
}

// Degenerate ranges, worked by hand from the rules in the package doc.
func TestParamsFromRangeEdges(t *testing.T) {
	affine := quant.Scheme{Signed: true}
	sym := quant.Scheme{Signed: true, Symmetric: true}
	for _, tc := range []struct {
		name     string
		s        quant.Scheme
		min, max float32
		scale    float32
		zp       int32
	}{
		{"all zero affine", affine, 0, 0, quant.Eps, -128},
		{"all zero symmetric", sym, 0, 0, quant.Eps, 0},
		{"constant positive widened to 0", quant.Scheme{}, 2.55, 2.55, 0.01, 0},
		{"constant negative widened to 0", quant.Scheme{}, -2.55, -2.55, 0.01, 255},
		{"empty (min > max)", quant.Scheme{}, 1, -1, quant.Eps, 0},
		{"unsigned symmetric midpoint", quant.Scheme{Symmetric: true}, -1, 1, 1 / 127.5, 127},
		{"uint4 symmetric midpoint", quant.Scheme{Bits: 4, Symmetric: true}, 0, 1, 1 / 7.5, 7},
	} {
		p := quant.ParamsFromRange(tc.s, tc.min, tc.max)
		if p.Scale[0] != tc.scale || p.ZeroPoint[0] != tc.zp {
			t.Errorf("%s: scale %.9g zp %d, want %.9g %d", tc.name, p.Scale[0], p.ZeroPoint[0], tc.scale, tc.zp)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// Hand-computed: scale 0.5, zero point 10 in [0, 255].
func TestQuantizeKnown(t *testing.T) {
	p := quant.Params{Scale: []float32{0.5}, ZeroPoint: []int32{10}, QMin: 0, QMax: 255, Axis: -1}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	x := []float32{0, 0.25, 0.75, 1.25, -0.25, -5, -5.25, -100, 122.5, 200, inf, -inf, nan}
	q := []int32{10, 10, 12, 12, 10, 0, 0, 0, 255, 255, 255, 0, 10}
	y := []float32{0, 0, 1, 1, 0, -5, -5, -5, 122.5, 122.5, 122.5, -5, nan}
	gotQ := make([]int32, len(x))
	quant.Quantize(gotQ, x, nil, p)
	gotY := make([]float32, len(x))
	quant.FakeQuantize(gotY, x, nil, p)
	for i := range x {
		if gotQ[i] != q[i] {
			t.Errorf("Quantize(%g) = %d, want %d", x[i], gotQ[i], q[i])
		}
		if gotY[i] != y[i] && !(y[i] != y[i] && gotY[i] != gotY[i]) {
			t.Errorf("FakeQuantize(%g) = %g, want %g", x[i], gotY[i], y[i])
		}
	}
	// In place.
	quant.FakeQuantize(x, x, nil, p)
	if x[2] != 1 {
		t.Errorf("in place: %v", x)
	}
}

func TestPerChannelLayout(t *testing.T) {
	// shape [2, 3, 2], axis 1: the channel of flat index i is (i/2)%3.
	p := quant.Params{Scale: []float32{1, 2, 4}, ZeroPoint: []int32{0, 0, 0}, QMin: -128, QMax: 127, Axis: 1}
	x := make([]float32, 12)
	for i := range x {
		x[i] = 8
	}
	q := make([]int32, 12)
	quant.Quantize(q, x, []int{2, 3, 2}, p)
	want := []int32{8, 8, 4, 4, 2, 2, 8, 8, 4, 4, 2, 2}
	for i := range q {
		if q[i] != want[i] {
			t.Fatalf("codes %v, want %v", q, want)
		}
	}
}

func TestLayoutPanics(t *testing.T) {
	p := quant.Params{Scale: []float32{1, 1}, ZeroPoint: []int32{0, 0}, QMin: 0, QMax: 255, Axis: 1}
	for name, f := range map[string]func(){
		"dst length":    func() { quant.FakeQuantize(make([]float32, 3), make([]float32, 4), []int{2, 2}, p) },
		"shape count":   func() { quant.FakeQuantize(make([]float32, 4), make([]float32, 4), []int{2, 3}, p) },
		"axis":          func() { quant.FakeQuantize(make([]float32, 4), make([]float32, 4), []int{4}, p) },
		"channel count": func() { quant.FakeQuantize(make([]float32, 6), make([]float32, 6), []int{2, 3}, p) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestRoundZeroPoint(t *testing.T) {
	for _, tc := range []struct {
		z    float32
		want int32
	}{{2.5, 2}, {3.5, 4}, {-2.5, -2}, {-0.4, 0}, {300, 127}, {-700, -128}, {float32(math.NaN()), -128}} {
		if got := quant.RoundZeroPoint(tc.z, -128, 127); got != tc.want {
			t.Errorf("RoundZeroPoint(%g) = %d, want %d", tc.z, got, tc.want)
		}
	}
}

func TestObserverContract(t *testing.T) {
	schemes := []quant.Scheme{{}, {Signed: true, Symmetric: true}, quant.Int8SymmetricPerChannel}
	for _, s := range schemes {
		for _, kind := range []string{quant.KindMinMax, quant.KindMovingAverageMinMax} {
			obs, err := quant.NewObserver(s, quant.ObserverConfig{Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			shape := []int{2, 3}
			if _, err := obs.Params(); !errors.Is(err, quant.ErrNoData) {
				t.Errorf("%s %v: Params before data: %v", kind, s, err)
			}
			if err := obs.Observe(nil, []int{0, 3}); err != nil {
				t.Errorf("%s: empty input: %v", kind, err)
			}
			if _, err := obs.Params(); !errors.Is(err, quant.ErrNoData) {
				t.Errorf("%s: empty input counted as data: %v", kind, err)
			}
			zeros := make([]float32, 6)
			if err := obs.Observe(zeros, shape); err != nil {
				t.Fatal(err)
			}
			p, err := obs.Params()
			if err != nil || p.Scale[0] != quant.Eps {
				t.Errorf("%s %v: all zeros gave %+v, %v", kind, s, p, err)
			}
			for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
				x := []float32{1, 2, 3, 4, bad, 6}
				err := obs.Observe(x, shape)
				if !errors.Is(err, quant.ErrNonFinite) || !strings.Contains(err.Error(), "element") {
					t.Errorf("%s: Observe with %g: %v", kind, bad, err)
				}
			}
			if q, _ := obs.Params(); q.Scale[0] != quant.Eps {
				t.Errorf("%s: a rejected batch changed the params: %+v", kind, q)
			}
			obs.Reset()
			if _, err := obs.Params(); !errors.Is(err, quant.ErrNoData) {
				t.Errorf("%s: Params after Reset: %v", kind, err)
			}
		}
	}
}

func TestPerTensorObserverShapeErrors(t *testing.T) {
	obs := quant.NewMinMax(quant.Scheme{})
	if err := obs.Observe(make([]float32, 6), []int{2, 2}); err == nil {
		t.Error("shape of 4 elements for 6 values: no error")
	}
	if err := obs.Observe(make([]float32, 6), []int{-2, -3}); err == nil {
		t.Error("negative dimensions: no error")
	}
	if err := obs.Observe(make([]float32, 6), nil); err != nil {
		t.Errorf("nil shape: %v", err)
	}
}

func TestPerChannelObserverShapeErrors(t *testing.T) {
	obs := quant.NewMinMax(quant.Scheme{Signed: true, Symmetric: true, PerChannel: true, Axis: 1})
	if err := obs.Observe(make([]float32, 6), []int{6}); err == nil {
		t.Error("axis outside shape: no error")
	}
	if err := obs.Observe(make([]float32, 6), []int{2, 2}); err == nil {
		t.Error("shape of 4 elements for 6 values: no error")
	}
	if err := obs.Observe(make([]float32, 6), []int{3, -2}); err == nil {
		t.Error("negative dimension: no error")
	}
	if err := obs.Observe(make([]float32, 6), nil); err == nil {
		t.Error("nil shape on a per-channel observer: no error")
	}
	if err := obs.Observe(make([]float32, 6), []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := obs.Observe(make([]float32, 6), []int{3, 2}); err == nil {
		t.Error("channel count changed: no error")
	}
}

func TestNewObserverConfigErrors(t *testing.T) {
	for name, cfg := range map[string]quant.ObserverConfig{
		"unknown kind":                 {Kind: "median"},
		"averaging on minmax":          {AveragingConstant: 0.1},
		"averaging out of range":       {Kind: quant.KindMovingAverageMinMax, AveragingConstant: 2},
		"percentile on minmax":         {Percentile: 99},
		"bins on moving average":       {Kind: quant.KindMovingAverageMinMax, Bins: 100},
		"negative averaging":           {Kind: quant.KindMovingAverageMinMax, AveragingConstant: -0.5},
		"percentile on moving average": {Kind: quant.KindMovingAverageMinMax, Percentile: 99},
	} {
		if _, err := quant.NewObserver(quant.Scheme{}, cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := quant.NewObserver(quant.Scheme{Bits: 12}, quant.ObserverConfig{}); !errors.Is(err, quant.ErrScheme) {
		t.Errorf("invalid scheme: %v", err)
	}
}

// Moving average by hand: first batch sets [-1, 2], second batch [-3, 4]
// moves them by 0.5 of the difference.
func TestMovingAverage(t *testing.T) {
	obs := quant.NewMovingAverageMinMax(quant.Scheme{Signed: true}, 0.5)
	for _, b := range [][]float32{{-1, 2}, {-3, 4}} {
		if err := obs.Observe(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	lo, hi := obs.Range()
	if lo[0] != -2 || hi[0] != 3 {
		t.Errorf("range [%g, %g], want [-2, 3]", lo[0], hi[0])
	}
}

func TestMeasureError(t *testing.T) {
	// scale 1, zero point 0, codes [-2, 1]: 0.25 -> 0 (err 0.25),
	// 3 -> 1 (clipped, err 2), -1 -> -1 (err 0), 0.5 -> 0 (tie to even, err 0.5).
	p := quant.Params{Scale: []float32{1}, ZeroPoint: []int32{0}, QMin: -2, QMax: 1, Axis: -1}
	st := quant.MeasureError([]float32{0.25, 3, -1, 0.5}, nil, p)
	wantMSE := (0.0625 + 4 + 0 + 0.25) / 4
	wantSQNR := 10 * math.Log10((0.0625+9+1+0.25)/(0.0625+4+0.25))
	if st.MSE != wantMSE || st.MaxAbsError != 2 || st.Clipped != 0.25 || math.Abs(st.SQNR-wantSQNR) > 1e-12 {
		t.Errorf("got %+v, want MSE %g, SQNR %g, max 2, clipped 0.25", st, wantMSE, wantSQNR)
	}
	if st := quant.MeasureError([]float32{1, -1}, nil, p); !math.IsInf(st.SQNR, 1) || st.MSE != 0 {
		t.Errorf("exact: %+v", st)
	}
	if st := quant.MeasureError(nil, nil, p); st != (quant.ErrorStats{}) {
		t.Errorf("empty: %+v", st)
	}
}

// referenceCode is PyTorch's formula written plainly in float64:
// z + nearbyint(float32(x*inv)), clamped; the unclamped value gives the mask.
func referenceCode(x, inv float32, zp, qmin, qmax int32) (int32, bool) {
	if x != x {
		return zp, false
	}
	r := math.RoundToEven(float64(x*inv)) + float64(zp)
	switch {
	case r < float64(qmin):
		return qmin, false
	case r > float64(qmax):
		return qmax, false
	}
	return int32(r), true
}

// FuzzCode checks quant.Code, which rounds with a magic constant, against
// the plain formula for every float32 input and scale.
func FuzzCode(f *testing.F) {
	f.Add(math.Float32bits(2.5), math.Float32bits(1), int32(0), uint8(6), true)
	f.Add(math.Float32bits(-12582912), math.Float32bits(1), int32(3), uint8(6), false)
	f.Add(math.Float32bits(4194303.5), math.Float32bits(1), int32(0), uint8(2), true)
	f.Add(math.Float32bits(float32(math.Inf(-1))), math.Float32bits(0.5), int32(1), uint8(0), true)
	f.Fuzz(func(t *testing.T, xBits, invBits uint32, zp int32, bits uint8, signed bool) {
		s := quant.Scheme{Bits: 2 + int(bits%7), Signed: signed}
		span := int64(s.QMax()) - int64(s.QMin()) + 1
		z := int32(int64(s.QMin()) + (int64(zp)%span+span)%span)
		x, inv := math.Float32frombits(xBits), math.Float32frombits(invBits)
		q, in := quant.Code(x, inv, z, s.QMin(), s.QMax())
		wq, win := referenceCode(x, inv, z, s.QMin(), s.QMax())
		if q != wq || in != win {
			t.Fatalf("Code(%g, %g, %d, [%d,%d]) = %d, %v; reference %d, %v", x, inv, z, s.QMin(), s.QMax(), q, in, wq, win)
		}
	})
}

// Every tie k+0.5 and its float32 neighbours for k across and beyond an
// int8 range, against the reference.
func TestCodeTies(t *testing.T) {
	for k := -300; k <= 300; k++ {
		tie := float32(k) + 0.5
		for _, x := range []float32{tie, math.Nextafter32(tie, -1e9), math.Nextafter32(tie, 1e9), float32(k)} {
			for _, zp := range []int32{-128, -3, 0, 5, 127} {
				q, in := quant.Code(x, 1, zp, -128, 127)
				wq, win := referenceCode(x, 1, zp, -128, 127)
				if q != wq || in != win {
					t.Fatalf("Code(%g, zp %d) = %d, %v; reference %d, %v", x, zp, q, in, wq, win)
				}
			}
		}
	}
}

func TestSetRangeRestoresObserver(t *testing.T) {
	s := quant.Scheme{Signed: true, Symmetric: true, PerChannel: true}
	a := quant.NewMovingAverageMinMax(s, 0.1)
	x := []float32{-1, 2, 3, -4, 0.5, 0.25}
	shape := []int{2, 3}
	if err := a.Observe(x, shape); err != nil {
		t.Fatal(err)
	}
	lo, hi := a.Range()
	b := quant.NewMovingAverageMinMax(s, 0.1)
	if err := b.SetRange(lo, hi); err != nil {
		t.Fatal(err)
	}
	for i := range x {
		x[i] *= 2
	}
	if err := a.Observe(x, shape); err != nil {
		t.Fatal(err)
	}
	if err := b.Observe(x, shape); err != nil {
		t.Fatal(err)
	}
	pa, _ := a.Params()
	pb, _ := b.Params()
	for c := range pa.Scale {
		if pa.Scale[c] != pb.Scale[c] || pa.ZeroPoint[c] != pb.ZeroPoint[c] {
			t.Fatalf("channel %d: restored observer gives %v/%v, original %v/%v", c, pb.Scale[c], pb.ZeroPoint[c], pa.Scale[c], pa.ZeroPoint[c])
		}
	}
	for _, bad := range []struct{ lo, hi []float32 }{
		{nil, nil}, {[]float32{0}, []float32{1, 2}}, {[]float32{2, 0}, []float32{1, 1}},
		{[]float32{float32(math.NaN()), 0}, []float32{1, 1}},
	} {
		if err := b.SetRange(bad.lo, bad.hi); err == nil {
			t.Errorf("SetRange(%v, %v) accepted", bad.lo, bad.hi)
		}
	}
	if err := quant.NewMinMax(quant.Scheme{}).SetRange([]float32{0, 0}, []float32{1, 1}); err == nil {
		t.Error("per-tensor observer accepted two channels")
	}
}
