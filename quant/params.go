package quant

import (
	"errors"
	"fmt"
	"math"
)

// Eps is the smallest scale a range can produce: float32 machine epsilon,
// as torch.finfo(torch.float32).eps.
const Eps = float32(1.1920929e-07)

// Params are the quantization parameters of one tensor: a scale and a zero
// point per tensor (Axis < 0, one element each) or per channel of Axis.
// QMin and QMax are the code range; a Scheme fixes them, but any range with
// QMin < QMax works (PyTorch's conformance vectors use 1-bit ranges).
type Params struct {
	Scale     []float32
	ZeroPoint []int32
	QMin      int32
	QMax      int32
	// Axis is the channel axis of per-channel params, or -1 for per tensor.
	Axis int
}

// ErrParams is wrapped by every error that reports invalid params.
var ErrParams = errors.New("invalid quantization params")

// PerTensor reports whether p has one scale for the whole tensor.
func (p Params) PerTensor() bool { return p.Axis < 0 }

// Validate checks that p can quantize: matching lengths, a code range,
// finite positive scales whose float32 reciprocal is finite, and zero points
// inside the range.
func (p Params) Validate() error {
	switch {
	case len(p.Scale) == 0:
		return fmt.Errorf("%w: no scale", ErrParams)
	case len(p.Scale) != len(p.ZeroPoint):
		return fmt.Errorf("%w: %d scales but %d zero points", ErrParams, len(p.Scale), len(p.ZeroPoint))
	case p.QMin >= p.QMax:
		return fmt.Errorf("%w: empty code range [%d, %d]", ErrParams, p.QMin, p.QMax)
	case p.PerTensor() && len(p.Scale) != 1:
		return fmt.Errorf("%w: per-tensor params with %d scales", ErrParams, len(p.Scale))
	}
	for c, s := range p.Scale {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("%w: scale[%d] = %g is not a positive finite number", ErrParams, c, s)
		}
		if math.IsInf(float64(1/s), 0) {
			return fmt.Errorf("%w: scale[%d] = %g is too small: its float32 reciprocal overflows", ErrParams, c, s)
		}
		if z := p.ZeroPoint[c]; z < p.QMin || z > p.QMax {
			return fmt.Errorf("%w: zero point[%d] = %d outside [%d, %d]", ErrParams, c, z, p.QMin, p.QMax)
		}
	}
	return nil
}

// Clone returns a deep copy of p.
func (p Params) Clone() Params {
	p.Scale = append([]float32(nil), p.Scale...)
	p.ZeroPoint = append([]int32(nil), p.ZeroPoint...)
	return p
}

// ParamsFromRange returns per-tensor params for values observed in
// [min, max] under scheme s, with PyTorch's observer arithmetic (see the
// package doc). min and max must be finite; min > max is treated as an empty
// range, giving the params of [0, 0]. s must be per tensor and valid;
// otherwise ParamsFromRange panics.
func ParamsFromRange(s Scheme, min, max float32) Params {
	if s.PerChannel {
		panic("quant: ParamsFromRange with a per-channel scheme")
	}
	mustValid(s)
	p := Params{Scale: make([]float32, 1), ZeroPoint: make([]int32, 1), QMin: s.QMin(), QMax: s.QMax(), Axis: -1}
	p.Scale[0], p.ZeroPoint[0] = rangeParams(s, min, max)
	return p
}

// ParamsFromRanges returns per-channel params for channel c observed in
// [mins[c], maxs[c]], as ParamsFromRange does for each channel. s must be
// per channel and valid, and the slices of equal length; otherwise it panics.
func ParamsFromRanges(s Scheme, mins, maxs []float32) Params {
	if !s.PerChannel {
		panic("quant: ParamsFromRanges with a per-tensor scheme")
	}
	if len(mins) != len(maxs) {
		panic("quant: ParamsFromRanges length mismatch")
	}
	mustValid(s)
	p := Params{Scale: make([]float32, len(mins)), ZeroPoint: make([]int32, len(mins)), QMin: s.QMin(), QMax: s.QMax(), Axis: s.Axis}
	for c := range mins {
		p.Scale[c], p.ZeroPoint[c] = rangeParams(s, mins[c], maxs[c])
	}
	return p
}

func mustValid(s Scheme) {
	if err := s.Validate(); err != nil {
		panic("quant: " + err.Error())
	}
}

// rangeParams is PyTorch's _ObserverBase._calculate_qparams in float32.
func rangeParams(s Scheme, min, max float32) (scale float32, zp int32) {
	if min > max {
		min, max = 0, 0
	}
	min = float32(math.Min(float64(min), 0))
	max = float32(math.Max(float64(max), 0))
	qmin, qmax := s.QMin(), s.QMax()
	if s.Symmetric {
		m := max
		if -min > m {
			m = -min
		}
		// PyTorch divides by float((qmax-qmin)/2) computed in float64,
		// then rounds to float32 for the tensor division.
		scale = m / float32(float64(qmax-qmin)/2)
		if scale < Eps {
			scale = Eps
		}
		if !s.Signed {
			zp = (qmin + qmax) / 2 // qmin >= 0, so this rounds down
		}
		return scale, zp
	}
	scale = (max - min) / float32(qmax-qmin)
	if scale < Eps {
		scale = Eps
	}
	z := int64(qmin) - int64(math.RoundToEven(float64(min/scale)))
	return scale, int32(clamp64(z, int64(qmin), int64(qmax)))
}

func clamp64(v, lo, hi int64) int64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// RoundZeroPoint turns a learnable float zero point into a code: rounded half
// to even and clamped to [qmin, qmax]. NaN gives qmin. The same rule serves
// the forward and backward passes.
func RoundZeroPoint(z float32, qmin, qmax int32) int32 {
	r := math.RoundToEven(float64(z))
	switch {
	case r != r || r < float64(qmin):
		return qmin
	case r > float64(qmax):
		return qmax
	}
	return int32(r)
}
