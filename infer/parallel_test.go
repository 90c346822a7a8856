package infer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"qat/model"
	"qat/qmodel"
)

// TestParallelMatchesRunner checks that a Parallel returns the codes of
// one Runner on the whole batch, bit for bit, for 1, 2, 3 and 7 threads,
// on full and partial batches.
func TestParallelMatchesRunner(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tn := range allNets() {
		for _, mode := range []qmodel.Requant{qmodel.RequantFloat, qmodel.RequantFixed} {
			m := randomModel(t, rng, tn.in, tn.specs, 8, 8, mode)
			net, err := New(m)
			if err != nil {
				t.Fatal(err)
			}
			const batch = 11
			n := net.InputLen()
			pixels := make([]uint8, batch*n)
			for i := range pixels {
				pixels[i] = uint8(rng.IntN(256))
			}
			r := net.NewRunner(batch)
			for _, threads := range []int{1, 2, 3, 7} {
				p := net.NewParallel(batch, threads)
				for _, b := range []int{batch, 5, 1} {
					r.Pixels(pixels[:b*n])
					want := r.Run(b)
					if got := p.Run(pixels[:b*n]); !bytes.Equal(got, want) {
						t.Fatalf("%s/%s/threads=%d/batch=%d: got %v, want %v", tn.name, mode, threads, b, got, want)
					}
				}
			}
		}
	}
}

// TestLayerRunParallel checks that Layer.RunParallel writes what Run
// writes, for a conv and a linear layer, 1, 2, 3 and 7 threads and
// batches that split unevenly.
func TestLayerRunParallel(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	in := [3]int{3, 9, 8}
	conv := randomModel(t, rng, in, []layerSpec{{typ: model.OpConv, out: 5, k: 3, stride: 1, pad: 1, act: model.OpReLU}, {typ: model.OpFlatten}}, 8, 8, qmodel.RequantFloat)
	linear := randomModel(t, rng, in, []layerSpec{{typ: model.OpFlatten}, {typ: model.OpLinear, out: 9}}, 8, 8, qmodel.RequantFixed)
	for _, tc := range []struct {
		op *qmodel.Op
		in []int
		q  qmodel.Quant
		rq qmodel.Requant
	}{
		{&conv.Ops[0], in[:], conv.InputQuant, qmodel.RequantFloat},
		{&linear.Ops[1], []int{in[0] * in[1] * in[2]}, linear.InputQuant, qmodel.RequantFixed},
	} {
		const batch = 11
		src := make([]uint8, batch*size(tc.in))
		for i := range src {
			src[i] = uint8(rng.IntN(256))
		}
		l, err := NewLayer(tc.op, tc.in, tc.q, tc.rq)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]uint8, batch*size(l.OutShape()))
		l.Run(want, src, batch)
		for _, threads := range []int{1, 2, 3, 7} {
			for _, b := range []int{batch, 4, 1} {
				got := make([]uint8, b*size(l.OutShape()))
				l.RunParallel(got, src[:b*size(tc.in)], b, threads)
				if !bytes.Equal(got, want[:len(got)]) {
					t.Fatalf("%s/threads=%d/batch=%d: RunParallel differs from Run", tc.op.Type, threads, b)
				}
			}
		}
	}
}

// BenchmarkParallelLenet runs the lenet of testNets (random W8A8
// weights) on batches of 250 random pixels on 1 and 2 goroutines and
// reports samples/s.
func BenchmarkParallelLenet(b *testing.B) {
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			m := randomModel(b, rng, testNets[0].in, testNets[0].specs, 8, 8, qmodel.RequantFloat)
			net, err := New(m)
			if err != nil {
				b.Fatal(err)
			}
			const batch = 250
			pixels := make([]uint8, batch*net.InputLen())
			for i := range pixels {
				pixels[i] = uint8(rng.IntN(256))
			}
			p := net.NewParallel(batch, threads)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				p.Run(pixels)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
