package quant

// Histogram observers: percentile, MSE and entropy calibration.
//
// A Histogram keeps an exact, signed histogram of everything it observed and
// chooses a clipping range from it when Params is called. Its invariants:
//
//   - Bin width is w = 2^e for an integer e, and bin k covers [k*w, (k+1)*w).
//     Bin indices are floor(x/w), computed exactly (x is a float32 and w a
//     power of two, so x/w is exact in float64).
//   - The bins cover [min(0, min), max(0, max)] of the data: bin 0 is always
//     present, because every range this package produces contains 0.
//   - There are at most Bins bins. When new data would need more, w doubles
//     as often as needed, bin k merging into bin floorDiv(k, 2) each time; a
//     value never changes bin except by such a merge, so counts are never
//     lost or estimated: they sum to the number of values observed. w is
//     always the smallest power of two that fits the range in Bins bins, so
//     the range spans more than Bins/2 bins.
//   - Until a nonzero value arrives w is unknown; zeros are counted in bin 0,
//     which is bin 0 at every width.
//   - The exact minimum and maximum are tracked besides the bins, and no
//     method returns a range wider than [min, max].
//
// The methods, each returning the range [lo, hi] given to ParamsFromRange:
//
//   - percentile: the p-th percentile of |x| for symmetric schemes
//     (lo = -hi), the (100-p)-th and p-th percentiles of x for affine ones,
//     with the mass of a bin spread uniformly over it (linear interpolation
//     of the cumulative histogram). It minimises nothing: it drops a fixed
//     share of the mass at each end.
//   - mse: the range whose params minimise the expected squared error of
//     fake quantization, with the mass of each bin spread uniformly over the
//     bin (clipped to [min, max]) and the error integrated exactly against
//     the quantizer's staircase: the same grid, zero point and clamp as
//     FakeQuantize; rounding ties have no mass. (Representing each bin by
//     its centre instead is biased once outliers make bins about as wide as
//     a quantization step: its error vanishes whenever the centres fall on
//     the grid.) Symmetric schemes and
//     one-sided data search one fraction of the extreme (a 128-point grid
//     refined twice), affine schemes with data of both signs search the
//     fractions of min and max (a 16x16 grid refined twice).
//   - entropy: TensorRT's calibration, minimising the KL divergence between
//     the clipped histogram and its quantized version, with three changes
//     that keep it from collapsing on spiky data at low bit widths (see
//     klHist.divergence). The divergence is measured at a fixed resolution
//     of 8 sub-bins per quantization level, not at the histogram's: at the
//     histogram's resolution a spike (a value repeated many times, as an
//     image's background and every channel's response to it) costs more
//     the more bins a level spans, which drove the threshold to its
//     smallest candidate, L bins for L levels: at 4 bits, 16 bins of 2048
//     (lenet's activations clipped to 1% of their range, 11% accuracy). The
//     histogram is finer by default (EntropyBinsPerLevel) so that those
//     sub-bins are real bins, and the first and last non-empty bins are
//     flattened to their neighbour's count (pytorch-quantization's
//     hist[0] = hist[1] for a ReLU's zeros, here at both ends and for any
//     spike there) while clipping them still costs their mass. Affine
//     schemes with data of both signs search [lo, hi] on the signed
//     histogram with all 2^bits levels, as mse does, instead of a
//     symmetric [-a, a] of the magnitudes (which folded MNIST's background
//     at -0.42 onto its strokes and clipped the strokes away); symmetric
//     schemes and one-sided data search a threshold of the magnitudes.
//     Like TensorRT's, the divergence counts how much mass is clipped, not
//     how far: it clips a far sparse tail that MSE keeps.
//
// Costs, with B = Bins and n values: Observe is O(n + B) time (the B for a
// merge) and the histogram O(B) memory (B = 8192 for an 8-bit affine
// entropy observer, 2048 otherwise by default); Params is O(B) for
// percentile, O(C*B) for mse with C ~ 160 (one-dimensional) or ~420
// (two-dimensional) candidate ranges, and O(B + C*8*L) for entropy with L
// quantization levels. At the default sizes each Params takes milliseconds,
// the most (around 10-20 ms on a loaded 2-core Xeon) for entropy on 8-bit
// affine data of both signs: ~420 candidates of 2048 sub-bins.
// HistogramPerChannel costs that per channel.

