package infer

import (
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
			b.Run(name, func(b *testing.B) {
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
				b.ResetTimer()
				for range b.N {
					r.Pixels(pixels)
					r.Run(batch)
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
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
				o.im2col(col, src, &s)
			}
		})
	}
}
