package quant_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"qat/quant"
)

// histKinds are the observer kinds backed by quant.Histogram.
var histKinds = []string{quant.KindPercentile, quant.KindMSE, quant.KindEntropy}

// histSchemes covers symmetric and affine, signed and unsigned, 8 and 4 bits.
var histSchemes = []quant.Scheme{
	{},                              // uint8 affine
	{Signed: true},                  // int8 affine
	{Signed: true, Symmetric: true}, // int8 symmetric
	{Symmetric: true},               // uint8 symmetric (zero point at the midpoint)
	{Signed: true, Symmetric: true, NarrowRange: true},
	{Bits: 4}, // uint4 affine
	{Bits: 4, Signed: true, Symmetric: true, NarrowRange: true},
	{Bits: 4, Symmetric: true},
}

func newHist(t *testing.T, s quant.Scheme, cfg quant.ObserverConfig) *quant.Histogram {
	t.Helper()
	obs, err := quant.NewObserver(s, cfg)
	if err != nil {
		t.Fatalf("NewObserver(%v, %+v): %v", s, cfg, err)
	}
	h, ok := obs.(*quant.Histogram)
	if !ok {
		t.Fatalf("NewObserver(%v, %+v) returned %T, want *quant.Histogram", s, cfg, obs)
	}
	return h
}

func histGaussian(r *rand.Rand, n int, sigma float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * sigma)
	}
	return x
}

// histCheckExact checks the collection invariants against the values
// observed: the width is a power of two, the smallest that fits the range
// in the configured bins; bin 0 is present; and the counts equal a direct
// recount of every value at the final width, so merging lost nothing.
func histCheckExact(t *testing.T, h *quant.Histogram, bins int, values []float32) {
	t.Helper()
	if got := h.Count(); got != int64(len(values)) {
		t.Errorf("Count() = %d, want %d", got, len(values))
	}
	first, w, counts := h.Counts()
	if len(values) == 0 {
		if counts != nil {
			t.Errorf("counts %v before any data", counts)
		}
		return
	}
	lo, hi := values[0], values[0]
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
	}
	if mn, mx, ok := h.Extrema(); !ok || mn != lo || mx != hi {
		t.Errorf("Extrema() = %g, %g, %v; want %g, %g", mn, mx, ok, lo, hi)
	}
	if len(counts) > bins {
		t.Errorf("%d bins, limit %d", len(counts), bins)
	}
	if first > 0 || first+int64(len(counts)) <= 0 {
		t.Errorf("bins [%d, %d] miss bin 0", first, first+int64(len(counts))-1)
	}
	if lo == 0 && hi == 0 {
		if w != 0 || len(counts) != 1 || counts[0] != int64(len(values)) {
			t.Errorf("all zeros: width %g, counts %v", w, counts)
		}
		return
	}
	if frac, _ := math.Frexp(w); frac != 0.5 {
		t.Fatalf("width %g is not a power of two", w)
	}
	span := func(w float64) int64 {
		kmin := min(0, int64(math.Floor(float64(lo)/w)))
		kmax := max(0, int64(math.Floor(float64(hi)/w)))
		return kmax - kmin + 1
	}
	if span(w) != int64(len(counts)) {
		t.Errorf("%d bins, the range [%g, %g] at width %g needs %d", len(counts), lo, hi, w, span(w))
	}
	if span(w/2) <= int64(bins) {
		t.Errorf("width %g is not the smallest power of two that fits (half fits in %d bins)", w, span(w/2))
	}
	want := make([]int64, len(counts))
	for _, v := range values {
		want[int64(math.Floor(float64(v)/w))-first]++
	}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("counts differ from a recount at width %g", w)
	}
}