import (
	"fmt"
	"math"
	"math/bits"
)

// Defaults and limits of the histogram observers' ObserverConfig fields.
const (
	// DefaultHistogramBins is the histogram size when ObserverConfig.Bins
	// is 0, TensorRT's; entropy calibration uses more if
	// EntropyBinsPerLevel asks for more.
	DefaultHistogramBins = 2048
	// EntropyBinsPerLevel is the default size of an entropy histogram, in
	// bins per quantization level (256 for 8-bit affine, 128 for 8-bit
	// symmetric schemes: 8192 and 4096 bins): enough for entropySubBins
	// bins of the histogram per level at thresholds down to half the
	// range, since the range spans more than half the bins.
	EntropyBinsPerLevel = 32
	// MinHistogramBins is the smallest histogram size accepted.
	MinHistogramBins = 16
	// DefaultPercentile is the percentile kept when
	// ObserverConfig.Percentile is 0.
	DefaultPercentile = 99.99
)

// Histogram is the percentile, MSE and entropy observer. It records an
// exact histogram of the observed values, at most Bins bins whose edges are
// multiples of a power-of-two width covering [min(0, min), max(0, max)]
// (the width doubles, merging bin pairs, as the range grows), plus the exact
// min and max; when Params is called it chooses a clipping range inside
// [min, max] with the method of its kind (see the comment at the top of
// histogram.go). It is per tensor (HistogramPerChannel keeps one per
// channel), and not safe for concurrent use.
type Histogram struct {
	scheme     Scheme
	kind       string
	maxBins    int
	percentile float64

	n        int64   // values observed
	min, max float32 // exact extrema; valid when n > 0
	sized    bool    // whether exp is known: false while every value was 0
	exp      int     // the bin width is 2^exp
	first    int64   // bin index of counts[0]
	counts   []int64 // counts of bins first .. first+len(counts)-1
}

var _ Observer = (*Histogram)(nil)

