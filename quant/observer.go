package quant

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"qat/internal/par"
)

// An Observer watches the tensors a quantizer sees and chooses its Params.
// Observers copy what they keep; they never retain x.
type Observer interface {
	// Observe records x, a tensor of the given row-major shape (shape may be
	// nil for a per-tensor scheme). Empty input is ignored. NaN or Inf in x
	// is an error wrapping ErrNonFinite, and leaves the observer unchanged.
	Observe(x []float32, shape []int) error
	// Params returns the params for everything observed since the last
	// Reset, or an error wrapping ErrNoData if nothing was.
	Params() (Params, error)
	// Reset forgets everything observed.
	Reset()
	// Scheme returns the scheme the params are chosen for.
	Scheme() Scheme
}

var (
	// ErrNoData is returned by Params before any value was observed.
	ErrNoData = errors.New("observer has seen no data")
	// ErrNonFinite is returned by Observe for NaN or Inf input.
	ErrNonFinite = errors.New("non-finite value")
)

// Observer kinds accepted by NewObserver.
const (
	KindMinMax              = "minmax"
	KindMovingAverageMinMax = "moving-average-minmax"
	KindPercentile          = "percentile"
	KindMSE                 = "mse"
	KindEntropy             = "entropy"
)

// ObserverConfig selects and tunes an observer. The zero value is a MinMax
// observer. Setting a field that the chosen kind does not use is an error.
type ObserverConfig struct {
	// Kind is one of the Kind constants; "" means KindMinMax.
	Kind string
	// AveragingConstant is the moving average's weight of a new batch, in
	// (0, 1]; 0 means 0.01, PyTorch's default.
	AveragingConstant float32
	// Percentile is the percentile kept by KindPercentile, in (50, 100];
	// 0 means 99.99.
	Percentile float64
	// Bins is the histogram size of the percentile, MSE and entropy
	// observers; 0 means DefaultHistogramBins (2048), or for entropy
	// EntropyBinsPerLevel bins per quantization level if that is more
	// (8192 for 8-bit affine schemes).
	Bins int
}

// NewObserver returns the observer cfg describes for scheme s.
func NewObserver(s Scheme, cfg ObserverConfig) (Observer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	kind := cfg.Kind
	if kind == "" {
		kind = KindMinMax
	}
	if cfg.AveragingConstant != 0 && kind != KindMovingAverageMinMax {
		return nil, fmt.Errorf("averaging constant set for observer %q, which does not average", kind)
	}
	if cfg.Percentile != 0 && kind != KindPercentile {
		return nil, fmt.Errorf("percentile set for observer %q", kind)
	}
	switch kind {
	case KindMinMax:
		if cfg.Bins != 0 {
			return nil, fmt.Errorf("bins set for observer %q, which keeps no histogram", kind)
		}
		return NewMinMax(s), nil
	case KindMovingAverageMinMax:
		if cfg.Bins != 0 {
			return nil, fmt.Errorf("bins set for observer %q, which keeps no histogram", kind)
		}
		c := cfg.AveragingConstant
		if c == 0 {
			c = 0.01
		}
		if !(c > 0 && c <= 1) {
			return nil, fmt.Errorf("averaging constant %g outside (0, 1]", c)
		}
		return NewMovingAverageMinMax(s, c), nil
	case KindPercentile, KindMSE, KindEntropy:
		return newHistogramObserver(s, kind, cfg)
	}
	return nil, fmt.Errorf("unknown observer %q (want %s, %s, %s, %s or %s)", kind,
		KindMinMax, KindMovingAverageMinMax, KindPercentile, KindMSE, KindEntropy)
}

// checkShape reports whether shape, a row-major shape, holds n elements. A
// nil shape passes where nilOK.
func checkShape(shape []int, n int, nilOK bool) error {
	if shape == nil && nilOK {
		return nil
	}
	m := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", shape)
		}
		m *= d
	}
	if m != n {
		return fmt.Errorf("shape %v does not hold %d elements", shape, n)
	}
	return nil
}

