package quant

import "math"

// ErrorStats compares a tensor with its fake-quantized version.
type ErrorStats struct {
	MSE         float64 // mean squared error
	SQNR        float64 // signal-to-quantization-noise ratio in dB; +Inf for no error
	MaxAbsError float64 // largest absolute difference
	Clipped     float64 // fraction of elements whose code saturated
}

// MeasureError fake-quantizes x with p and compares. shape is as for
// Quantize. An empty x gives zero stats. A zero signal with nonzero noise
// gives SQNR -Inf.
func MeasureError(x []float32, shape []int, p Params) ErrorStats {
	if len(x) == 0 {
		return ErrorStats{}
	}
	var sig, noise, maxAbs float64
	clipped := 0
	LayoutOf(p, shape, len(x)).ForEachRun(len(x), func(c, lo, hi int) {
		s, zp := p.Scale[c], p.ZeroPoint[c]
		inv := 1 / s
		for _, v := range x[lo:hi] {
			q, in := Code(v, inv, zp, p.QMin, p.QMax)
			if !in && v == v {
				clipped++
			}
			d := float64(v) - float64(float32(q-zp)*s)
			noise += d * d
			sig += float64(v) * float64(v)
			maxAbs = math.Max(maxAbs, math.Abs(d))
		}
	})
	n := float64(len(x))
	return ErrorStats{
		MSE:         noise / n,
		SQNR:        SQNRdB(sig, noise),
		MaxAbsError: maxAbs,
		Clipped:     float64(clipped) / n,
	}
}

// SQNRdB returns 10*log10(signal/noise) for summed squared signal and noise.
func SQNRdB(signal, noise float64) float64 {
	switch {
	case noise == 0:
		return math.Inf(1)
	case signal == 0:
		return math.Inf(-1)
	}
	return 10 * math.Log10(signal/noise)
}
