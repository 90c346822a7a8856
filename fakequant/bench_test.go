package fakequant

import (
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
	"qat/quant"
)

// The benchmarks call the ops' Do directly on 1M float32 (4 MiB), so that
// their time reads as a ratio to BenchmarkCopy of the same slice. Do
// allocates its output, hence the alloc+copy variant.

const benchN = 1 << 20

var benchShape = []int{256, benchN / 256} // per channel: 256 channels on axis 0

func benchX() []float32 {
	x := make([]float32, benchN)
	s := uint32(1)
	for i := range x {
		s = s*1664525 + 1013904223
		x[i] = float32(int32(s)) / (1 << 31) * 3
	}
	return x
}

func benchParams(perChannel bool) quant.Params {
	if !perChannel {
		return quant.Params{Scale: []float32{0.02}, ZeroPoint: []int32{3}, QMin: -128, QMax: 127, Axis: -1}
	}
	p := quant.Params{Scale: make([]float32, 256), ZeroPoint: make([]int32, 256), QMin: -127, QMax: 127, Axis: 0}
	for c := range p.Scale {
		p.Scale[c] = 0.01 + float32(c)/10000
	}
	return p
}

var benchModes = []struct {
	name       string
	perChannel bool
}{{"per-tensor", false}, {"per-channel", true}}

func BenchmarkCopy(b *testing.B) {
	src := benchX()
	b.Run("copy", func(b *testing.B) {
		dst := make([]float32, benchN)
		b.SetBytes(4 * benchN)
		for b.Loop() {
			copy(dst, src)
		}
	})
	b.Run("alloc+copy", func(b *testing.B) {
		b.SetBytes(4 * benchN)
		for b.Loop() {
			dst := make([]float32, benchN)
			copy(dst, src)
		}
	})
}

func benchForwardOp(b *testing.B, perChannel bool) (*fqOp, gorgonia.Value) {
	q, err := NewFixed(benchParams(perChannel))
	if err != nil {
		b.Fatal(err)
	}
	x := tensor.New(tensor.WithShape(benchShape...), tensor.WithBacking(benchX()))
	return &fqOp{q: q, id: graphval.NewID(), rec: new(record)}, x
}

func BenchmarkFakeQuantForward(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			op, x := benchForwardOp(b, m.perChannel)
			b.SetBytes(4 * benchN)
			for b.Loop() {
				if _, err := op.Do(x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("per-tensor-observing", func(b *testing.B) {
		op, x := benchForwardOp(b, false)
		op.q = New(quant.NewMinMax(quant.Scheme{Signed: true}))
		b.SetBytes(4 * benchN)
		for b.Loop() {
			if _, err := op.Do(x); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkFakeQuantBackward(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			op, x := benchForwardOp(b, m.perChannel)
			y, err := op.Do(x)
			if err != nil {
				b.Fatal(err)
			}
			gop := &steOp{name: op.q.name, fwd: op.id, rec: op.rec}
			b.SetBytes(4 * benchN)
			for b.Loop() {
				if _, err := gop.Do(x, y, y); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLearnableBackward is the LSQ+ parameter gradient, one pass over
// x (the input gradient is the STE op's, timed by BenchmarkFakeQuantBackward).
func BenchmarkLearnableBackward(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			p := benchParams(m.perChannel)
			l, err := NewLearnable(LearnableConfig{QMin: p.QMin, QMax: p.QMax, PerChannel: m.perChannel, LearnZeroPoint: true})
			if err != nil {
				b.Fatal(err)
			}
			c := len(p.Scale)
			zp := make([]float32, c)
			for i, z := range p.ZeroPoint {
				zp[i] = float32(z)
			}
			s := tensor.New(tensor.WithShape(c), tensor.WithBacking(p.Scale))
			z := tensor.New(tensor.WithShape(c), tensor.WithBacking(zp))
			x := tensor.New(tensor.WithShape(benchShape...), tensor.WithBacking(benchX()))
			op := &lfqOp{l: l, id: graphval.NewID(), c: c, rec: new(record)}
			y, err := op.Do(x, s, z)
			if err != nil {
				b.Fatal(err)
			}
			gop := &paramGradOp{fwd: op, learnZ: true}
			b.SetBytes(4 * benchN)
			for b.Loop() {
				if _, err := gop.Do(x, y, y); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