// extrema returns the smallest and largest element of x, or an error
// wrapping ErrNonFinite naming the first NaN or Inf. Of several elements
// equal to the minimum (or maximum) it returns the first: that only
// shows for zeros, where it keeps the first zero's sign.
func extrema(x []float32) (lo, hi float32, err error) {
	if len(x) == 0 {
		return float32(math.Inf(1)), float32(math.Inf(-1)), nil
	}
	// The scan compares integer keys that order as the floats do (see
	// orderKey), so that the compiler selects without branches; NaN keys
	// fall outside the keys of [-Inf, +Inf]. Integer min and max do not
	// depend on the order of the comparisons, so the scan is split into
	// contiguous ranges across goroutines (par.For), each range's keys
	// combined after.
	var kl, kh int32
	if workers := par.Workers(len(x), 1, par.MinWork); workers == 1 {
		kl, kh = keyRange(x)
	} else {
		// par.For may cut fewer ranges than workers: the unused slots
		// keep keyRange's values for no elements.
		kls, khs := make([]int32, workers), make([]int32, workers)
		for w := range kls {
			kls[w], khs[w] = math.MaxInt32, math.MinInt32
		}
		par.For(len(x), workers, func(w, lo, hi int) { kls[w], khs[w] = keyRange(x[lo:hi]) })
		kl, kh = slices.Min(kls), slices.Max(khs)
	}
	if kl <= negInfKey || kh >= posInfKey {
		for i, v := range x {
			if v != v || math.IsInf(float64(v), 0) {
				return 0, 0, fmt.Errorf("%w %g at element %d", ErrNonFinite, v, i)
			}
		}
	}
	lo, hi = fromKey(kl), fromKey(kh)
	if lo == 0 || hi == 0 {
		// -0 and +0 share a key: take the first zero, as a scan that
		// replaces the extremum only by a strictly smaller (larger)
		// element would.
		for _, v := range x {
			if v == 0 {
				if lo == 0 {
					lo = v
				}
				if hi == 0 {
					hi = v
				}
				break
			}
		}
	}
	return lo, hi, nil
}

// keyRange returns the smallest and largest orderKey of x's elements
// (MaxInt32 and MinInt32 for no elements).
func keyRange(x []float32) (kl, kh int32) {
	l0, l1 := int32(math.MaxInt32), int32(math.MaxInt32)
	h0, h1 := int32(math.MinInt32), int32(math.MinInt32)
	i := 0
	for ; i+2 <= len(x); i += 2 {
		s := x[i : i+2 : i+2]
		k0, k1 := orderKey(math.Float32bits(s[0])), orderKey(math.Float32bits(s[1]))
		l0, l1 = min(l0, k0), min(l1, k1)
		h0, h1 = max(h0, k0), max(h1, k1)
	}
	for ; i < len(x); i++ {
		k := orderKey(math.Float32bits(x[i]))
		l0, h0 = min(l0, k), max(h0, k)
	}
	return min(l0, l1), max(h0, h1)
}

var (
	negInfKey = orderKey(math.Float32bits(float32(math.Inf(-1))))
	posInfKey = orderKey(math.Float32bits(float32(math.Inf(1))))
)

// orderKey maps the bits of a float32 that is not NaN to an int32 that
// orders as the float does, -0 and +0 alike (both 0): the sign-magnitude
// bits turned two's complement, negative values moved up by one so that
// -0 meets +0. NaNs map above +Inf's key or below -Inf's.
func orderKey(b uint32) int32 {
	k := int32(b)
	m := k >> 31 // -1 for negative, 0 otherwise
	return (k ^ (m & 0x7fffffff)) - m
}

// fromKey inverts orderKey (a key of 0 gives +0).
func fromKey(k int32) float32 {
	if k >= 0 {
		return math.Float32frombits(uint32(k))
	}
	return math.Float32frombits(uint32((k - 1) ^ 0x7fffffff))
}

// channelExtrema returns each channel's extrema of x under layout l.
func channelExtrema(x []float32, l Layout) (lo, hi []float32, err error) {
	lo, hi = make([]float32, l.Channels), make([]float32, l.Channels)
	for c := range lo {
		lo[c], hi[c] = float32(math.Inf(1)), float32(math.Inf(-1))
	}
	l.ForEachRun(len(x), func(c, a, b int) {
		if err != nil {
			return
		}
		var l, h float32
		if l, h, err = extrema(x[a:b]); err != nil {
			err = fmt.Errorf("channel %d: %w", c, err)
			return
		}
		lo[c] = float32(math.Min(float64(lo[c]), float64(l)))
		hi[c] = float32(math.Max(float64(hi[c]), float64(h)))
	})
	return lo, hi, err
}

// rangeTracker holds running per-channel (or one per-tensor) extrema and
// the averaging rule that folds in a new batch.
type rangeTracker struct {
	scheme   Scheme
	average  float32 // 0: running min/max; else the moving-average constant
	min, max []float32
}