func TestHistogramCollection(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	growing := func(bins int) [][]float32 {
		// 40 batches, each 1.7 times wider and shifted, the last ~1e9:
		// many merges, several at once.
		var b [][]float32
		for i := range 40 {
			b = append(b, histGaussian(r, 50, math.Pow(1.7, float64(i))))
			b[i][0] += float32(math.Pow(1.7, float64(i)))
		}
		return b
	}
	tiny := float32(math.SmallestNonzeroFloat32)
	for _, tc := range []struct {
		name    string
		bins    int
		batches [][]float32
	}{
		{"gaussian", 0, [][]float32{histGaussian(r, 10000, 1)}},
		{"growing range", 0, growing(2048)},
		{"growing range, 16 bins", 16, growing(16)},
		{"shrinking range", 64, [][]float32{histGaussian(r, 100, 1e6), histGaussian(r, 100, 1e-3)}},
		{"zeros then data", 0, [][]float32{make([]float32, 7), {0, 0, 3, -1.5}, histGaussian(r, 100, 2)}},
		{"zeros then one value", 16, [][]float32{make([]float32, 3), {-0.25}}},
		{"zeros only", 0, [][]float32{make([]float32, 5), {0, float32(math.Copysign(0, -1))}}},
		{"negative only", 32, [][]float32{{-1, -2, -3}, {-100, -0.001}}},
		{"positive constant", 0, [][]float32{{3.5, 3.5, 3.5}, {3.5}}},
		{"negative constant", 16, [][]float32{{-2, -2}}},
		{"powers of two at bin edges", 16, [][]float32{{1, 2, 4, 8, -8, -4, 0.5}, {16, -16}}},
		{"subnormal then huge", 16, [][]float32{{tiny, -tiny}, {math.MaxFloat32, -math.MaxFloat32}}},
		{"empty batches", 0, [][]float32{{}, {1, 2}, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range histKinds {
				bins := tc.bins
				switch {
				case bins != 0:
				case kind == quant.KindEntropy:
					bins = quant.EntropyBinsPerLevel * 256 // 256 levels of uint8
				default:
					bins = quant.DefaultHistogramBins
				}
				h := newHist(t, quant.Scheme{}, quant.ObserverConfig{Kind: kind, Bins: tc.bins})
				var all []float32
				for _, b := range tc.batches {
					if err := h.Observe(b, nil); err != nil {
						t.Fatal(err)
					}
					all = append(all, b...)
					histCheckExact(t, h, bins, all)
				}
				if len(all) > 0 {
					if _, err := h.Params(); err != nil {
						t.Errorf("%s: Params: %v", kind, err)
					}
				}
			}
		})
	}
}

// The Observer contract of observer.go, for every histogram kind.
func TestHistogramObserveContract(t *testing.T) {
	for _, kind := range histKinds {
		h := newHist(t, quant.Scheme{Signed: true, Symmetric: true}, quant.ObserverConfig{Kind: kind})
		if _, err := h.Params(); !errors.Is(err, quant.ErrNoData) {
			t.Errorf("%s: Params before data: %v", kind, err)
		}
		if err := h.Observe(nil, []int{0, 3}); err != nil {
			t.Errorf("%s: empty input: %v", kind, err)
		}
		if _, err := h.Params(); !errors.Is(err, quant.ErrNoData) || h.Count() != 0 {
			t.Errorf("%s: empty input counted as data: %v", kind, err)
		}
		x := []float32{-1, 0.5, 2, 3, 0, -0.25}
		if err := h.Observe(x, []int{2, 3}); err != nil {
			t.Fatal(err)
		}
		before, _ := h.Params()
		_, _, counts := h.Counts()
		// The rejected batches hold values that would force merges if kept.
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			if err := h.Observe([]float32{1e9, -7, bad, 1}, nil); !errors.Is(err, quant.ErrNonFinite) {
				t.Errorf("%s: Observe with %g: %v", kind, bad, err)
			}
		}
		if err := h.Observe([]float32{1e9, 2}, []int{3}); err == nil {
			t.Errorf("%s: shape of 3 elements for 2 values: no error", kind)
		}
		if err := h.Observe([]float32{1e9, 2}, []int{-1, -2}); err == nil {
			t.Errorf("%s: negative dimensions: no error", kind)
		}
		after, _ := h.Params()
		_, _, counts2 := h.Counts()
		if !reflect.DeepEqual(before, after) || !reflect.DeepEqual(counts, counts2) {
			t.Errorf("%s: rejected batches changed the observer: %+v -> %+v", kind, before, after)
		}
		bins := quant.DefaultHistogramBins
		if kind == quant.KindEntropy {
			bins = quant.EntropyBinsPerLevel * 128 // 128 levels of int8 symmetric
		}
		histCheckExact(t, h, bins, x)
		h.Reset()
		if _, err := h.Params(); !errors.Is(err, quant.ErrNoData) || h.Count() != 0 {
			t.Errorf("%s: Params after Reset: %v", kind, err)
		}
		if h.Kind() != kind || h.Scheme() != (quant.Scheme{Signed: true, Symmetric: true}) {
			t.Errorf("Kind, Scheme = %q, %v", h.Kind(), h.Scheme())
		}
	}
}

