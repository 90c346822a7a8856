package ops

import (
	"math/rand"
	"testing"
)

// BenchmarkConv2dLeNet times LeNet's two convolutions at batch 128, our op
// next to gorgonia.Conv2d, forward alone and forward plus both gradients
// (through gorgonia.Grad of sum(y .* dY) on a TapeMachine; the Sum and
// HadamardProd are in both). samples/s is batch size times runs per second.
func BenchmarkConv2dLeNet(b *testing.B) {
	const batch = 128
	layers := []struct {
		name string
		c    convCase
	}{
		{"conv1", convCase{batch, 1, 28, 28, 16, 5, 5, 1, 0}},
		{"conv2", convCase{batch, 16, 12, 12, 32, 5, 5, 1, 0}},
	}
	for _, l := range layers {
		for _, impl := range []struct {
			name string
			ours bool
		}{{"qat", true}, {"gorgonia", false}} {
			for _, pass := range []struct {
				name     string
				withGrad bool
			}{{"fwd", false}, {"fwdbwd", true}} {
				b.Run(l.name+"/"+impl.name+"/"+pass.name, func(b *testing.B) {
					c := l.c
					r := rand.New(rand.NewSource(1))
					oh, ow := (c.h+2*c.p-c.kh)/c.s+1, (c.w+2*c.p-c.kw)/c.s+1
					x := randTensor(r, c.n, c.c, c.h, c.w)
					w := randTensor(r, c.o, c.c, c.kh, c.kw)
					dy := randTensor(r, c.n, c.o, oh, ow)
					cg := buildConv(b, impl.ours, x, w, dy, c.cfg(), pass.withGrad)
					cg.run(b) // warm up scratch buffers
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						cg.run(b)
					}
					b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
				})
			}
		}
	}
}
