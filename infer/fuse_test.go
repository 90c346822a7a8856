package infer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"qat/model"
	"qat/qmodel"
	"qat/quant"
)

// poolNets end convolutions in max pools of every kind the fusion takes:
// odd sizes, padding and stride in the conv, pools with stride below,
// equal to and above the kernel, 1x1 pools, windows that leave columns
// and rows out, channel counts that are not multiples of 8 or 16, and a
// net whose output is a fused pool's, flattened.
var poolNets = []testNet{
	{"k2s2-odd", [3]int{3, 13, 11}, []layerSpec{
		{typ: model.OpConv, out: 5, k: 3, stride: 1, pad: 1, act: model.OpReLU},
		{typ: model.OpMaxPool, k: 2, stride: 2},
		{typ: model.OpConv, out: 13, k: 2, stride: 1},
		{typ: model.OpMaxPool, k: 3, stride: 1},
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 4},
	}},
	{"strided-conv-k3s2", [3]int{2, 15, 14}, []layerSpec{
		{typ: model.OpConv, out: 20, k: 3, stride: 2, pad: 2, bn: 1, act: model.OpReLU6},
		{typ: model.OpMaxPool, k: 3, stride: 2},
		{typ: model.OpConv, out: 9, k: 1, stride: 1},
		{typ: model.OpMaxPool, k: 1, stride: 1},
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 3},
	}},
	{"pool-stride-above-kernel", [3]int{1, 17, 12}, []layerSpec{
		{typ: model.OpConv, out: 16, k: 4, stride: 1, act: model.OpReLU},
		{typ: model.OpMaxPool, k: 2, stride: 3},
		{typ: model.OpConv, out: 33, k: 2, stride: 1, pad: 1},
		{typ: model.OpMaxPool, k: 2, stride: 2},
		{typ: model.OpFlatten},
	}},
	{"1x1-conv-pool", [3]int{7, 6, 5}, []layerSpec{
		{typ: model.OpConv, out: 8, k: 1, stride: 1, act: model.OpReLU},
		{typ: model.OpMaxPool, k: 2, stride: 1},
		{typ: model.OpReLU6},
		{typ: model.OpMaxPool, k: 2, stride: 2},
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 5},
	}},
}

// TestFusedPoolNets runs nets with fused conv and max pool ops against
// the same nets unfused and against the reference, for every weight and
// activation width and both requantizations.
func TestFusedPoolNets(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	nets := append(poolNets[:len(poolNets):len(poolNets)], testNets[0])
	for _, tn := range nets {
		for _, bits := range [][2]int{{8, 8}, {4, 4}, {2, 8}, {8, 5}} {
			for _, mode := range []qmodel.Requant{qmodel.RequantFloat, qmodel.RequantFixed} {
				t.Run(fmt.Sprintf("%s/W%dA%d/%s", tn.name, bits[0], bits[1], mode), func(t *testing.T) {
					m := randomModel(t, rng, tn.in, tn.specs, bits[0], bits[1], mode)
					fused, err := New(m)
					if err != nil {
						t.Fatal(err)
					}
					plain, err := newNet(m, false)
					if err != nil {
						t.Fatal(err)
					}
					pools := 0
					for _, o := range fused.ops {
						if o.poolK > 0 {
							pools++
						}
					}
					if pools == 0 || len(fused.ops)+pools != len(plain.ops) {
						t.Fatalf("%d ops with %d fused pools, %d unfused", len(fused.ops), pools, len(plain.ops))
					}
					if fused.OutputQuant() != plain.OutputQuant() {
						t.Fatalf("output quant %v, unfused %v", fused.OutputQuant(), plain.OutputQuant())
					}
					const batch = 7
					n := fused.InputLen()
					pixels := make([]uint8, batch*n)
					for i := range pixels {
						pixels[i] = uint8(rng.IntN(256))
					}
					rf, rp := fused.NewRunner(batch), plain.NewRunner(batch)
					rf.Pixels(pixels)
					rp.Pixels(pixels)
					got, want := rf.Run(batch), rp.Run(batch)
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("fused %v, unfused %v", got, want)
					}
					for s := range 2 {
						if ref := refRun(m, pixels[s*n:(s+1)*n]); fmt.Sprint(got[s*len(ref):(s+1)*len(ref)]) != fmt.Sprint(ref) {
							t.Fatalf("sample %d: fused %v, reference %v", s, got[s*len(ref):(s+1)*len(ref)], ref)
						}
					}
				})
			}
		}
	}
}

