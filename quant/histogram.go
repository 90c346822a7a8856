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
//     the clipped magnitude histogram and its quantized version (see
//     entropyAmax). The threshold is at least L bins (L quantization
//     levels), so when a few far outliers squeeze the bulk of the data into
//     fewer bins it cannot clip tighter than L*w.
//
// Costs, with B = Bins and n values: Observe is O(n + B) time (the B for a
// merge) and the histogram O(B) memory; Params is O(B) for percentile,
// O(C*B) for mse with C ~ 160 (one-dimensional) or ~420 (two-dimensional)
// candidate ranges, and O(B*L) for entropy with L quantization levels,
// thanks to prefix sums. At B = 2048 each Params takes a few milliseconds.

import (
	"fmt"
	"math"
	"math/bits"
)

// Defaults and limits of the histogram observers' ObserverConfig fields.
const (
	// DefaultHistogramBins is the histogram size when ObserverConfig.Bins
	// is 0, TensorRT's.
	DefaultHistogramBins = 2048
	// MinHistogramBins is the smallest histogram size accepted. Entropy
	// calibration needs at least 2^(bits+1) bins: twice the quantization
	// levels of a one-sided affine range.
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
// histogram.go). It is per tensor only, and not safe for concurrent use.
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
	h, err := NewHistogram(s, cfg)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// NewHistogram returns a histogram observer for s. cfg.Kind must be
// KindPercentile, KindMSE or KindEntropy; cfg.Bins (0: DefaultHistogramBins)
// must be at least MinHistogramBins, and for entropy at least 2^(bits+1);
// cfg.Percentile (0: DefaultPercentile) must be in (50, 100] and is only for
// KindPercentile. s must be valid and per tensor.
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
		return nil, fmt.Errorf("%w: observer %q is per tensor only, got %v", ErrScheme, kind, s)
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
	}
	if h.maxBins < MinHistogramBins {
		return nil, fmt.Errorf("observer %q: %d bins, want at least %d", kind, h.maxBins, MinHistogramBins)
	}
	if need := 2 << s.NumBits(); kind == KindEntropy && h.maxBins < need {
		return nil, fmt.Errorf("observer %q: %d bins, want at least %d for %d-bit codes", kind, h.maxBins, need, s.NumBits())
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

// entropyLevels returns the number of quantization levels over [0, amax]:
// pytorch-quantization's 1 << (bits - 1 + unsigned), where a range is
// unsigned when an affine scheme can spend every code on one sign because
// the data have one sign.
func (h *Histogram) entropyLevels() int {
	b := h.scheme.NumBits()
	if !h.scheme.Symmetric && (h.min >= 0 || h.max <= 0) {
		return 1 << b
	}
	return 1 << (b - 1)
}

// entropyRange returns [-a, a] for the entropy threshold a, or the observed
// range if the magnitude histogram has fewer bins than levels. That cannot
// happen with the Bins NewHistogram accepts (the range spans more than
// Bins/2 bins, so one-sided data more than 2^bits magnitude bins and data
// of both signs more than 2^(bits-1)), but costs nothing to handle.
//
// The first magnitude bin's count is replaced by the second's, as
// pytorch-quantization's _compute_amax_entropy does: after a ReLU most
// values are exact zeros, and that spike alone made the divergence favour
// the smallest threshold (lenet's activations calibrated to 1/8 of their
// range at 8 bits and 11% accuracy, experiments/03). One-sided data get a
// one-sided range, so that an affine scheme spends every code on it.
func (h *Histogram) entropyRange() (lo, hi float64) {
	m := h.magnitudes()
	n := h.n
	if len(m) > 1 {
		n += m[1] - m[0]
		m[0] = m[1]
	}
	a, ok := entropyAmax(m, n, h.entropyLevels())
	if !ok {
		return float64(h.min), float64(h.max)
	}
	a = min(a*h.width(), h.amax())
	switch {
	case h.min >= 0:
		return 0, a
	case h.max <= 0:
		return -a, 0
	}
	return -a, a
}

// entropySmoothing is the count given to an empty bin of Q where P has
// mass, as MXNet's and TVM's _smooth_distribution (eps = 0.0001).
const entropySmoothing = 1e-4

// entropyAmax is TensorRT's entropy calibration (Migacz, "8-bit Inference
// with TensorRT", GTC 2017; MXNet's _get_optimal_threshold; NVIDIA
// pytorch-quantization's _compute_amax_entropy) on the magnitude histogram
// hist of total count n, quantized to levels levels. For each candidate
// threshold i from levels to len(hist):
//
//   - P is hist[:i] with the outlier mass sum(hist[i:]) added to P[i-1];
//   - Q merges hist[:i] (without the outliers) into levels groups, bin j in
//     group floor(j*levels/i) as numpy.digitize over linspace(0, i, levels+1)
//     does, and spreads each group's sum evenly over the group's bins where
//     P is non-zero (MXNet's mask; pytorch-quantization's mask ignores the
//     outliers, making KL infinite there);
//   - a bin where P > 0 but Q = 0 (the outliers fall in an empty last group)
//     gets Q = entropySmoothing counts, MXNet's smoothing; zero bins of P add
//     nothing to KL(P||Q), so P needs none;
//   - KL(P||Q) of the normalised distributions is computed from prefix sums
//     as (sum P log P - sum P log Q)/sum(P) - log sum(P) + log sum(Q),
//     O(levels) per candidate.
//
// The i of least divergence wins, the largest on ties (as
// pytorch-quantization's last argmin). It returns i in bin widths: the
// upper edge of the last bin kept, pytorch-quantization's
// calib_bin_edges[i], rather than TensorRT's (i+0.5): P is exactly the
// histogram of min(|x|, i*w), so i*w is the threshold the divergence was
// computed for. (entropyRange replaces hist[0] by hist[1] before calling
// it.) ok is false if hist has fewer than levels bins, where no candidate
// exists.
func entropyAmax(hist []int64, n int64, levels int) (amax float64, ok bool) {
	nb := len(hist)
	if nb < levels || n <= 0 {
		return 0, false
	}
	// H[j] = sum(hist[:j]), NZ[j] = #non-zero in hist[:j], HL[j] = sum h log h.
	H := make([]float64, nb+1)
	NZ := make([]int, nb+1)
	HL := make([]float64, nb+1)
	for j, c := range hist {
		f := float64(c)
		H[j+1], NZ[j+1], HL[j+1] = H[j]+f, NZ[j], HL[j]
		if c > 0 {
			NZ[j+1]++
			HL[j+1] += f * math.Log(f)
		}
	}
	total := float64(n)
	logTotal := math.Log(total)
	L := levels
	best, bestKL := nb, math.Inf(1)
	for i := L; i <= nb; i++ {
		outliers := H[nb] - H[i]
		last := float64(hist[i-1]) + outliers // P[i-1]
		plogp := HL[i-1]
		if last > 0 {
			plogp += last * math.Log(last)
		}
		plogq, sumQ := 0.0, H[i]
		for g := 0; g < L; g++ {
			s, e := (g*i+L-1)/L, ((g+1)*i+L-1)/L
			hs := H[e] - H[s]
			nnz, ps := NZ[e]-NZ[s], hs
			if e == i {
				nnz, ps = NZ[i-1]-NZ[s], hs+outliers
				if last > 0 {
					nnz++
				}
			}
			switch {
			case nnz == 0:
			case hs > 0:
				plogq += ps * math.Log(hs/float64(nnz))
			default: // only P[i-1] > 0, from the outliers
				plogq += last * math.Log(entropySmoothing)
				sumQ += entropySmoothing
			}
		}
		kl := (plogp-plogq)/total - logTotal + math.Log(sumQ)
		if kl <= bestKL {
			best, bestKL = i, kl
		}
	}
	return float64(best), true
}