func newHistogramObserver(s Scheme, kind string, cfg ObserverConfig) (Observer, error) {
	cfg.Kind = kind
	if s.PerChannel {
		h, err := NewHistogramPerChannel(s, cfg)
		if err != nil {
			return nil, err
		}
		return h, nil
	}
	h, err := NewHistogram(s, cfg)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// NewHistogram returns a histogram observer for s. cfg.Kind must be
// KindPercentile, KindMSE or KindEntropy; cfg.Bins (0: DefaultHistogramBins,
// for entropy EntropyBinsPerLevel per quantization level if that is more)
// must be at least MinHistogramBins; cfg.Percentile (0: DefaultPercentile)
// must be in (50, 100] and is only for KindPercentile. s must be valid and
// per tensor.
func NewHistogram(s Scheme, cfg ObserverConfig) (*Histogram, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	kind := cfg.Kind
	switch kind {
	case KindPercentile, KindMSE, KindEntropy:
	default:
		return nil, fmt.Errorf("histogram observer of kind %q (want %s, %s or %s)", kind, KindPercentile, KindMSE, KindEntropy)
	}
	if s.PerChannel {
		return nil, fmt.Errorf("%w: NewHistogram takes per-tensor schemes, got %v (per channel: NewHistogramPerChannel)", ErrScheme, s)
	}
	if cfg.AveragingConstant != 0 {
		return nil, fmt.Errorf("averaging constant set for observer %q, which does not average", kind)
	}
	if cfg.Percentile != 0 && kind != KindPercentile {
		return nil, fmt.Errorf("percentile set for observer %q", kind)
	}
	h := &Histogram{scheme: s, kind: kind, maxBins: cfg.Bins, percentile: cfg.Percentile}
	if h.maxBins == 0 {
		h.maxBins = DefaultHistogramBins
		if kind == KindEntropy {
			h.maxBins = max(h.maxBins, EntropyBinsPerLevel*entropyLevels(s))
		}
	}
	if h.maxBins < MinHistogramBins {
		return nil, fmt.Errorf("observer %q: %d bins, want at least %d", kind, h.maxBins, MinHistogramBins)
	}
	if kind == KindPercentile {
		if h.percentile == 0 {
			h.percentile = DefaultPercentile
		}
		if !(h.percentile > 50 && h.percentile <= 100) {
			return nil, fmt.Errorf("observer %q: percentile %g outside (50, 100]", kind, h.percentile)
		}
	}
	return h, nil
}

// Scheme returns the scheme the params are chosen for.
func (h *Histogram) Scheme() Scheme { return h.scheme }

// Kind returns the calibration method: KindPercentile, KindMSE or
// KindEntropy.
func (h *Histogram) Kind() string { return h.kind }

// Reset forgets everything observed; the configuration stays.
func (h *Histogram) Reset() {
	h.n, h.min, h.max, h.sized, h.exp, h.first, h.counts = 0, 0, 0, false, 0, 0, nil
}

// Count returns the number of values observed since the last Reset.
func (h *Histogram) Count() int64 { return h.n }

// Extrema returns the exact minimum and maximum observed, and false if
// nothing was.
func (h *Histogram) Extrema() (min, max float32, ok bool) {
	return h.min, h.max, h.n > 0
}

// Counts returns a copy of the histogram: counts[i] is the number of values
// in [(first+i)*width, (first+i+1)*width). While only zeros were observed
// width is 0 and counts holds the one bin of 0. Before any data counts is
// nil.
func (h *Histogram) Counts() (first int64, width float64, counts []int64) {
	if h.sized {
		width = math.Ldexp(1, h.exp)
	}
	return h.first, width, append([]int64(nil), h.counts...)
}

// Observe adds x to the histogram. shape may be nil; otherwise it must hold
// len(x) elements. Empty input is ignored; NaN or Inf is an error wrapping
// ErrNonFinite, and leaves the observer unchanged.
func (h *Histogram) Observe(x []float32, shape []int) error {
	if len(x) == 0 {
		return nil
	}
	if h.maxBins == 0 {
		panic("quant: Histogram not made by NewHistogram")
	}
	if err := checkShape(shape, len(x), shape == nil); err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	lo, hi, err := extrema(x)
	if err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	if h.n > 0 {
		lo, hi = min(lo, h.min), max(hi, h.max)
	}
	h.cover(lo, hi)
	if h.sized {
		inv := math.Ldexp(1, -h.exp)
		c := h.counts
		for _, v := range x {
			c[int64(math.Floor(float64(v)*inv))-h.first]++
		}
	} else {
		h.counts[0] += int64(len(x))
	}
	h.n += int64(len(x))
	h.min, h.max = lo, hi
	return nil
}

// cover makes the bins cover [min(lo, 0), max(hi, 0)], choosing the width
// at the first nonzero value and doubling it as needed afterwards. lo and hi
// include the extrema seen before.
func (h *Histogram) cover(lo, hi float32) {
	if h.counts == nil {
		h.first, h.counts = 0, []int64{0}
	}
	if lo == 0 && hi == 0 {
		return // only zeros so far: bin 0 at any width
	}
	// A range r needs at least r/2^e bins: start from an e where that
	// exceeds maxBins (so no smaller e fits, and bin indices stay small)
	// and widen until the range fits.
	r := float64(max(hi, 0)) - float64(min(lo, 0))
	e := math.Ilogb(r) - (bits.Len(uint(h.maxBins)) - 1) - 2
	if h.sized {
		e = max(e, h.exp)
	}
	kmin, kmax := binRange(lo, hi, e)
	for kmax-kmin+1 > int64(h.maxBins) {
		e++
		kmin, kmax = kmin>>1, kmax>>1
	}
	d := 0 // merges: bin k at the old width is bin k>>d at the new one
	if h.sized {
		d = e - h.exp
		if d == 0 && kmin == h.first && kmax == h.first+int64(len(h.counts))-1 {
			return
		}
	}
	counts := make([]int64, kmax-kmin+1)
	for i, c := range h.counts {
		if c != 0 {
			counts[((h.first+int64(i))>>d)-kmin] += c
		}
	}
	h.first, h.counts, h.exp, h.sized = kmin, counts, e, true
}

// binRange returns the first and last bin at width 2^e of a range from lo
// to hi widened to include 0.
func binRange(lo, hi float32, e int) (kmin, kmax int64) {
	inv := math.Ldexp(1, -e)
	kmin = min(0, int64(math.Floor(float64(lo)*inv)))
	kmax = max(0, int64(math.Floor(float64(hi)*inv)))
	return kmin, kmax
}

// Params returns ParamsFromRange of the clipping range ClipRange chooses,
// or an error wrapping ErrNoData before any data.
func (h *Histogram) Params() (Params, error) {
	lo, hi, err := h.ClipRange()
	if err != nil {
		return Params{}, err
	}
	return ParamsFromRange(h.scheme, lo, hi), nil
}

// ClipRange returns the range [lo, hi] the observer's method chooses, inside
// the observed [min, max], or an error wrapping ErrNoData before any data.
// For symmetric schemes the range is [max(min, -a), min(max, a)] for the
// chosen magnitude a, which gives the same params as [-a, a].
func (h *Histogram) ClipRange() (lo, hi float32, err error) {
	if h.n == 0 {
		return 0, 0, ErrNoData
	}
	if !h.sized || h.min == h.max {
		// All zeros, or a constant: nothing to clip.
		return h.min, h.max, nil
	}
	var l, u float64
	switch h.kind {
	case KindPercentile:
		l, u = h.percentileRange()
	case KindMSE:
		l, u = h.mseRange()
	case KindEntropy:
		l, u = h.entropyRange()
	default:
		panic("quant: histogram observer of unknown kind " + h.kind)
	}
	// float32 rounding is monotone, so lo and hi stay inside [min, max].
	lo = float32(max(l, float64(h.min)))
	hi = float32(min(u, float64(h.max)))
	return lo, hi, nil
}

func (h *Histogram) width() float64 { return math.Ldexp(1, h.exp) }

// amax returns the largest magnitude observed.
func (h *Histogram) amax() float64 { return max(-float64(h.min), float64(h.max)) }

// magnitudes folds the signed histogram into one of |x|: bin k >= 0 stays
// bin k, bin k < 0 (values in [k*w, (k+1)*w)) becomes bin -(k+1), whose
// magnitudes lie in ((-k-1)*w, -k*w]. Trailing empty bins are dropped.
func (h *Histogram) magnitudes() []int64 {
	last := h.first + int64(len(h.counts)) - 1
	m := make([]int64, max(last+1, -h.first))
	for i, c := range h.counts {
		if k := h.first + int64(i); k >= 0 {
			m[k] += c
		} else {
			m[-(k + 1)] += c
		}
	}
	for len(m) > 0 && m[len(m)-1] == 0 {
		m = m[:len(m)-1]
	}
	return m
}

// quantile returns the value of rank t (0 <= t <= total count) of counts
// whose bin i covers [start+i*w, start+(i+1)*w), the mass of each bin
// spread uniformly over it.
func quantile(counts []int64, start, w, t float64) float64 {
	cum := 0.0
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if f := float64(c); cum+f >= t {
			return start + (float64(i)+(t-cum)/f)*w
		}
		cum += float64(c)
	}
	return start + float64(len(counts))*w
}

