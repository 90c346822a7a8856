package infer

import (
	"math/rand/v2"
	"testing"

	"qat/qmodel"
)

// BenchmarkLenet runs the lenet of testNets (random weights, the shapes
// of the built-in model) on batches of random pixels and reports
// samples/s.
func BenchmarkLenet(b *testing.B) {
	for _, bits := range []int{8, 4} {
		b.Run(map[int]string{8: "W8A8", 4: "W4A8"}[bits], func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			m := randomModel(b, rng, testNets[0].in, testNets[0].specs, bits, 8, qmodel.RequantFloat)
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
			b.ResetTimer()
			for range b.N {
				r.Pixels(pixels)
				r.Run(batch)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