// Percentiles of 0, 1, ..., 9999 (and of -5000 ... 4999 for magnitudes).
// Expected values are numpy.percentile's linear interpolation; the
// histogram interpolates inside bins, so the tolerance is one bin width.
func TestHistogramPercentileKnown(t *testing.T) {
	seq := func(from, n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(from + i)
		}
		return x
	}
	for _, tc := range []struct {
		name   string
		s      quant.Scheme
		x      []float32
		p      float64
		lo, hi float64
	}{
		// np.percentile(np.arange(10000), [1, 99]) = [99.99, 9899.01]
		{"affine 99", quant.Scheme{}, seq(0, 10000), 99, 99.99, 9899.01},
		// np.percentile(np.arange(-5000, 5000), [0.1, 99.9]) = [-4990.0, 4989.0]
		{"affine signed 99.9", quant.Scheme{Signed: true}, seq(-5000, 10000), 99.9, -4990.0, 4989.0},
		// np.percentile(np.abs(np.arange(10000)), 99) = 9899.01; the range
		// is [-a, a] clipped to [min, max] = [0, 9999].
		{"symmetric 99", quant.Scheme{Signed: true, Symmetric: true}, seq(0, 10000), 99, 0, 9899.01},
		// np.percentile(np.abs(np.arange(-5000, 5000)), 99) = 4950.0
		{"symmetric magnitudes 99", quant.Scheme{Signed: true, Symmetric: true}, seq(-5000, 10000), 99, -4950, 4950},
	} {
		h := newHist(t, tc.s, quant.ObserverConfig{Kind: quant.KindPercentile, Percentile: tc.p})
		if err := h.Observe(tc.x, nil); err != nil {
			t.Fatal(err)
		}
		_, w, _ := h.Counts()
		lo, hi, err := h.ClipRange()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(lo)-tc.lo) > w || math.Abs(float64(hi)-tc.hi) > w {
			t.Errorf("%s: range [%g, %g], want [%g, %g] within %g", tc.name, lo, hi, tc.lo, tc.hi, w)
		}
		p, _ := h.Params()
		if want := quant.ParamsFromRange(tc.s, lo, hi); !reflect.DeepEqual(p, want) {
			t.Errorf("%s: Params %+v, want ParamsFromRange of the clip range %+v", tc.name, p, want)
		}
	}
}

// p = 100 keeps exactly the observed range, for any data and scheme.
func TestHistogramPercentile100(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	x := append(histGaussian(r, 5000, 3), 17.25, -40.125)
	for _, s := range histSchemes {
		h := newHist(t, s, quant.ObserverConfig{Kind: quant.KindPercentile, Percentile: 100})
		if err := h.Observe(x, nil); err != nil {
			t.Fatal(err)
		}
		p, err := h.Params()
		if want := quant.ParamsFromRange(s, -40.125, 17.25); err != nil || !reflect.DeepEqual(p, want) {
			t.Errorf("%v: p=100 gave %+v, %v; want the min/max params %+v", s, p, err, want)
		}
	}
}