func (h *Histogram) percentileRange() (lo, hi float64) {
	if h.percentile == 100 {
		return float64(h.min), float64(h.max)
	}
	q, n, w := h.percentile/100, float64(h.n), h.width()
	if h.scheme.Symmetric {
		a := min(quantile(h.magnitudes(), 0, w, q*n), h.amax())
		return -a, a
	}
	start := float64(h.first) * w
	return quantile(h.counts, start, w, (1-q)*n), quantile(h.counts, start, w, q*n)
}

// massBin is the mass of one histogram bin, spread over [a, b].
type massBin struct{ a, b, count float64 }

// massBins returns the non-empty bins, each clipped to [min, max].
func (h *Histogram) massBins() []massBin {
	w, lo, hi := h.width(), float64(h.min), float64(h.max)
	var m []massBin
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		a := float64(h.first+int64(i)) * w
		m = append(m, massBin{max(a, lo), min(a+w, hi), float64(c)})
	}
	return m
}

// expectedSSE returns the expected summed squared error of fake quantizing
// the mass of bins with scale s and zero point zp: each bin's count times
// the mean of (x - FakeQuantize(x))^2 over its interval, integrated exactly
// (a bin of zero width is evaluated at its point with the real rounding).
func expectedSSE(bins []massBin, s float32, zp, qmin, qmax int32) float64 {
	inv := 1 / s
	S := float64(s)
	loV := float64(float32(qmin-zp) * s) // value of the code qmin
	hiV := float64(float32(qmax-zp) * s)
	A := (float64(qmin-zp) - 0.5) * S // below A, codes clamp to qmin
	B := (float64(qmax-zp) + 0.5) * S // above B, to qmax
	S3 := S * S * S
	total := 0.0
	for _, m := range bins {
		a, b := m.a, m.b
		if !(b > a) {
			x := float32(a)
			q, _ := Code(x, inv, zp, qmin, qmax)
			d := float64(x) - float64(float32(q-zp)*s)
			total += m.count * d * d
			continue
		}
		t := 0.0
		if a < A {
			t += squareIntegral(a, min(b, A), loV)
		}
		if b > B {
			t += squareIntegral(max(a, B), b, hiV)
		}
		if m1, m2 := max(a, A), min(b, B); m1 < m2 {
			t += S3 * (sawIntegral(m2/S) - sawIntegral(m1/S))
		}
		total += m.count * t / (b - a)
	}
	return total
}

