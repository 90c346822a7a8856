package quant

import (
	"errors"
	"fmt"
)

// Scheme describes how real values map to integer codes. The zero value is
// PyTorch's default activation scheme: 8-bit unsigned affine, per tensor.
type Scheme struct {
	// Bits is the code width, 2 to 8. Zero means 8.
	Bits int
	// Signed selects codes centred on 0 ([-2^(b-1), 2^(b-1)-1]) instead of
	// [0, 2^b-1].
	Signed bool
	// Symmetric fixes the zero point (0 for signed, the midpoint for
	// unsigned) and sizes the scale by the larger of |min| and |max|.
	Symmetric bool
	// NarrowRange drops the most negative signed code, so that the range is
	// symmetric ([-127, 127] at 8 bits). It requires Signed.
	NarrowRange bool
	// PerChannel gives every index of Axis its own scale and zero point.
	PerChannel bool
	// Axis is the channel axis of a per-channel scheme. It must be 0 for a
	// per-tensor scheme.
	Axis int
}

// Common schemes.
var (
	// Uint8Affine is the default for activations: [0,255], affine, per tensor.
	Uint8Affine = Scheme{}
	// Int8SymmetricPerChannel is the default for weights: [-127,127],
	// symmetric, one scale per output channel (axis 0).
	Int8SymmetricPerChannel = Scheme{Signed: true, Symmetric: true, NarrowRange: true, PerChannel: true}
)

// ErrScheme is wrapped by every error that reports an invalid scheme.
var ErrScheme = errors.New("invalid quantization scheme")

// NumBits returns the code width, resolving the zero value to 8.
func (s Scheme) NumBits() int {
	if s.Bits == 0 {
		return 8
	}
	return s.Bits
}

// Validate reports whether s describes a scheme qat supports.
func (s Scheme) Validate() error {
	b := s.NumBits()
	switch {
	case b < 2 || b > 8:
		return fmt.Errorf("%w: bits %d outside 2..8", ErrScheme, s.Bits)
	case s.NarrowRange && !s.Signed:
		return fmt.Errorf("%w: narrow range needs signed codes", ErrScheme)
	case s.Axis < 0:
		return fmt.Errorf("%w: negative channel axis %d", ErrScheme, s.Axis)
	case !s.PerChannel && s.Axis != 0:
		return fmt.Errorf("%w: channel axis %d set on a per-tensor scheme", ErrScheme, s.Axis)
	}
	return nil
}

// QMin returns the smallest code.
func (s Scheme) QMin() int32 {
	if !s.Signed {
		return 0
	}
	m := -int32(1) << (s.NumBits() - 1)
	if s.NarrowRange {
		m++
	}
	return m
}

// QMax returns the largest code.
func (s Scheme) QMax() int32 {
	if s.Signed {
		return int32(1)<<(s.NumBits()-1) - 1
	}
	return int32(1)<<s.NumBits() - 1
}

// String describes the scheme compactly, for example "int8 symmetric narrow
// per-channel(axis 0)" or "uint4 affine per-tensor".
func (s Scheme) String() string {
	t := "uint"
	if s.Signed {
		t = "int"
	}
	kind := "affine"
	if s.Symmetric {
		kind = "symmetric"
	}
	if s.NarrowRange {
		kind += " narrow"
	}
	gran := "per-tensor"
	if s.PerChannel {
		gran = fmt.Sprintf("per-channel(axis %d)", s.Axis)
	}
	return fmt.Sprintf("%s%d %s %s", t, s.NumBits(), kind, gran)
}