// A Gaussian bulk plus a few large outliers: every method clips the
// outliers, which lowers the error on the bulk compared with MinMax, and
// the MSE method's range is at least as good on all the data as MinMax's
// and the percentile's (it minimises that error, up to the histogram's
// resolution). The percentile is 99.9 so that the clipped tail (0.1% =
// 20 values) is larger than the 4 outliers.
func TestHistogramOutliers(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	bulk := histGaussian(r, 20000, 1)
	all := append(append([]float32{}, bulk...), 25, -30, 35, 40)
	schemes := []quant.Scheme{
		{}, {Signed: true, Symmetric: true}, {Symmetric: true},
		{Bits: 4}, {Bits: 4, Signed: true, Symmetric: true, NarrowRange: true},
	}
	for _, s := range schemes {
		mm := quant.NewMinMax(s)
		if err := mm.Observe(all, nil); err != nil {
			t.Fatal(err)
		}
		pmm, _ := mm.Params()
		mmBulk := quant.MeasureError(bulk, nil, pmm).MSE
		mmAll := quant.MeasureError(all, nil, pmm).MSE
		allMSE := map[string]float64{}
		for _, kind := range histKinds {
			cfg := quant.ObserverConfig{Kind: kind}
			if kind == quant.KindPercentile {
				cfg.Percentile = 99.9
			}
			h := newHist(t, s, cfg)
			if err := h.Observe(all, nil); err != nil {
				t.Fatal(err)
			}
			lo, hi, _ := h.ClipRange()
			p, err := h.Params()
			if err != nil {
				t.Fatal(err)
			}
			if !(hi-lo < 70 && lo >= -30 && hi <= 40) {
				t.Errorf("%v %s: range [%g, %g] not narrower than [-30, 40]", s, kind, lo, hi)
			}
			b := quant.MeasureError(bulk, nil, p).MSE
			if !(b < mmBulk) {
				t.Errorf("%v %s: bulk MSE %g, MinMax's %g", s, kind, b, mmBulk)
			}
			allMSE[kind] = quant.MeasureError(all, nil, p).MSE
			t.Logf("%v %-10s [%9.4f, %8.4f] bulk MSE %.3g (minmax %.3g), all %.3g (minmax %.3g)", s, kind, lo, hi, b, mmBulk, allMSE[kind], mmAll)
		}
		const tol = 1.02
		if m := allMSE[quant.KindMSE]; m > mmAll*tol || m > allMSE[quant.KindPercentile]*tol {
			t.Errorf("%v: mse's MSE %g, minmax's %g, percentile's %g", s, m, mmAll, allMSE[quant.KindPercentile])
		}
	}
}

// The MSE method against brute force on the data themselves: for
// symmetric schemes and one-sided data, 400 fractions f of the extreme,
// the range [max(min, -f*a), min(max, f*a)] with a = max|x|; for data of
// both signs under an affine scheme, a 40x40 grid of fractions of min and
// max. The chosen params' MSE must be within 1% of the best found (the
// histogram sees the data at ~2048-bin resolution, not exactly; in
// practice they agree to 0.5%).
func TestHistogramMSEBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	lap := make([]float32, 20000) // Laplace: heavy tails, a clipping optimum
	for i := range lap {
		lap[i] = float32(r.ExpFloat64() * float64(1-2*(i%2)))
	}
	relu := make([]float32, 20000)
	for i := range relu {
		relu[i] = float32(max(0, r.NormFloat64()))
	}
	skew := make([]float32, 5000) // lognormal shifted: both signs, long right tail
	for i := range skew {
		skew[i] = float32(math.Exp(0.8*r.NormFloat64()) - 1.2)
	}
	for _, tc := range []struct {
		s quant.Scheme
		x []float32
	}{
		{quant.Scheme{Signed: true, Symmetric: true}, lap},
		{quant.Scheme{Bits: 4, Signed: true, Symmetric: true, NarrowRange: true}, lap},
		{quant.Scheme{Bits: 4, Symmetric: true}, lap},
		{quant.Scheme{}, relu},
		{quant.Scheme{Bits: 4}, relu},
		{quant.Scheme{}, skew},
		{quant.Scheme{Bits: 4, Signed: true}, skew},
	} {
		h := newHist(t, tc.s, quant.ObserverConfig{Kind: quant.KindMSE})
		if err := h.Observe(tc.x, nil); err != nil {
			t.Fatal(err)
		}
		p, _ := h.Params()
		got := quant.MeasureError(tc.x, nil, p).MSE
		mn, mx, _ := h.Extrema()
		best := math.Inf(1)
		try := func(lo, hi float32) {
			q := quant.ParamsFromRange(tc.s, lo, hi)
			best = min(best, quant.MeasureError(tc.x, nil, q).MSE)
		}
		if tc.s.Symmetric || mn >= 0 || mx <= 0 {
			a := max(-mn, mx)
			for i := 1; i <= 400; i++ {
				f := float32(i) / 400
				try(max(mn, -f*a), min(mx, f*a))
			}
		} else {
			for i := 1; i <= 40; i++ {
				for j := 1; j <= 40; j++ {
					try(mn*float32(i)/40, mx*float32(j)/40)
				}
			}
		}
		if got > best*1.01 {
			t.Errorf("%v: MSE %g, brute force found %g", tc.s, got, best)
		}
	}
}

