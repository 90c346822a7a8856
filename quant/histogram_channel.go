package quant

import "fmt"

// HistogramPerChannel is the percentile, MSE and entropy observer of a
// per-channel scheme: one Histogram per index of the scheme's channel axis,
// each observing only that channel's values and choosing the channel's
// range by its method, exactly as a per-tensor Histogram given the
// channel's values alone; Params combines the ranges with
// ParamsFromRanges. Its memory is that of one Histogram per channel. It is
// not safe for concurrent use.
type HistogramPerChannel struct {
	scheme  Scheme         // per channel
	channel Scheme         // the per-tensor scheme of each channel's histogram
	cfg     ObserverConfig // of each channel's histogram
	ch      []*Histogram   // one per channel; nil before data
}

var _ Observer = (*HistogramPerChannel)(nil)

// NewHistogramPerChannel returns a histogram observer for the per-channel
// scheme s. cfg is as for NewHistogram.
func NewHistogramPerChannel(s Scheme, cfg ObserverConfig) (*HistogramPerChannel, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if !s.PerChannel {
		return nil, fmt.Errorf("%w: per-channel histogram observer for %v", ErrScheme, s)
	}
	channel := s
	channel.PerChannel, channel.Axis = false, 0
	// A histogram of the channel scheme checks cfg.
	if _, err := NewHistogram(channel, cfg); err != nil {
		return nil, err
	}
	return &HistogramPerChannel{scheme: s, channel: channel, cfg: cfg}, nil
}

// Scheme returns the scheme the params are chosen for.
func (h *HistogramPerChannel) Scheme() Scheme { return h.scheme }

// Reset forgets everything observed, the number of channels included.
func (h *HistogramPerChannel) Reset() { h.ch = nil }

// Observe adds each channel's values of x, a tensor of the given row-major
// shape, to that channel's histogram. shape is required; its channel axis
// must lie inside it and keep the size it had at the first observation.
// Empty input is ignored; NaN or Inf is an error wrapping ErrNonFinite, and
// leaves the observer unchanged.
func (h *HistogramPerChannel) Observe(x []float32, shape []int) error {
	if len(x) == 0 {
		return nil
	}
	if err := checkShape(shape, len(x), false); err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	axis := h.scheme.Axis
	if axis >= len(shape) {
		return fmt.Errorf("observe: channel axis %d outside shape %v", axis, shape)
	}
	if h.ch != nil && shape[axis] != len(h.ch) {
		return fmt.Errorf("observe: %d channels after %d", shape[axis], len(h.ch))
	}
	// Checked first, so that no channel's histogram changes on an error.
	if _, _, err := extrema(x); err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	if h.ch == nil {
		h.ch = make([]*Histogram, shape[axis])
		for c := range h.ch {
			// The config passed NewHistogramPerChannel's check.
			h.ch[c], _ = NewHistogram(h.channel, h.cfg)
		}
	}
	l := Layout{Channels: shape[axis], Inner: numElements(shape[axis+1:])}
	var err error
	l.ForEachRun(len(x), func(c, lo, hi int) {
		if err == nil {
			err = h.ch[c].Observe(x[lo:hi], nil)
		}
	})
	return err
}

// Params returns ParamsFromRanges of each channel's ClipRange, or an error
// wrapping ErrNoData before any data.
func (h *HistogramPerChannel) Params() (Params, error) {
	if h.ch == nil {
		return Params{}, ErrNoData
	}
	lo, hi := make([]float32, len(h.ch)), make([]float32, len(h.ch))
	for c, ch := range h.ch {
		var err error
		if lo[c], hi[c], err = ch.ClipRange(); err != nil {
			return Params{}, fmt.Errorf("channel %d: %w", c, err)
		}
	}
	return ParamsFromRanges(h.scheme, lo, hi), nil
}
