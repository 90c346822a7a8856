package ste_test

import (
	"math/rand/v2"
	"testing"

	"qat/quant"
	"qat/ste"
)

// Backward passes on 1M float32, next to a plain copy of the same slice so
// that the overhead reads as a ratio (quant's benchmarks time the forward).
const benchN = 1 << 20

var benchShape = []int{256, 4096} // 256 output channels on axis 0

func benchInputs() (x, dy []float32) {
	r := rand.New(rand.NewPCG(1, 1))
	x, dy = make([]float32, benchN), make([]float32, benchN)
	for i := range x {
		x[i] = float32(r.NormFloat64())
		dy[i] = float32(r.NormFloat64())
	}
	return x, dy
}

func benchParams() map[string]quant.Params {
	mins, maxs := make([]float32, 256), make([]float32, 256)
	for i := range mins {
		mins[i], maxs[i] = -3, 3
	}
	return map[string]quant.Params{
		"per-tensor":  quant.ParamsFromRange(quant.Scheme{Signed: true}, -3, 3),
		"per-channel": quant.ParamsFromRanges(quant.Int8SymmetricPerChannel, mins, maxs),
	}
}

func BenchmarkCopy(b *testing.B) {
	x, y := benchInputs()
	b.SetBytes(4 * benchN)
	for b.Loop() {
		copy(y, x)
	}
}

func BenchmarkClipped(b *testing.B) {
	x, dy := benchInputs()
	gx := make([]float32, benchN)
	for name, p := range benchParams() {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(4 * benchN)
			for b.Loop() {
				ste.Clipped(gx, dy, x, benchShape, p)
			}
		})
	}
}

func BenchmarkLSQPlus(b *testing.B) {
	x, dy := benchInputs()
	gx := make([]float32, benchN)
	for name, p := range benchParams() {
		gs, gz := make([]float32, len(p.Scale)), make([]float32, len(p.Scale))
		g := ste.GradFactor(benchN, p.QMax)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(4 * benchN)
			for b.Loop() {
				ste.LSQPlus(gx, gs, gz, dy, x, benchShape, p, g)
			}
		})
	}
}