// Entropy calibration of uniform data keeps nearly the whole range: no
// clipping threshold makes the quantized distribution closer to the data.
func TestHistogramEntropyUniform(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, tc := range []struct {
		s      quant.Scheme
		lo, hi float64
	}{
		{quant.Scheme{Signed: true, Symmetric: true}, -1, 1},
		{quant.Scheme{}, -1, 1},
		{quant.Scheme{}, 0, 3}, // one-sided affine: 256 levels
		{quant.Scheme{Bits: 4, Signed: true, Symmetric: true}, -2, 2},
	} {
		x := make([]float32, 100000)
		for i := range x {
			x[i] = float32(tc.lo + (tc.hi-tc.lo)*r.Float64())
		}
		h := newHist(t, tc.s, quant.ObserverConfig{Kind: quant.KindEntropy})
		if err := h.Observe(x, nil); err != nil {
			t.Fatal(err)
		}
		lo, hi, _ := h.ClipRange()
		mn, mx, _ := h.Extrema()
		if a, m := max(-lo, hi), max(-mn, mx); a < 0.97*m {
			t.Errorf("%v on [%g, %g): amax %g, max |x| %g", tc.s, tc.lo, tc.hi, a, m)
		}
	}
}

// ReLU outputs: most values are exact zeros, the rest half-normal. The
// spike at zero must not drive entropy calibration to its smallest
// threshold (before entropyRange flattened it, 8-bit lenet activations were
// clipped to 1/8 of their range and the model fell to 11% accuracy), and an
// affine scheme gets a one-sided range with zero point 0.
func TestHistogramEntropyReLU(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	x := make([]float32, 200000)
	for i := range x {
		if r.Float64() < 0.6 {
			continue
		}
		x[i] = float32(math.Abs(r.NormFloat64()))
	}
	for _, bits := range []int{8, 4} {
		h := newHist(t, quant.Scheme{Bits: bits}, quant.ObserverConfig{Kind: quant.KindEntropy})
		if err := h.Observe(x, nil); err != nil {
			t.Fatal(err)
		}
		lo, hi, _ := h.ClipRange()
		// A half-normal's 99th percentile is 2.58; clipping far below the
		// bulk loses it. (TensorRT-style entropy clips the far tail only.)
		if lo != 0 || hi < 1.5 {
			t.Errorf("%d bits: range [%g, %g], want [0, >= 1.5]", bits, lo, hi)
		}
		p, err := h.Params()
		if err != nil || p.ZeroPoint[0] != 0 {
			t.Errorf("%d bits: params %+v, %v: want zero point 0", bits, p, err)
		}
	}
}

// histImage returns n values distributed as MNIST's normalised input,
// (p/255 - 0.1307)/0.3081 for 8-bit pixels p: 80% background (p = 0, the
// minimum), the strokes a third saturated (p = 253..255) and the rest
// uniform over the pixel levels.
func histImage(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		p := 0
		switch u := r.Float64(); {
		case u < 0.8:
		case u < 0.8+0.2/3:
			p = 253 + r.IntN(3)
		default:
			p = r.IntN(256)
		}
		x[i] = float32((float64(p)/255 - 0.1307) / 0.3081)
	}
	return x
}

// histSpikyReLU returns n values like lenet's first ReLU outputs on MNIST:
// 55% exact zeros, six spikes of 2.6% each between 0.06 and 0.62 (the
// channels' responses to the constant background) and an exponential tail
// of mean 0.8.
func histSpikyReLU(r *rand.Rand, n int) []float32 {
	spikes := []float32{0.0643, 0.1556, 0.1655, 0.2775, 0.5896, 0.6182}
	x := make([]float32, n)
	for i := range x {
		switch u := r.Float64(); {
		case u < 0.55:
		case u < 0.55+0.026*6:
			x[i] = spikes[int((u-0.55)/0.026)]
		default:
			x[i] = float32(r.ExpFloat64() * 0.8)
		}
	}
	return x
}