// TestFusedPoolFinish compares the fused epilogue (pool the accumulators,
// then requantize) with requantization of every accumulator followed by
// a max pool, per index, on accumulators over the whole range that
// fusePool accepts, with many ties, multipliers that clamp most codes at
// either bound, and every pool shape.
func TestFusedPoolFinish(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for trial := range 400 {
		oc := 1 + rng.IntN(40)
		oh, ow := 1+rng.IntN(9), 1+rng.IntN(9)
		k := 1 + rng.IntN(min(oh, ow, 4))
		st := 1 + rng.IntN(3)
		ph, pw := (oh-k)/st+1, (ow-k)/st+1
		n := 1 + rng.IntN(3)
		kd := 1 + rng.IntN(500)
		bound := int32(255 * 128 * kd)
		p := &op{kind: model.OpConv, co: []int{oh, ow, oc}, out: []int{ph, pw, oc},
			outQ: qmodel.Quant{ZeroPoint: int32(rng.IntN(256))}}
		p.lo = int32(rng.IntN(128))
		p.hi = p.lo + int32(rng.IntN(256-int(p.lo)))
		p.bias = make([]int32, oc)
		fixed := trial%2 == 1
		for c := range oc {
			p.bias[c] = int32(rng.Int64N(2*int64(math.MaxInt32-bound))) - (math.MaxInt32 - bound)
			if rng.IntN(3) == 0 {
				p.bias[c] = 0
			}
			// From very small (most codes tie at zp) to very large (most
			// codes clamp at lo or hi).
			scale := math.Pow(2, float64(rng.IntN(40)-36))
			if fixed {
				m0, sh, err := quant.FixedMultiplier(scale * (1 + rng.Float64()))
				if err != nil {
					t.Fatal(err)
				}
				p.m0, p.shift = append(p.m0, m0), append(p.shift, sh)
			} else {
				p.mult = append(p.mult, float32(scale*(1+rng.Float64())))
			}
		}
		acc := make([]int32, n*oh*ow*oc)
		for i := range acc {
			switch rng.IntN(5) {
			case 0:
				acc[i] = bound
			case 1:
				acc[i] = -bound
			case 2:
				acc[i] = int32(rng.IntN(5)) - 2
			default:
				acc[i] = int32(rng.Int64N(2*int64(bound)+1)) - bound
			}
		}
		codes := make([]uint8, len(acc))
		p.requant(codes, acc)
		want := make([]uint8, n*ph*pw*oc)
		for s := range n {
			for py := range ph {
				for px := range pw {
					for c := range oc {
						best := uint8(0)
						for ky := range k {
							for kx := range k {
								best = max(best, codes[((s*oh+py*st+ky)*ow+px*st+kx)*oc+c])
							}
						}
						want[((s*ph+py)*pw+px)*oc+c] = best
					}
				}
			}
		}
		q := &op{kind: model.OpMaxPool, k: k, stride: st, out: p.out}
		p.out = p.co
		if !p.fusePoolBound(q, kd) {
			t.Fatalf("trial %d: not fused", trial)
		}
		got := make([]uint8, len(want))
		var sc scratch
		p.finish(got, acc, n, &sc)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("trial %d (fixed %v, oc %d, [%d %d] k %d stride %d): code %d got %d want %d",
					trial, fixed, oc, oh, ow, k, st, i, got[i], want[i])
			}
		}
	}
}

// fusePool refuses what could change a code: a bias that lets acc + bias
// wrap, a multiplier that is not finite and positive, a negative m0.
func TestFusePoolRefuses(t *testing.T) {
	q := &op{kind: model.OpMaxPool, k: 2, stride: 2, out: []int{1, 1, 1}}
	for _, p := range []*op{
		{kind: model.OpConv, bias: []int32{math.MaxInt32 - 255*128*10 + 1}, mult: []float32{1}},
		{kind: model.OpConv, bias: []int32{math.MinInt32 + 255*128*10 - 1}, mult: []float32{1}},
		{kind: model.OpConv, bias: []int32{0}, mult: []float32{0}},
		{kind: model.OpConv, bias: []int32{0}, mult: []float32{float32(math.Inf(1))}},
		{kind: model.OpConv, bias: []int32{0}, mult: []float32{float32(math.NaN())}},
		{kind: model.OpConv, bias: []int32{0}, m0: []int32{-1}, shift: []int32{0}},
		{kind: model.OpLinear, bias: []int32{0}, mult: []float32{1}},
	} {
		if p.fusePoolBound(q, 10) {
			t.Errorf("fused %+v", p)
		}
	}
	if p := (&op{kind: model.OpConv, bias: []int32{math.MaxInt32 - 255*128*10}, mult: []float32{1}}); !p.fusePoolBound(q, 10) {
		t.Error("refused a bias at the bound")
	}
}
