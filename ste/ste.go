package ste

import (
	"fmt"
	"math"

	"qat/quant"
)

func checkLens(gradX, gradY, x []float32) {
	if len(gradY) != len(x) || (gradX != nil && len(gradX) != len(x)) {
		panic(fmt.Sprintf("ste: gradX, gradY and x have %d, %d and %d elements", len(gradX), len(gradY), len(x)))
	}
}

func checkChannels(name string, g []float32, p quant.Params) {
	if len(g) != len(p.Scale) {
		panic(fmt.Sprintf("ste: %s has %d elements for %d channels", name, len(g), len(p.Scale)))
	}
}

// Clipped writes the clipped straight-through gradient: gradX[i] is
// gradY[i] where x[i] is in range under p, else 0. shape is x's row-major
// shape, nil allowed for per-tensor p. gradX may alias gradY.
func Clipped(gradX, gradY, x []float32, shape []int, p quant.Params) {
	checkLens(gradX, gradY, x)
	quant.LayoutOf(p, shape, len(x)).ForEachRun(len(x), func(c, lo, hi int) {
		inv, zp := 1/p.Scale[c], p.ZeroPoint[c]
		gx, gy := gradX[lo:hi], gradY[lo:hi]
		for i, v := range x[lo:hi] {
			if _, in := quant.Code(v, inv, zp, p.QMin, p.QMax); in {
				gx[i] = gy[i]
			} else {
				gx[i] = 0
			}
		}
	})
}

// GradFactor returns LSQ's gradient scale 1/sqrt(n*qmax) for a tensor of n
// elements, or 1 when n*qmax is not positive.
func GradFactor(n int, qmax int32) float32 {
	if v := float64(n) * float64(qmax); v > 0 {
		return float32(1 / math.Sqrt(v))
	}
	return 1
}

// LSQ writes the input gradient and the step-size gradient of a learnable
// fake quantizer with fixed zero point (see the package doc). gradScale has
// one element per channel of p. gradX may be nil when only the parameter
// gradient is wanted; the input gradient is then Clipped's.
func LSQ(gradX, gradScale, gradY, x []float32, shape []int, p quant.Params, gradFactor float32) {
	learnable(gradX, gradScale, nil, gradY, x, shape, p, gradFactor)
}

// LSQPlus is LSQ that also writes the zero-point (offset) gradient,
// one element per channel of p.
func LSQPlus(gradX, gradScale, gradZeroPoint, gradY, x []float32, shape []int, p quant.Params, gradFactor float32) {
	checkChannels("gradZeroPoint", gradZeroPoint, p)
	learnable(gradX, gradScale, gradZeroPoint, gradY, x, shape, p, gradFactor)
}

func learnable(gradX, gradScale, gradZP, gradY, x []float32, shape []int, p quant.Params, g float32) {
	checkLens(gradX, gradY, x)
	checkChannels("gradScale", gradScale, p)
	g64 := float64(g)
	sumS := make([]float64, len(p.Scale))
	sumZ := make([]float64, len(p.Scale))
	quant.LayoutOf(p, shape, len(x)).ForEachRun(len(x), func(c, lo, hi int) {
		s, zp := p.Scale[c], p.ZeroPoint[c]
		inv := 1 / s
		s64, inv64 := float64(s), float64(inv)
		below, above := float64(p.QMin-zp), float64(p.QMax-zp)
		if gradX != nil {
			Clipped(gradX[lo:hi], gradY[lo:hi], x[lo:hi], nil, quant.Params{Scale: p.Scale[c : c+1], ZeroPoint: p.ZeroPoint[c : c+1], QMin: p.QMin, QMax: p.QMax, Axis: -1})
		}
		var ds, dz float64
		for i, v := range x[lo:hi] {
			dy := float64(gradY[lo+i])
			q, in := quant.Code(v, inv, zp, p.QMin, p.QMax)
			switch {
			case in:
				ds += dy * (float64(q-zp)*s64 - float64(v)) * inv64
			case v != v:
				ds = math.NaN()
			default:
				if q == p.QMin {
					ds += dy * below
				} else {
					ds += dy * above
				}
				dz -= dy * s64
			}
		}
		ds *= g64
		dz *= g64
		sumS[c] += ds
		sumZ[c] += dz
	})
	for c := range gradScale {
		gradScale[c] = float32(sumS[c])
		if gradZP != nil {
			gradZP[c] = float32(sumZ[c])
		}
	}
}

// PACTParams returns the params of PACT's activation quantizer: unsigned
// codes of the given bits over [0, alpha], zero point 0. alpha must be a
// positive finite number and bits in 2..8; otherwise it returns an error.
func PACTParams(alpha float32, bits int) (quant.Params, error) {
	s := quant.Scheme{Bits: bits}
	if err := s.Validate(); err != nil {
		return quant.Params{}, fmt.Errorf("pact: %w", err)
	}
	if !(alpha > 0) || math.IsInf(float64(alpha), 0) {
		return quant.Params{}, fmt.Errorf("pact: clipping threshold %g is not a positive finite number", alpha)
	}
	return quant.Params{
		Scale:     []float32{alpha / float32(s.QMax())},
		ZeroPoint: []int32{0},
		QMin:      0,
		QMax:      s.QMax(),
		Axis:      -1,
	}, nil
}

// PACT writes the input gradient of PACT's clipped, quantized activation
// y = fakeQuantize(clip(x, 0, alpha)) and returns the gradient of the
// clipping threshold alpha: the sum of gradY over the elements clipped at
// alpha. p comes from PACTParams; quant.FakeQuantize with p is the forward
// pass. As in the paper, the quantizer is straight-through: inside the range
// gradX = gradY and alpha gets nothing. gradX may be nil when only the
// alpha gradient is wanted, and may alias gradY.
func PACT(gradX, gradY, x []float32, p quant.Params) (gradAlpha float32) {
	checkLens(gradX, gradY, x)
	if !p.PerTensor() {
		panic("ste: PACT with per-channel params")
	}
	inv := 1 / p.Scale[0]
	var sum float64
	for i, v := range x {
		dy, g := gradY[i], float32(0)
		switch q, in := quant.Code(v, inv, 0, p.QMin, p.QMax); {
		case in:
			g = dy
		case v != v:
			sum = math.NaN()
		case q == p.QMax:
			sum += float64(dy)
		}
		if gradX != nil {
			gradX[i] = g
		}
	}
	return float32(sum)
}