// squareIntegral returns the integral of (x-v)^2 over [a, b].
func squareIntegral(a, b, v float64) float64 {
	p, q := a-v, b-v
	return (b - a) * (p*p + p*q + q*q) / 3
}

// sawIntegral is an antiderivative of (u - round(u))^2: each unit period
// contributes 1/12.
func sawIntegral(u float64) float64 {
	n := math.Floor(u + 0.5)
	t := u - n
	return n/12 + (t*t*t+0.125)/3
}

func (h *Histogram) mseRange() (lo, hi float64) {
	bins := h.massBins()
	s := h.scheme
	mn, mx := float64(h.min), float64(h.max)
	cost := func(l, u float64) float64 {
		scale, zp := rangeParams(s, float32(l), float32(u))
		return expectedSSE(bins, scale, zp, s.QMin(), s.QMax())
	}
	switch {
	case s.Symmetric:
		a := h.amax()
		f := search1(func(f float64) float64 { return cost(-f*a, f*a) })
		return -f * a, f * a
	case mn >= 0:
		f := search1(func(f float64) float64 { return cost(mn, f*mx) })
		return mn, f * mx
	case mx <= 0:
		f := search1(func(f float64) float64 { return cost(f*mn, mx) })
		return f * mn, mx
	}
	fl, fu := search2(func(fl, fu float64) float64 { return cost(fl*mn, fu*mx) })
	return fl * mn, fu * mx
}

// search1 returns the f in (0, 1] minimising cost: a grid of 128 points
// from 1 down, so that ties keep the widest range, then two refinements
// with 1/8 of the step around the best.
func search1(cost func(f float64) float64) float64 {
	const n, sub = 128, 8
	best, bestCost := 1.0, cost(1)
	for i := n - 1; i >= 1; i-- {
		f := float64(i) / n
		if c := cost(f); c < bestCost {
			best, bestCost = f, c
		}
	}
	step := 1.0 / n
	for range 2 {
		step /= sub
		centre := best
		for j := sub; j >= -sub; j-- {
			f := centre + float64(j)*step
			if j == 0 || f <= 0 || f > 1 {
				continue
			}
			if c := cost(f); c < bestCost {
				best, bestCost = f, c
			}
		}
	}
	return best
}

// search2 is search1 in two dimensions: a 16x16 grid of (0, 1]^2, then two
// refinements with 1/4 of the step around the best.
func search2(cost func(fl, fu float64) float64) (float64, float64) {
	const n, sub = 16, 4
	bl, bu := 1.0, 1.0
	bestCost := cost(1, 1)
	for i := n; i >= 1; i-- {
		for j := n; j >= 1; j-- {
			if i == n && j == n {
				continue
			}
			fl, fu := float64(i)/n, float64(j)/n
			if c := cost(fl, fu); c < bestCost {
				bl, bu, bestCost = fl, fu, c
			}
		}
	}
	step := 1.0 / n
	for range 2 {
		step /= sub
		cl, cu := bl, bu
		for i := sub; i >= -sub; i-- {
			for j := sub; j >= -sub; j-- {
				fl, fu := cl+float64(i)*step, cu+float64(j)*step
				if i == 0 && j == 0 || fl <= 0 || fl > 1 || fu <= 0 || fu > 1 {
					continue
				}
				if c := cost(fl, fu); c < bestCost {
					bl, bu, bestCost = fl, fu, c
				}
			}
		}
	}
	return bl, bu
}

