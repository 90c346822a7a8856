package infer

import (
	"math/rand/v2"
	"testing"

	"qat/qmodel"
)

// The table gives the concat rule's codes: for random quantizations and
// clamps, a lookup equals Requantize on every code. (Add's arithmetic is
// qvec.AddCodes', tested there on every pair of codes.)
func TestJoinTables(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	quant := func() qmodel.Quant {
		z := int32(rng.IntN(256))
		return qmodel.Quant{Scale: float32(0.001 + rng.Float64()/10), ZeroPoint: z, QMin: 0, QMax: 255}
	}
	for trial := range 8 {
		qa, out := quant(), quant()
		lo, hi := int32(0), int32(255)
		if trial%2 == 1 {
			lo, hi = out.ZeroPoint, min(out.ZeroPoint+100, 255) // a fused ReLU6-like clamp
		}
		rt := RequantizeTable(qa, out, lo, hi)
		var src, rw [256]uint8
		for i := range src {
			src[i] = uint8(i)
		}
		Requantize(rw[:], src[:], qa, out, lo, hi)
		if *rt != rw {
			t.Fatalf("trial %d: requantize table differs", trial)
		}
	}
}
