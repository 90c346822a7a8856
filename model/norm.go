package model

import (
	"fmt"
	"math"
)

// Norm is the normalisation applied to pixels after scaling them to
// [0, 1]: x = (p/255 - Mean) / Std, in float32 as torchvision's ToTensor
// followed by Normalize, the same constants for every channel. The zero
// value scales to [0, 1] and does nothing more; Std = 0 means 1.
type Norm struct {
	Mean, Std float32
}

// Validate checks that Mean is finite and Std finite and not negative.
func (n Norm) Validate() error {
	if math.IsNaN(float64(n.Mean)) || math.IsInf(float64(n.Mean), 0) {
		return fmt.Errorf("normalisation mean %g is not finite", n.Mean)
	}
	if !(n.Std >= 0) || math.IsInf(float64(n.Std), 0) {
		return fmt.Errorf("normalisation std %g is not a finite non-negative number", n.Std)
	}
	return nil
}

// Apply returns the normalised value of pixel p.
func (n Norm) Apply(p uint8) float32 {
	x := float32(p) / 255
	if n.Std == 0 {
		return x - n.Mean
	}
	return (x - n.Mean) / n.Std
}