// entropyLevels returns the number of quantization levels over the range
// of s: 1 << bits for an affine scheme, which spends every code on
// [lo, hi] (pytorch-quantization's unsigned case, here also for data of
// both signs), and 1 << (bits-1) over [0, a] for a symmetric one.
func entropyLevels(s Scheme) int {
	if s.Symmetric {
		return 1 << (s.NumBits() - 1)
	}
	return 1 << s.NumBits()
}

// entropyRange returns the range of least divergence (see
// klHist.divergence). Symmetric schemes and one-sided data search one
// threshold a of the magnitude histogram (search1 over fractions of the
// largest magnitude) and get [-a, a], [0, a] or [-a, 0]; affine schemes
// with data of both signs search [fl*min, fu*max] on the signed histogram
// (search2), as mseRange does.
func (h *Histogram) entropyRange() (lo, hi float64) {
	w, levels := h.width(), entropyLevels(h.scheme)
	mn, mx := float64(h.min), float64(h.max)
	if !h.scheme.Symmetric && mn < 0 && mx > 0 {
		c := newKLHist(h.counts, float64(h.first)*w, w, mn, mx)
		fl, fu := search2(func(fl, fu float64) float64 { return c.divergence(fl*mn, fu*mx, levels) })
		return fl * mn, fu * mx
	}
	// The smallest magnitude is min or -max for one-sided data; for data of
	// both signs 0 is close enough (bin 0 starts there).
	a := h.amax()
	c := newKLHist(h.magnitudes(), 0, w, max(mn, -mx, 0), a)
	a *= search1(func(f float64) float64 { return c.divergence(0, f*a, levels) })
	switch {
	case h.min >= 0:
		return 0, a
	case h.max <= 0:
		return -a, 0
	}
	return -a, a
}

// entropySubBins is the resolution at which the entropy method compares
// distributions, in sub-bins per quantization level: between the 1 and 16
// bins per level of TensorRT's 8-bit candidates (128 levels, thresholds
// of 128 to 2048 bins). On lenet's MNIST activations at 8, 6 and 4 bits, 8
// was the best of 4, 8 and 16 overall: every range within 3 dB of MSE's
// SQNR, where 4 lost 1.3 dB more on the first layer at 4 bits and 16 lost
// 3 dB more on it at 6 bits.
const entropySubBins = 8

// entropySmoothing is the count given to an empty bin of Q where P has
// mass, as MXNet's and TVM's _smooth_distribution (eps = 0.0001).
const entropySmoothing = 1e-4

// klHist is a histogram as the entropy method reads it: bin i covers
// [start+i*w, start+(i+1)*w) clipped to the data's [lo, hi], with its mass
// spread uniformly over that interval (as massBins), and all[i] and
// flat[i] are the counts of the bins before i, in flat with the first and
// the last non-empty bin flattened: each holds at most its inner
// neighbour's count.
type klHist struct {
	start, w, lo, hi float64
	all, flat        []float64
}

func newKLHist(counts []int64, start, w, lo, hi float64) *klHist {
	n := len(counts)
	c := &klHist{start: start, w: w, lo: lo, hi: hi, all: make([]float64, n+1), flat: make([]float64, n+1)}
	first, last := 0, n-1
	for first < last && counts[first] == 0 {
		first++
	}
	for last > first && counts[last] == 0 {
		last--
	}
	for i, k := range counts {
		f := k
		switch {
		case first == last:
		case i == first:
			f = min(k, counts[i+1])
		case i == last:
			f = min(k, counts[i-1])
		}
		c.all[i+1] = c.all[i] + float64(k)
		c.flat[i+1] = c.flat[i] + float64(f)
	}
	return c
}

