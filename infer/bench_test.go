package infer

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"qat/model"
	"qat/qmodel"
)

// BenchmarkLenet runs the lenet of testNets (random weights, the shapes
// of the built-in model) on batches of random pixels, one thread, with
// float and fixed-point requantization, and reports samples/s.
func BenchmarkLenet(b *testing.B) {
	for _, bits := range []int{8, 4} {
		for _, mode := range []qmodel.Requant{qmodel.RequantFloat, qmodel.RequantFixed} {
			name := map[int]string{8: "W8A8", 4: "W4A8"}[bits] + "/" + string(mode)
			b.Run(name, func(b *testing.B) { benchLenet(b, bits, mode) })
		}
	}
}

// BenchmarkLenetConv runs the W8A8 lenet of BenchmarkLenet with its
// convolutions implicit (qgemm.GemmConv) and through im2col rows, and
// reports samples/s.
func BenchmarkLenetConv(b *testing.B) {
	defer func() { useImplicit = true }()
	for _, implicit := range []bool{true, false} {
		b.Run(map[bool]string{true: "implicit", false: "im2col"}[implicit], func(b *testing.B) {
			useImplicit = implicit
			benchLenet(b, 8, qmodel.RequantFloat)
		})
	}
}

// benchLenet times batches of 250 random pixels through the lenet of
// testNets with weights of bits and mode's requantization.
func benchLenet(b *testing.B, bits int, mode qmodel.Requant) {
	rng := rand.New(rand.NewPCG(1, 1))
	m := randomModel(b, rng, testNets[0].in, testNets[0].specs, bits, 8, mode)
	net, err := New(m)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 250
	pixels := make([]uint8, batch*net.InputLen())
	for i := range pixels {
		pixels[i] = uint8(rng.IntN(256))
	}
	r := net.NewRunner(batch)
	b.ReportAllocs()
	for b.Loop() {
		r.Pixels(pixels)
		r.Run(batch)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkIm2col gathers the im2col rows of the lenet's two convolutions
// for one sample.
func BenchmarkIm2col(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	m := randomModel(b, rng, testNets[0].in, testNets[0].specs, 8, 8, qmodel.RequantFloat)
	net, err := New(m)
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range net.ops {
		if o.kind != model.OpConv {
			continue
		}
		b.Run(o.name, func(b *testing.B) {
			src := make([]uint8, size(o.in))
			for i := range src {
				src[i] = uint8(rng.IntN(256))
			}
			var s scratch
			col := make([]uint8, o.co[0]*o.co[1]*o.k*o.k*o.in[2]+16)
			for b.Loop() {
				o.im2col(col, src, o.in[2], &s)
			}
		})
	}
}

// BenchmarkDepthwise runs a MobileNetV2-like depthwise conv (144
// channels, 16x16, 3x3, padding 1, strides 1 and 2) on 32 samples with
// the direct kernel and with the per-group GEMM path it replaces, and
// reports samples/s.
func BenchmarkDepthwise(b *testing.B) {
	for _, stride := range []int{1, 2} {
		rng := rand.New(rand.NewPCG(1, 1))
		const c, h, w, batch = 144, 16, 16, 32
		o := randomDepthwise(rng, c, 3, stride, 1, 8, qmodel.RequantFloat)
		in := []value{{shape: []int{h, w, c}, q: qmodel.Quant{Scale: 0.02, ZeroPoint: 3, QMin: 0, QMax: 255}}}
		direct, err := newOp(o, in, qmodel.RequantFloat)
		if err != nil {
			b.Fatal(err)
		}
		gemm, err := newOp(o, in, qmodel.RequantFloat)
		if err != nil {
			b.Fatal(err)
		}
		if err := gemm.prepareConv(o, in[0].q, qmodel.RequantFloat, false); err != nil {
			b.Fatal(err)
		}
		src := make([]uint8, batch*h*w*c)
		for i := range src {
			src[i] = uint8(rng.IntN(256))
		}
		for _, p := range []struct {
			name string
			op   *op
		}{{"direct", direct}, {"gemm", gemm}} {
			b.Run(fmt.Sprintf("stride%d/%s", stride, p.name), func(b *testing.B) {
				dst := make([]uint8, batch*size(p.op.out))
				var s scratch
				for b.Loop() {
					p.op.run(dst, src, batch, &s)
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
