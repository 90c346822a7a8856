// Package gradcheck is the finite-difference gradient checker of qat's
// tests (packages ops, fakequant, ste): central differences, in float64,
// of a scalar function of the point being checked, and tolerance checks
// that report where and by how much an analytic gradient misses.
//
// A test writes its loss as a float64 function of float64 inputs (a
// reference implementation, or the op itself run on perturbed inputs),
// takes Central or Partials of it, and compares the op's gradient with
// Close (one value) or Normwise (a tensor). The differences are exact for
// a loss that is quadratic in the perturbed input, up to float64 rounding
// (about 1e-16 * |loss| / h); away from kinks the step h bounds the error
// of anything smoother by its third derivative times h^2/6.
package gradcheck

import (
	"fmt"
	"math"
)

// Central returns (f(x+h) - f(x-h)) / (2h), the central difference of f
// at x with step h.
func Central(f func(x float64) float64, x, h float64) float64 {
	return (f(x+h) - f(x-h)) / (2 * h)
}

// Partials returns the central differences, step h, of loss with respect
// to every element of every slice of p: out[i][j] is Central in p[i][j].
// loss reads the slices, which Partials changes in place one element at a
// time and restores (each element holds its own value again when loss is
// called for the next and when Partials returns).
func Partials(loss func() float64, h float64, p ...[]float64) [][]float64 {
	out := make([][]float64, len(p))
	for i, v := range p {
		out[i] = make([]float64, len(v))
		for j, old := range v {
			out[i][j] = Central(func(x float64) float64 {
				v[j] = x
				return loss()
			}, old, h)
			v[j] = old
		}
	}
	return out
}

// Close reports whether got is within tol*max(1, |want|) of want: a
// relative tolerance, absolute for |want| below 1. The error gives both
// values, their difference and the bound; NaN anywhere is an error.
func Close(got, want, tol float64) error {
	bound := tol * math.Max(1, math.Abs(want))
	if d := math.Abs(got - want); !(d <= bound) {
		return fmt.Errorf("%.7g, want %.7g (|diff| %.3g > %.3g)", got, want, d, bound)
	}
	return nil
}

// Normwise reports the first index where |got-want| > tol*max(1,
// max|want|), the maximum over the finite elements of want: a normwise
// relative tolerance, absolute when every |want| is below 1. An element
// of a sum of many terms that cancel keeps the rounding error of the
// terms, so a tensor's elements are measured against its largest one,
// not each against itself. NaN and ±Inf in want must be matched exactly
// (NaN by any NaN). Different lengths are an error.
func Normwise(got []float32, want []float64, tol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d elements, want %d", len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		if !math.IsInf(w, 0) && !math.IsNaN(w) {
			scale = math.Max(scale, math.Abs(w))
		}
	}
	for i := range got {
		g, w := float64(got[i]), want[i]
		switch {
		case math.IsNaN(w) || math.IsInf(w, 0):
			if !(math.IsNaN(w) && math.IsNaN(g)) && g != w {
				return fmt.Errorf("element %d = %v, want %v", i, g, w)
			}
		case !(math.Abs(g-w) <= tol*scale):
			return fmt.Errorf("element %d = %v, want %v (|diff| %.3g > %.3g)", i, g, w, math.Abs(g-w), tol*scale)
		}
	}
	return nil
}