// at returns the mass of cum (all or flat) below x. It is monotone in x
// and constant inside an empty bin, so sub-bins there get exactly 0.
func (c *klHist) at(cum []float64, x float64) float64 {
	nb := len(cum) - 1
	switch {
	case x <= c.lo:
		return 0
	case x >= c.hi:
		return cum[nb]
	}
	j := min(max(int(math.Floor((x-c.start)/c.w)), 0), nb-1)
	d := cum[j+1] - cum[j]
	if d == 0 {
		return cum[j]
	}
	a := c.start + float64(j)*c.w
	a, b := max(a, c.lo), min(a+c.w, c.hi)
	return cum[j] + (x-a)/(b-a)*d
}

// divergence is TensorRT's entropy criterion (Migacz, "8-bit Inference
// with TensorRT", GTC 2017; MXNet's _get_optimal_threshold; NVIDIA
// pytorch-quantization's _compute_amax_entropy) for the range [lo, hi]
// quantized to levels equal levels over it, measured at a fixed
// resolution of entropySubBins sub-bins per level:
//
//   - P is the flattened histogram over [lo, hi] cut into
//     levels*entropySubBins sub-bins, with the mass clipped below lo and
//     above hi (of the histogram before flattening) added to the first and
//     the last sub-bin;
//   - Q merges the sub-bins of each level, without the clipped mass, and
//     spreads the level's sum evenly over the level's sub-bins where P is
//     non-zero (MXNet's mask); a sub-bin where P > 0 but the level holds
//     nothing (only clipped mass) gets Q = entropySmoothing counts, MXNet's
//     smoothing;
//   - it returns KL(P||Q) of the normalised distributions, computed as
//     (sum P log P - sum P log Q)/sum(P) - log sum(P) + log sum(Q); 0 when
//     P is empty (nothing to lose), +Inf when Q is (everything clipped: a
//     range that holds none of the data).
//
// TensorRT compares the thresholds at the histogram's own resolution:
// the threshold of i bins has i/levels bins per level. A value repeated
// many times (a spike: an image's constant background, every channel's
// response to it) then costs its share of the mass times the log of the
// bins of its level, a cost growing with the threshold, so spiky data
// choose the smallest threshold, where a level is one bin. That is
// levels bins, 1/8 of the range at 8 bits but 1/128 at 4 bits (lenet's
// first activations at 4 bits: 0.07 of 6.3). At a fixed number of
// sub-bins per level a spike costs about the same at every threshold (as
// long as a sub-bin spans a bin of the histogram, which the default
// EntropyBinsPerLevel provides down to half the range), and the thresholds
// compete on the clipped mass and on the shape of the smooth part within
// the levels. The end bins are flattened (the zero bin
// of a magnitude histogram is pytorch-quantization's hist[0] = hist[1]):
// a spike at an end of the range (a ReLU's zeros, an image's background)
// falls on one code; flattening removes its cost inside the range while
// clipping it still costs its full mass.
func (c *klHist) divergence(lo, hi float64, levels int) float64 {
	const k = entropySubBins
	below := c.at(c.all, lo)
	above := c.all[len(c.all)-1] - c.at(c.all, hi)
	step := (hi - lo) / float64(levels*k)
	first := c.at(c.flat, lo)
	prev := first
	var p [k]float64
	var plogp, plogq, sumQ float64
	for g := range levels {
		sum := 0.0
		for j := range p {
			e := hi
			if g < levels-1 || j < k-1 {
				e = lo + float64(g*k+j+1)*step
			}
			v := c.at(c.flat, e)
			p[j], prev = v-prev, v
			sum += p[j]
		}
		if g == 0 {
			p[0] += below
		}
		if g == levels-1 {
			p[k-1] += above
		}
		mass, nnz := 0.0, 0
		for _, v := range p {
			if v > 0 {
				plogp += v * math.Log(v)
				mass += v
				nnz++
			}
		}
		switch {
		case nnz == 0:
		case sum > 0:
			plogq += mass * math.Log(sum/float64(nnz))
		default: // only clipped mass, in one end sub-bin
			plogq += mass * math.Log(entropySmoothing)
			sumQ += entropySmoothing
		}
	}
	in := prev - first
	total := below + in + above
	switch {
	case total == 0:
		return 0
	case in == 0:
		return math.Inf(1)
	}
	return (plogp-plogq)/total - math.Log(total) + math.Log(sumQ+in)
}
