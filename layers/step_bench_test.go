package layers

import (
	"testing"

	"qat/data"
	"qat/model"
)

// BenchmarkTrainStep times one training step (forward, loss and every
// param's gradient, copied out into Param.Grad) of the built-in models at
// batch 128 on real MNIST images, float and QAT (default QuantConfig,
// observers observing, BN folded for lenet). The optimizer update is not
// included. samples/s is batch size times steps per second.
func BenchmarkTrainStep(b *testing.B) {
	const batch = 128
	ds, err := data.LoadEmbedded("train")
	if err != nil {
		b.Fatal(err)
	}
	for _, arch := range []string{"lenet", "mlp"} {
		for _, qat := range []bool{false, true} {
			name := arch + "/float"
			if qat {
				name = arch + "/qat"
			}
			b.Run(name, func(b *testing.B) {
				s, err := model.Builtin(arch)
				if err != nil {
					b.Fatal(err)
				}
				m, err := NewModel(s, 1)
				if err != nil {
					b.Fatal(err)
				}
				if qat {
					if err := m.Quantize(QuantConfig{}); err != nil {
						b.Fatal(err)
					}
				}
				gr, err := m.NewGraph(batch, Train)
				if err != nil {
					b.Fatal(err)
				}
				idx := make([]int, batch)
				for i := range idx {
					idx[i] = i
				}
				labels := make([]int, batch)
				ds.Fill(gr.Input(), labels, idx, model.Norm{Mean: data.MNISTMean, Std: data.MNISTStd})
				if err := gr.Run(labels); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := gr.Run(labels); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(batch*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