func (r *rangeTracker) Scheme() Scheme { return r.scheme }
func (r *rangeTracker) Reset()         { r.min, r.max = nil, nil }

func (r *rangeTracker) Observe(x []float32, shape []int) error {
	if len(x) == 0 {
		return nil
	}
	if err := checkShape(shape, len(x), !r.scheme.PerChannel); err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	var lo, hi []float32
	if r.scheme.PerChannel {
		if r.scheme.Axis >= len(shape) {
			return fmt.Errorf("observe: channel axis %d outside shape %v", r.scheme.Axis, shape)
		}
		if r.min != nil && shape[r.scheme.Axis] != len(r.min) {
			return fmt.Errorf("observe: %d channels after %d", shape[r.scheme.Axis], len(r.min))
		}
		l := Layout{Channels: shape[r.scheme.Axis], Inner: numElements(shape[r.scheme.Axis+1:])}
		var err error
		if lo, hi, err = channelExtrema(x, l); err != nil {
			return fmt.Errorf("observe: %w", err)
		}
	} else {
		l, h, err := extrema(x)
		if err != nil {
			return fmt.Errorf("observe: %w", err)
		}
		lo, hi = []float32{l}, []float32{h}
	}
	if r.min == nil {
		r.min, r.max = lo, hi
		return nil
	}
	for c := range lo {
		if r.average == 0 {
			r.min[c] = float32(math.Min(float64(r.min[c]), float64(lo[c])))
			r.max[c] = float32(math.Max(float64(r.max[c]), float64(hi[c])))
			continue
		}
		// PyTorch: m = m + c*(batch - m), each step rounded to float32.
		r.min[c] += float32(r.average * (lo[c] - r.min[c]))
		r.max[c] += float32(r.average * (hi[c] - r.max[c]))
	}
	return nil
}

func (r *rangeTracker) Params() (Params, error) {
	if r.min == nil {
		return Params{}, ErrNoData
	}
	if r.scheme.PerChannel {
		return ParamsFromRanges(r.scheme, r.min, r.max), nil
	}
	return ParamsFromRange(r.scheme, r.min[0], r.max[0]), nil
}

// Range returns the tracked per-channel (or single) minimum and maximum,
// nil before any data. The slices are copies.
func (r *rangeTracker) Range() (min, max []float32) {
	return append([]float32(nil), r.min...), append([]float32(nil), r.max...)
}

// MinMax tracks the running minimum and maximum, per tensor or per channel
// as its scheme says (PyTorch's MinMaxObserver and
// PerChannelMinMaxObserver).
type MinMax struct{ rangeTracker }

// NewMinMax returns a MinMax observer for s, which must be valid.
func NewMinMax(s Scheme) *MinMax {
	mustValid(s)
	return &MinMax{rangeTracker{scheme: s}}
}

// MovingAverageMinMax tracks an exponential moving average of each batch's
// minimum and maximum: the first batch sets them, then m += c*(batch_m - m)
// (PyTorch's MovingAverageMinMaxObserver and its per-channel variant).
type MovingAverageMinMax struct{ rangeTracker }

// NewMovingAverageMinMax returns a moving-average observer for s with
// averaging constant c in (0, 1]. It panics for an invalid s or c.
func NewMovingAverageMinMax(s Scheme, c float32) *MovingAverageMinMax {
	mustValid(s)
	if !(c > 0 && c <= 1) {
		panic(fmt.Sprintf("quant: averaging constant %g outside (0, 1]", c))
	}
	return &MovingAverageMinMax{rangeTracker{scheme: s, average: c}}
}

// SetRange replaces the tracked extrema, as when an observer is restored
// from a checkpoint: min and max hold one value per channel (one for a
// per-tensor scheme), finite, with min <= max. The slices are copied.
func (r *rangeTracker) SetRange(min, max []float32) error {
	if len(min) != len(max) || len(min) == 0 {
		return fmt.Errorf("set range: %d minima and %d maxima", len(min), len(max))
	}
	if !r.scheme.PerChannel && len(min) != 1 {
		return fmt.Errorf("set range: per-tensor observer given %d channels", len(min))
	}
	for c := range min {
		lo, hi := float64(min[c]), float64(max[c])
		if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
			return fmt.Errorf("set range: channel %d [%g, %g]: %w", c, lo, hi, ErrNonFinite)
		}
		if lo > hi {
			return fmt.Errorf("set range: channel %d has min %g > max %g", c, lo, hi)
		}
	}
	r.min, r.max = append([]float32(nil), min...), append([]float32(nil), max...)
	return nil
}
