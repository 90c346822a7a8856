package infer

import (
	"math/rand/v2"
	"testing"

	"qat/qmodel"
)

// The tables give the element rules' codes: for random quantizations and
// clamps, a lookup equals Add and Requantize on every pair and code.
func TestJoinTables(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	quant := func() qmodel.Quant {
		z := int32(rng.IntN(256))
		return qmodel.Quant{Scale: float32(0.001 + rng.Float64()/10), ZeroPoint: z, QMin: 0, QMax: 255}
	}
	for trial := range 8 {
		qa, qb, out := quant(), quant(), quant()
		lo, hi := int32(0), int32(255)
		if trial%2 == 1 {
			lo, hi = out.ZeroPoint, min(out.ZeroPoint+100, 255) // a fused ReLU6-like clamp
		}
		at := AddTable(qa, qb, out, lo, hi)
		a, b, want := make([]uint8, 1<<16), make([]uint8, 1<<16), make([]uint8, 1<<16)
		for i := range a {
			a[i], b[i] = uint8(rng.IntN(256)), uint8(rng.IntN(256))
		}
		Add(want, a, b, qa, qb, out, lo, hi)
		for i := range a {
			if got := at[int(a[i])<<8|int(b[i])]; got != want[i] {
				t.Fatalf("trial %d: table %d + %d = %d, Add %d", trial, a[i], b[i], got, want[i])
			}
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
