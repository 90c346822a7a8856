package ops

import (
	"fmt"
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

// BenchmarkConv2dDepthwise times a depthwise convolution (groups = C =
// O, 3×3, padding 1) on MobileNetV2-like shapes at batch 32, the direct
// loops the op uses (depthwise.go) next to what the GEMM path would do
// (im2col and one GEMM per group and sample), for the forward and each
// gradient. samples/s is batch size times runs per second.
func BenchmarkConv2dDepthwise(b *testing.B) {
	for _, c := range []convCase{
		{32, 96, 16, 16, 96, 3, 3, 1, 1},
		{32, 144, 16, 16, 144, 3, 3, 2, 1},
	} {
		r := rand.New(rand.NewSource(1))
		cfg := ConvConfig{Stride: c.s, Padding: c.p, Groups: c.c}
		x, w := randTensor(r, c.n, c.c, c.h, c.w), randTensor(r, c.o, 1, c.kh, c.kw)
		g, err := geometry(x.Shape(), w.Shape(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		dy := randTensor(r, g.outShape()...)
		xs, ws, dys := x.Float32s(), w.Float32s(), dy.Float32s()
		y, dx, dw := make([]float32, len(dys)), make([]float32, len(xs)), make([]float32, len(ws))
		op := newConv(cfg)
		gx, gw := newConvGrad(op, false), newConvGrad(op, true)
		for _, k := range []struct {
			name string
			run  func()
		}{
			{"fwd/direct", func() { depthwise3x3(y, xs, ws, g, &op.cols) }},
			{"fwd/gemm", func() { op.forwardGEMM(y, xs, ws, g) }},
			{"dx/direct", func() { depthwise3x3GradX(dx, ws, dys, g, &gx.cols) }},
			{"dx/gemm", func() { gx.gradXGEMM(dx, ws, dys, g) }},
			{"dw/direct", func() { depthwise3x3GradW(dw, xs, dys, g, &gw.cols) }},
			{"dw/gemm", func() { gw.gradWGEMM(dw, xs, dys, g) }},
		} {
			b.Run(fmt.Sprintf("c=%d/s=%d/%s", c.c, c.s, k.name), func(b *testing.B) {
				k.run() // warm up scratch buffers
				b.ResetTimer()
				for range b.N {
					k.run()
				}
				b.ReportMetric(float64(b.N*c.n)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