// Entropy calibration of spiky data, against the MSE method at 8, 6 and 4
// bits. The data are synthetic versions of what collapsed lenet
// (experiments/README.md, section 3): TensorRT's KL measured at the
// histogram's resolution made every spike cost more as the threshold
// grew, and chose [-0.42, 0.43] for the image (the strokes clipped onto
// the background: 16% of the values clipped, SQNR 2.4 dB) and 0.07 of 6.3
// for the 4-bit ReLU outputs (40% clipped, 0.4 dB). Entropy must now clip
// at most 0.1% of the values, and its SQNR must be within 2 dB of MSE's at
// 4 and 6 bits (measured: within 1.4 dB) and 8 dB at 8 bits (measured:
// 5.7 dB for the ReLU outputs, whose last ~12 values of 100000 it clips:
// KL counts how many values are clipped, not how far, and at 8 bits the
// clipped ones dominate the error).
func TestHistogramEntropySpikes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	data := map[string][]float32{"image": histImage(r, 100000), "spiky relu": histSpikyReLU(r, 100000)}
	for _, name := range []string{"image", "spiky relu"} {
		x := data[name]
		for _, bits := range []int{8, 6, 4} {
			s := quant.Scheme{Bits: bits}
			stats := map[string]quant.ErrorStats{}
			for _, kind := range []string{quant.KindMSE, quant.KindEntropy} {
				h := newHist(t, s, quant.ObserverConfig{Kind: kind})
				if err := h.Observe(x, nil); err != nil {
					t.Fatal(err)
				}
				p, err := h.Params()
				if err != nil {
					t.Fatal(err)
				}
				stats[kind] = quant.MeasureError(x, nil, p)
				lo, hi, _ := h.ClipRange()
				t.Logf("%s %d bits %-7s [%g, %g]: SQNR %.2f dB, clipped %.4f%%", name, bits, kind, lo, hi, stats[kind].SQNR, 100*stats[kind].Clipped)
			}
			e := stats[quant.KindEntropy]
			tol := 2.0
			if bits == 8 {
				tol = 8
			}
			if d := stats[quant.KindMSE].SQNR - e.SQNR; d > tol || e.Clipped > 0.001 {
				t.Errorf("%s %d bits: entropy SQNR %.2f dB (%.2f dB below MSE's), %.4f%% clipped", name, bits, e.SQNR, d, 100*e.Clipped)
			}
		}
	}
}

// All-zero input gives the params of [0, 0] (scale Eps) and a constant
// the params of [c, c], for every method and scheme, without error.
func TestHistogramDegenerate(t *testing.T) {
	for _, s := range histSchemes {
		for _, kind := range histKinds {
			for _, c := range []float32{0, 3.5, -2} {
				h := newHist(t, s, quant.ObserverConfig{Kind: kind})
				for range 2 {
					if err := h.Observe([]float32{c, c, c}, []int{3}); err != nil {
						t.Fatal(err)
					}
				}
				p, err := h.Params()
				want := quant.ParamsFromRange(s, c, c)
				if err != nil || !reflect.DeepEqual(p, want) {
					t.Errorf("%v %s constant %g: %+v, %v; want %+v", s, kind, c, p, err, want)
				}
				if c == 0 && p.Scale[0] != quant.Eps {
					t.Errorf("%v %s zeros: scale %g, want Eps", s, kind, p.Scale[0])
				}
			}
		}
	}
}

