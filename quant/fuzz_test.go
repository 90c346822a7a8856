package quant_test

import (
	"math"
	"testing"

	"qat/quant"
)

// fuzzParams builds per-tensor params from fuzz input, or reports false
// when they are not valid (Params.Validate), which the arithmetic does not
// have to handle.
func fuzzParams(scaleBits uint32, zp int32, bits uint8, signed bool) (quant.Params, bool) {
	s := quant.Scheme{Bits: 2 + int(bits%7), Signed: signed}
	span := int64(s.QMax()) - int64(s.QMin()) + 1
	z := int32(int64(s.QMin()) + (int64(zp)%span+span)%span)
	p := quant.Params{
		Scale:     []float32{math.Float32frombits(scaleBits)},
		ZeroPoint: []int32{z},
		QMin:      s.QMin(),
		QMax:      s.QMax(),
		Axis:      -1,
	}
	return p, p.Validate() == nil
}

// FuzzQuantize: for any float32 (NaN, Inf, denormals, huge values) and any
// valid params, codes stay in [QMin, QMax], FakeQuantize equals
// Dequantize(Quantize(x)) (NaN excepted, which stays NaN), and inside the
// representable range the round trip is off by at most half a step.
func FuzzQuantize(f *testing.F) {
	f.Add(math.Float32bits(0.3), math.Float32bits(0.1), int32(3), uint8(6), false)
	f.Add(math.Float32bits(-1e30), math.Float32bits(1e-3), int32(-5), uint8(2), true)
	f.Add(math.Float32bits(float32(math.NaN())), math.Float32bits(1), int32(0), uint8(0), true)
	f.Add(math.Float32bits(float32(math.Inf(1))), math.Float32bits(3e38), int32(100), uint8(6), false)
	f.Add(uint32(1), math.Float32bits(1e-38), int32(7), uint8(4), true)            // denormal x
	f.Add(math.Float32bits(0.15), math.Float32bits(0.1), int32(0), uint8(6), true) // a tie
	f.Fuzz(func(t *testing.T, xBits, scaleBits uint32, zp int32, bits uint8, signed bool) {
		p, ok := fuzzParams(scaleBits, zp, bits, signed)
		if !ok {
			return
		}
		x := []float32{math.Float32frombits(xBits)}
		q := make([]int32, 1)
		quant.Quantize(q, x, nil, p)
		if q[0] < p.QMin || q[0] > p.QMax {
			t.Fatalf("code %d outside [%d, %d] for x=%g, %+v", q[0], p.QMin, p.QMax, x[0], p)
		}
		y := make([]float32, 1)
		quant.FakeQuantize(y, x, nil, p)
		if x[0] != x[0] {
			if y[0] == y[0] {
				t.Fatalf("NaN fake-quantized to %g", y[0])
			}
			return
		}
		back := make([]float32, 1)
		quant.Dequantize(back, q, nil, p)
		if back[0] != y[0] {
			t.Fatalf("FakeQuantize(%g) = %g, Dequantize(Quantize) = %g", x[0], y[0], back[0])
		}
		s := float64(p.Scale[0])
		lo := float64(p.QMin-p.ZeroPoint[0]) * s
		hi := float64(p.QMax-p.ZeroPoint[0]) * s
		if hi > math.MaxFloat32 || lo < -math.MaxFloat32 {
			return // the range itself is not representable in float32
		}
		if v := float64(x[0]); v >= lo && v <= hi {
			// Half a step, plus the float32 rounding of x*(1/s) (relative
			// 2^-23 of at most 2^9 steps) and of the product (q-z)*s.
			bound := s*(0.5+math.Exp2(-23)*512) + math.Abs(v)*math.Exp2(-23)
			if d := math.Abs(float64(y[0]) - v); d > bound {
				t.Fatalf("x=%g fake-quantized to %g: error %g > %g (%+v)", x[0], y[0], d, bound, p)
			}
		}
	})
}

// FuzzPerChannel: per-channel quantization of any shape equals per-tensor
// quantization of each channel's elements.
func FuzzPerChannel(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint8(3), uint8(1), uint8(2))
	f.Add([]byte{200, 0, 17}, uint8(1), uint8(3), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, d0, d1, axis uint8) {
		shape := []int{1 + int(d0%4), 1 + int(d1%5), 0}
		shape[2] = len(data) / (shape[0] * shape[1])
		n := shape[0] * shape[1] * shape[2]
		if n == 0 {
			return
		}
		ax := int(axis % 3)
		c := shape[ax]
		x := make([]float32, n)
		for i := range x {
			x[i] = (float32(data[i]) - 100) / 7
		}
		p := quant.Params{Scale: make([]float32, c), ZeroPoint: make([]int32, c), QMin: -8, QMax: 7, Axis: ax}
		for i := range p.Scale {
			p.Scale[i] = 0.25 * float32(i+1)
			p.ZeroPoint[i] = int32(i%5) - 2
		}
		got := make([]int32, n)
		quant.Quantize(got, x, shape, p)
		inner := 1
		for _, d := range shape[ax+1:] {
			inner *= d
		}
		one := make([]int32, 1)
		for i, v := range x {
			ch := (i / inner) % c
			pt := quant.Params{Scale: p.Scale[ch : ch+1], ZeroPoint: p.ZeroPoint[ch : ch+1], QMin: -8, QMax: 7, Axis: -1}
			quant.Quantize(one, []float32{v}, nil, pt)
			if one[0] != got[i] {
				t.Fatalf("shape %v axis %d element %d: per-channel code %d, per-tensor %d", shape, ax, i, got[i], one[0])
			}
		}
	})
}
