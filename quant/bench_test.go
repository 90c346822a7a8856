package quant_test

import (
	"math/rand/v2"
	"testing"

	"qat/quant"
)

// The FakeQuantize benchmarks run next to a plain copy of the same 1M
// float32 slice, so the overhead of quantization reads as a ratio.
const benchN = 1 << 20

var benchShape = []int{256, 4096} // 256 output channels on axis 0

func benchData() []float32 {
	r := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, benchN)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func BenchmarkCopy(b *testing.B) {
	x, y := benchData(), make([]float32, benchN)
	b.SetBytes(4 * benchN)
	for b.Loop() {
		copy(y, x)
	}
}

func BenchmarkFakeQuantize(b *testing.B) {
	x, y := benchData(), make([]float32, benchN)
	perTensor := quant.ParamsFromRange(quant.Scheme{}, -4, 4)
	mins, maxs := make([]float32, 256), make([]float32, 256)
	for i := range mins {
		mins[i], maxs[i] = -4, 4
	}
	perChannel := quant.ParamsFromRanges(quant.Int8SymmetricPerChannel, mins, maxs)
	for _, bc := range []struct {
		name string
		p    quant.Params
	}{{"per-tensor", perTensor}, {"per-channel", perChannel}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(4 * benchN)
			for b.Loop() {
				quant.FakeQuantize(y, x, benchShape, bc.p)
			}
		})
	}
}

func BenchmarkQuantize(b *testing.B) {
	x, q := benchData(), make([]int32, benchN)
	p := quant.ParamsFromRange(quant.Scheme{}, -4, 4)
	b.SetBytes(4 * benchN)
	for b.Loop() {
		quant.Quantize(q, x, nil, p)
	}
}

func BenchmarkMinMaxObserve(b *testing.B) {
	x := benchData()
	obs := quant.NewMinMax(quant.Scheme{})
	b.SetBytes(4 * benchN)
	for b.Loop() {
		if err := obs.Observe(x, nil); err != nil {
			b.Fatal(err)
		}
	}
}
