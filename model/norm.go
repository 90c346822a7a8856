package model

import (
	"fmt"
	"math"
	"slices"
)

// Norm is the normalisation applied to pixels after scaling them to
// [0, 1]: x = (p/255 - mean) / std, in float32 as torchvision's ToTensor
// followed by Normalize. Mean and Std apply to every channel unless
// ChannelMean and ChannelStd are set: then they hold one constant per
// input channel (Mean and Std are then ignored and should be zero). The
// zero value scales to [0, 1] and does nothing more; a std of 0 means 1.
type Norm struct {
	Mean, Std float32
	// ChannelMean and ChannelStd are the per-channel constants, both nil
	// or both with one value per input channel.
	ChannelMean []float32 `json:",omitempty"`
	ChannelStd  []float32 `json:",omitempty"`
}

// PerChannel reports whether n has per-channel constants.
func (n Norm) PerChannel() bool { return n.ChannelMean != nil || n.ChannelStd != nil }

// Of returns the normalisation of channel c: n itself, or for a
// per-channel n the per-tensor Norm of its c-th constants. It panics if c
// is out of range of a per-channel n (Validate checks the channel count).
func (n Norm) Of(c int) Norm {
	if !n.PerChannel() {
		return n
	}
	return Norm{Mean: n.ChannelMean[c], Std: n.ChannelStd[c]}
}

// Equal reports whether n and o normalise every pixel alike, holding the
// same constants.
func (n Norm) Equal(o Norm) bool {
	return n.Mean == o.Mean && n.Std == o.Std && slices.Equal(n.ChannelMean, o.ChannelMean) && slices.Equal(n.ChannelStd, o.ChannelStd)
}

// Validate checks that every mean is finite and every std finite and not
// negative, and that a per-channel n has as many means as stds, one per
// channel of an input of channels channels (channels <= 0: any count).
func (n Norm) Validate(channels int) error {
	if !n.PerChannel() {
		return n.validateOne(-1)
	}
	if len(n.ChannelMean) != len(n.ChannelStd) || len(n.ChannelMean) == 0 {
		return fmt.Errorf("normalisation has %d channel means and %d channel stds, want as many of each, at least 1", len(n.ChannelMean), len(n.ChannelStd))
	}
	if channels > 0 && len(n.ChannelMean) != channels {
		return fmt.Errorf("normalisation has %d channel means, want one per input channel (%d)", len(n.ChannelMean), channels)
	}
	if n.Mean != 0 || n.Std != 0 {
		return fmt.Errorf("normalisation has per-channel constants and also mean %g and std %g: set one or the other", n.Mean, n.Std)
	}
	for c := range n.ChannelMean {
		if err := n.Of(c).validateOne(c); err != nil {
			return err
		}
	}
	return nil
}

// validateOne checks the constants of a per-tensor n, channel c of a
// per-channel one (c < 0: per tensor), allocating only for an error.
func (n Norm) validateOne(c int) error {
	what := func() string {
		if c < 0 {
			return ""
		}
		return fmt.Sprintf(" of channel %d", c)
	}
	if math.IsNaN(float64(n.Mean)) || math.IsInf(float64(n.Mean), 0) {
		return fmt.Errorf("normalisation mean%s %g is not finite", what(), n.Mean)
	}
	if !(n.Std >= 0) || math.IsInf(float64(n.Std), 0) {
		return fmt.Errorf("normalisation std%s %g is not a finite non-negative number", what(), n.Std)
	}
	return nil
}

// Apply returns the normalised value of pixel p of a per-tensor n (for a
// per-channel one, of n.Of(c)). It panics on a per-channel n.
func (n Norm) Apply(p uint8) float32 {
	if n.PerChannel() {
		panic("model: Apply of a per-channel Norm (use Of)")
	}
	x := float32(p) / 255
	if n.Std == 0 {
		return x - n.Mean
	}
	return (x - n.Mean) / n.Std
}