// Every method returns a range inside [min, max] and valid params, for
// every scheme, on skewed data of one or both signs.
func TestHistogramRangeInsideData(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	data := map[string][]float32{
		"skewed": append(histGaussian(r, 3000, 0.5), 9, 2.5, -0.75),
		"negative": func() []float32 {
			x := histGaussian(r, 3000, 1)
			for i := range x {
				x[i] = -float32(math.Abs(float64(x[i]))) - 0.5
			}
			return x
		}(),
	}
	for name, x := range data {
		for _, s := range histSchemes {
			for _, kind := range histKinds {
				h := newHist(t, s, quant.ObserverConfig{Kind: kind})
				if err := h.Observe(x, nil); err != nil {
					t.Fatal(err)
				}
				lo, hi, err := h.ClipRange()
				mn, mx, _ := h.Extrema()
				if err != nil || lo < mn || hi > mx || lo > hi {
					t.Errorf("%s %v %s: range [%g, %g], %v; data [%g, %g]", name, s, kind, lo, hi, err, mn, mx)
				}
				if p, err := h.Params(); err != nil || p.Validate() != nil {
					t.Errorf("%s %v %s: params %+v, %v", name, s, kind, p, err)
				}
			}
		}
	}
}

func TestHistogramConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		s         quant.Scheme
		cfg       quant.ObserverConfig
		errScheme bool
	}{
		{"percentile 50", quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindPercentile, Percentile: 50}, false},
		{"percentile 100.5", quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindPercentile, Percentile: 100.5}, false},
		{"percentile negative", quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindPercentile, Percentile: -99}, false},
		{"percentile NaN", quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindPercentile, Percentile: math.NaN()}, false},
		{"percentile on mse", quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindMSE, Percentile: 99}, false},
		{"percentile on entropy", quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindEntropy, Percentile: 99}, false},
		{"averaging on percentile", quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindPercentile, AveragingConstant: 0.1}, false},
		{"15 bins", quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindMSE, Bins: 15}, false},
		{"negative bins", quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindPercentile, Bins: -2048}, false},
		{"invalid scheme", quant.Scheme{Bits: 9}, quant.ObserverConfig{Kind: quant.KindMSE}, true},
	} {
		obs, err := quant.NewObserver(tc.s, tc.cfg)
		if err == nil || obs != nil {
			t.Errorf("%s: NewObserver gave %v, %v; want an error", tc.name, obs, err)
			continue
		}
		if tc.errScheme != errors.Is(err, quant.ErrScheme) {
			t.Errorf("%s: %v; wraps ErrScheme: %v, want %v", tc.name, err, errors.Is(err, quant.ErrScheme), tc.errScheme)
		}
		if _, err := quant.NewHistogram(tc.s, tc.cfg); err == nil {
			t.Errorf("%s: NewHistogram: no error", tc.name)
		}
	}
	if _, err := quant.NewHistogram(quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindMinMax}); err == nil {
		t.Error("NewHistogram of kind minmax: no error")
	}
	for _, cfg := range []quant.ObserverConfig{
		{Kind: quant.KindPercentile, Percentile: 100, Bins: quant.MinHistogramBins},
		{Kind: quant.KindPercentile, Percentile: 50.001},
		// Entropy calibration resamples the histogram to its own
		// resolution, so it needs no more bins than the other methods.
		{Kind: quant.KindEntropy, Bins: quant.MinHistogramBins},
		{Kind: quant.KindMSE, Bins: quant.MinHistogramBins},
	} {
		if _, err := quant.NewObserver(quant.Scheme{}, cfg); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// BenchmarkHistogramParams times Params on a full histogram of the
// default size (2048 bins; 8192 and 4096 for entropy), the cost of
// calibrating one quantizer.
func BenchmarkHistogramParams(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 7))
	x := make([]float32, 1<<16)
	for i := range x {
		x[i] = float32(r.Float64()*1.9 - 0.6)
	}
	for _, s := range []quant.Scheme{{}, {Signed: true, Symmetric: true}} {
		for _, kind := range histKinds {
			b.Run(s.String()+"/"+kind, func(b *testing.B) {
				h, err := quant.NewHistogram(s, quant.ObserverConfig{Kind: kind})
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Observe(x, nil); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := h.Params(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	x := histGaussian(rand.New(rand.NewPCG(8, 8)), 1<<20, 1)
	h, err := quant.NewHistogram(quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindMSE})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4 << 20)
	for b.Loop() {
		if err := h.Observe(x, nil); err != nil {
			b.Fatal(err)
		}
	}
}
