package infer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"qat/model"
	"qat/qmodel"
	"qat/quant"
)

// The expected codes here come from refRun (infer_test.go), op by op in
// NCHW with the element rules written out, and, for the depthwise
// kernel, from the per-group GEMM path, which the reference checks in
// turn.

// dagNets are graphs: branches and joins, reads of the input and of ops
// several ops back, grouped and depthwise convs, padded max pools, and
// fusions a shared conv forbids. fused is how many max pools New fuses.
var dagNets = []struct {
	testNet
	fused int
}{
	// conv -> [depthwise conv, conv] -> add relu -> concat ->
	// global_avgpool -> flatten -> linear.
	{testNet{"branches", [3]int{3, 9, 8}, []layerSpec{
		{typ: model.OpConv, out: 6, k: 3, stride: 1, pad: 1, bn: 1, act: model.OpReLU},      // 0 [6 9 8]
		{typ: model.OpConv, out: 6, k: 3, stride: 2, pad: 1, groups: 6, act: model.OpReLU6}, // 1 [6 5 4] depthwise
		{typ: model.OpConv, out: 6, k: 3, stride: 2, pad: 1, in: []int{0}},                  // 2 [6 5 4]
		{typ: model.OpAdd, act: model.OpReLU, in: []int{1, 2}},                              // 3
		{typ: model.OpConcat, in: []int{3, 2}},                                              // 4 [12 5 4]
		{typ: model.OpGlobalAvgPool},                                                        // 5 [12 1 1]
		{typ: model.OpFlatten},                                                              // 6
		{typ: model.OpLinear, out: 5},                                                       // 7
	}}, 0},
	// A residual stage as resnet18's: a padded max pool (never fused),
	// an identity shortcut read three ops back, a 1x1 stride-2 one.
	{testNet{"resnet", [3]int{3, 15, 13}, []layerSpec{
		{typ: model.OpConv, out: 8, k: 3, stride: 2, pad: 1, bn: 1, act: model.OpReLU}, // 0 [8 8 7]
		{typ: model.OpMaxPool, k: 3, stride: 2, pad: 1},                                // 1 [8 4 4]
		{typ: model.OpConv, out: 8, k: 3, stride: 1, pad: 1, act: model.OpReLU},        // 2
		{typ: model.OpConv, out: 8, k: 3, stride: 1, pad: 1},                           // 3
		{typ: model.OpAdd, act: model.OpReLU, in: []int{3, 1}},                         // 4
		{typ: model.OpConv, out: 16, k: 3, stride: 2, pad: 1, act: model.OpReLU},       // 5 [16 2 2]
		{typ: model.OpConv, out: 16, k: 3, stride: 1, pad: 1},                          // 6
		{typ: model.OpConv, out: 16, k: 1, stride: 2, in: []int{4}},                    // 7 [16 2 2]
		{typ: model.OpAdd, act: model.OpReLU, in: []int{6, 7}},                         // 8
		{typ: model.OpGlobalAvgPool},                                                   // 9 [16 1 1]
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 4},
	}}, 0},
	// MobileNetV2's inverted residual (expand, depthwise, project, an add
	// without activation), then grouped convs that are not depthwise: 3x3
	// through im2col per group, 1x1 on the input itself.
	{testNet{"mobilenet", [3]int{4, 7, 9}, []layerSpec{
		{typ: model.OpConv, out: 6, k: 3, stride: 1, pad: 1, act: model.OpReLU6},              // 0 [6 7 9]
		{typ: model.OpConv, out: 12, k: 1, stride: 1, act: model.OpReLU6},                     // 1 [12 7 9]
		{typ: model.OpConv, out: 12, k: 3, stride: 1, pad: 1, groups: 12, act: model.OpReLU6}, // 2 depthwise
		{typ: model.OpConv, out: 6, k: 1, stride: 1},                                          // 3 [6 7 9]
		{typ: model.OpAdd, in: []int{3, 0}},                                                   // 4
		{typ: model.OpConv, out: 9, k: 3, stride: 2, pad: 1, groups: 3, act: model.OpReLU},    // 5 [9 4 5]
		{typ: model.OpConv, out: 6, k: 1, stride: 1, groups: 3},                               // 6 [6 4 5]
		{typ: model.OpGlobalAvgPool},                                                          // 7 [6 1 1]
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 3},
	}}, 0},
	// A max pool of a conv that another op reads too stays an op of its
	// own; the max pool of a conv it alone reads is fused.
	{testNet{"shared-conv", [3]int{2, 10, 10}, []layerSpec{
		{typ: model.OpConv, out: 5, k: 3, stride: 1, pad: 1, act: model.OpReLU}, // 0 [5 10 10]
		{typ: model.OpMaxPool, k: 2, stride: 2},                                 // 1 [5 5 5] not fused: 2 reads 0
		{typ: model.OpConv, out: 5, k: 2, stride: 2, in: []int{0}},              // 2 [5 5 5]
		{typ: model.OpConcat, in: []int{1, 2, 1}},                               // 3 [15 5 5]
		{typ: model.OpConv, out: 7, k: 2, stride: 1},                            // 4 [7 4 4]
		{typ: model.OpMaxPool, k: 2, stride: 2},                                 // 5 [7 2 2] fused
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 3},
	}}, 1},
	// Reads of the input (which no op writes over) and of an op that a
	// later op reads too (so the relu after it is not in place).
	{testNet{"reads-input", [3]int{2, 5, 5}, []layerSpec{
		{typ: model.OpConv, out: 3, k: 3, stride: 1, pad: 1}, // 0 [3 5 5]
		{typ: model.OpReLU6},                       // 1 reads 0, which 2 reads later
		{typ: model.OpConcat, in: []int{-1, 0, 1}}, // 2 [8 5 5]
		{typ: model.OpReLU, in: []int{-1}},         // 3 [2 5 5] of the input
		{typ: model.OpConv, out: 2, k: 1, stride: 1, in: []int{2}},
		{typ: model.OpAdd, in: []int{4, 3}},             // 5
		{typ: model.OpMaxPool, k: 3, stride: 2, pad: 1}, // 6 [2 3 3]
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 4},
	}}, 0},
	// Max pools fused into a depthwise conv and into a grouped 1x1 conv.
	{testNet{"grouped-pools", [3]int{3, 9, 9}, []layerSpec{
		{typ: model.OpConv, out: 4, k: 3, stride: 1, pad: 1, act: model.OpReLU},             // 0 [4 9 9]
		{typ: model.OpConv, out: 4, k: 3, stride: 1, pad: 1, groups: 4, act: model.OpReLU6}, // 1 depthwise
		{typ: model.OpMaxPool, k: 2, stride: 2},                                             // 2 [4 4 4]
		{typ: model.OpConv, out: 6, k: 1, stride: 1, groups: 2},                             // 3 [6 4 4]
		{typ: model.OpMaxPool, k: 2, stride: 1},                                             // 4 [6 3 3]
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 3},
	}}, 2},
	// Adds of flat codes: of two in the runtime's [H W C] order (kept),
	// then, at the end, of [H W C]-ordered codes and a linear's (both
	// brought to PyTorch's order first).
	{testNet{"flat-adds", [3]int{2, 3, 4}, []layerSpec{
		{typ: model.OpConv, out: 3, k: 2, stride: 1},                // 0 [3 2 3]
		{typ: model.OpFlatten},                                      // 1 [18]
		{typ: model.OpConv, out: 3, k: 2, stride: 1, in: []int{-1}}, // 2
		{typ: model.OpFlatten},                                      // 3
		{typ: model.OpAdd, in: []int{1, 3}},                         // 4 one order
		{typ: model.OpReLU},                                         // 5 in place
		{typ: model.OpLinear, out: 18},                              // 6
		{typ: model.OpAdd, act: model.OpReLU, in: []int{5, 6}},      // 7 two orders
	}}, 0},
}

// TestDAGNetsMatchReference runs every DAG net, fused and unfused, on
// Runners of two batch sizes, twice each, against the reference, for
// several weight and activation widths and both requantizations.
func TestDAGNetsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, tn := range dagNets {
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
					if pools != tn.fused || len(plain.ops) != len(m.Ops) {
						t.Fatalf("%d fused pools, want %d; %d unfused ops of %d", pools, tn.fused, len(plain.ops), len(m.Ops))
					}
					const batch = 5
					n := fused.InputLen()
					pixels := make([]uint8, batch*n)
					for i := range pixels {
						pixels[i] = uint8(rng.IntN(256))
					}
					want := make([][]uint8, batch)
					for s := range batch {
						want[s] = refRun(m, pixels[s*n:(s+1)*n])
					}
					for _, r := range []*Runner{fused.NewRunner(batch), fused.NewRunner(batch + 3), plain.NewRunner(batch)} {
						for range 2 { // the input survives a run
							r.Pixels(pixels)
							for range 2 {
								got := r.Run(batch)
								for s := range batch {
									if g := got[s*m.Classes : (s+1)*m.Classes]; !bytes.Equal(g, want[s]) {
										t.Fatalf("sample %d: got %v, want %v", s, g, want[s])
									}
								}
							}
						}
					}
				})
			}
		}
	}
}

// A chain needs the input's buffer and two more, whatever its length.
func TestPlanChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	for _, tn := range testNets {
		net, err := New(randomModel(t, rng, tn.in, tn.specs, 8, 8, qmodel.RequantFloat))
		if err != nil {
			t.Fatal(err)
		}
		if len(net.bufs) > 3 {
			t.Errorf("%s: %d buffers, want at most 3", tn.name, len(net.bufs))
		}
	}
}

// depthwiseOps returns the depthwise conv o prepared for the direct
// kernel and for the per-group GEMM path, on [h w c] input codes with
// zero point zin.
func depthwiseOps(t *testing.T, o *qmodel.Op, h, w int, zin int32, mode qmodel.Requant) (direct, gemm *op) {
	t.Helper()
	in := []value{{shape: []int{h, w, o.In}, q: qmodel.Quant{Scale: 0.02, ZeroPoint: zin, QMin: 0, QMax: 255}}}
	direct, err := newOp(o, in, mode)
	if err != nil {
		t.Fatal(err)
	}
	gemm, err = newOp(o, in, mode)
	if err != nil {
		t.Fatal(err)
	}
	if err := gemm.prepareConv(o, in[0].q, mode, false); err != nil {
		t.Fatal(err)
	}
	if direct.dw == nil || gemm.dw != nil || len(gemm.packs) != o.In {
		t.Fatalf("direct has %d depthwise weights, gemm %d and %d packs", len(direct.dw), len(gemm.dw), len(gemm.packs))
	}
	return direct, gemm
}

// randomDepthwise returns a depthwise conv op of c channels with random
// codes of the given width, bias, multipliers and clamp.
func randomDepthwise(rng *rand.Rand, c, k, stride, pad, bits int, mode qmodel.Requant) *qmodel.Op {
	o := &qmodel.Op{Type: model.OpConv, Name: "dw", In: c, Out: c, Kernel: k, Stride: stride, Padding: pad, Groups: c, WeightBits: bits,
		Output: qmodel.Quant{Scale: 0.05, ZeroPoint: int32(rng.IntN(256)), QMin: 0, QMax: 255}}
	lo := -1 << (bits - 1)
	for range c * k * k {
		o.Weight = append(o.Weight, int8(lo+rng.IntN(1<<bits)))
	}
	o.ClampMin = int32(rng.IntN(100))
	o.ClampMax = o.ClampMin + int32(rng.IntN(256-int(o.ClampMin)))
	for range c {
		o.Bias = append(o.Bias, int32(rng.IntN(1<<16))-1<<15)
		m := float32(0.0005 + 0.02*rng.Float64())
		if mode == qmodel.RequantFloat {
			o.Multiplier = append(o.Multiplier, m)
			continue
		}
		m0, shift, err := quant.FixedMultiplier(float64(m))
		if err != nil {
			panic(err)
		}
		o.FixedMultiplier, o.Shift = append(o.FixedMultiplier, m0), append(o.Shift, shift)
	}
	return o
}

// checkDepthwise compares the direct kernel with the per-group GEMM path
// on batch samples of random codes.
func checkDepthwise(t *testing.T, rng *rand.Rand, o *qmodel.Op, h, w int, mode qmodel.Requant) {
	t.Helper()
	direct, gemm := depthwiseOps(t, o, h, w, int32(rng.IntN(256)), mode)
	const batch = 3
	src := make([]uint8, batch*h*w*o.In)
	for i := range src {
		src[i] = uint8(rng.IntN(256))
	}
	got, want := make([]uint8, batch*size(direct.out)), make([]uint8, batch*size(gemm.out))
	var s1, s2 scratch
	direct.run(got, src, batch, &s1)
	gemm.run(want, src, batch, &s2)
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("c=%d [%d %d] k=%d stride=%d pad=%d %d-bit %s: code %d direct %d, per-group GEMM %d",
			o.In, h, w, o.Kernel, o.Stride, o.Padding, o.WeightBits, mode, i, got[i], want[i])
	}
}

// TestDepthwiseMatchesGroupGEMM compares the direct depthwise kernel with
// the per-group GEMM path at odd sizes, channel counts around the vector
// widths, strides above and below the kernel, and padding up to K-1.
func TestDepthwiseMatchesGroupGEMM(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	for _, c := range []int{2, 3, 7, 16, 17, 33} {
		for _, g := range [][3]int{{1, 1, 0}, {1, 2, 0}, {2, 1, 1}, {3, 1, 1}, {3, 2, 1}, {3, 3, 2}, {4, 1, 3}, {5, 2, 2}} {
			k, stride, pad := g[0], g[1], g[2]
			for _, bits := range []int{8, 4, 2} {
				for _, mode := range []qmodel.Requant{qmodel.RequantFloat, qmodel.RequantFixed} {
					h, w := max(1, k-2*pad)+rng.IntN(6), max(1, k-2*pad)+rng.IntN(6)
					checkDepthwise(t, rng, randomDepthwise(rng, c, k, stride, pad, bits, mode), h, w, mode)
				}
			}
		}
	}
}

// FuzzDepthwise is TestDepthwiseMatchesGroupGEMM on fuzzed geometry.
func FuzzDepthwise(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint8(5), uint8(4), uint8(3), uint8(1), uint8(1), false)
	f.Add(uint64(2), uint8(17), uint8(9), uint8(2), uint8(5), uint8(2), uint8(4), true)
	f.Add(uint64(3), uint8(40), uint8(1), uint8(7), uint8(2), uint8(3), uint8(0), false)
	f.Fuzz(func(t *testing.T, seed uint64, c, h, w, k, stride, pad uint8, fixed bool) {
		rng := rand.New(rand.NewPCG(seed, 37))
		kk := 1 + int(k%6)
		p := int(pad) % kk
		mode := qmodel.RequantFloat
		if fixed {
			mode = qmodel.RequantFixed
		}
		bits := []int{8, 4, 2}[seed%3]
		o := randomDepthwise(rng, 2+int(c%48), kk, 1+int(stride%4), p, bits, mode)
		checkDepthwise(t, rng, o, max(1, kk-2*p)+int(h%12), max(1, kk-2*p)+int(w%12), mode)
	})
}

// A Layer runs grouped and depthwise convs as a Net does.
func TestLayerGroupedConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 40))
	in := [3]int{6, 7, 5}
	for _, first := range []layerSpec{
		{typ: model.OpConv, out: 6, k: 3, stride: 2, pad: 1, groups: 6, act: model.OpReLU6},
		{typ: model.OpConv, out: 9, k: 2, stride: 1, groups: 3},
		{typ: model.OpConv, out: 4, k: 1, stride: 1, groups: 2},
	} {
		m := randomModel(t, rng, in, []layerSpec{first, {typ: model.OpFlatten}}, 8, 8, qmodel.RequantFloat)
		net, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewLayer(&m.Ops[0], in[:], m.InputQuant, qmodel.RequantFloat)
		if err != nil {
			t.Fatal(err)
		}
		const batch = 2
		pixels := make([]uint8, batch*net.InputLen())
		for i := range pixels {
			pixels[i] = uint8(rng.IntN(256))
		}
		r := net.NewRunner(batch)
		r.Pixels(pixels)
		codes := make([]uint8, len(pixels))
		for i, p := range pixels {
			codes[i] = net.pixel[i%net.InputLen()/(in[1]*in[2])][p]
		}
		want := r.Run(batch) // in PyTorch's order, as the Layer's
		got := make([]uint8, len(want))
		l.Run(got, codes, batch)
		if !bytes.Equal(got, want) {
			t.Errorf("groups %d: layer %v, net %v", first.groups, got, want)
		}
	}
}

// GlobalAvgPool averages each plane, rounding half to even.
func TestGlobalAvgPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, s := range [][3]int{{1, 1, 1}, {3, 2, 5}, {70, 4, 4}, {2, 7, 1}, {5, 9, 13}} {
		c, h, w := s[0], s[1], s[2]
		const batch = 2
		src := make([]uint8, batch*c*h*w)
		for i := range src {
			src[i] = uint8(rng.IntN(256))
		}
		got := make([]uint8, batch*c)
		GlobalAvgPool(got, src, batch, c, h, w)
		for i := range got {
			var sum uint32
			for _, v := range src[i*h*w : (i+1)*h*w] {
				sum += uint32(v)
			}
			if want := divRoundEven(sum, uint32(h*w)); uint32(got[i]) != want {
				t.Fatalf("[%d %d %d] plane %d: got %d, want %d", c, h, w, i, got[i], want)
			}
		}
	}
}

// allNets is every test net, chains and graphs.
func allNets() []testNet {
	nets := slices.Clone(testNets)
	for _, d := range dagNets {
		nets = append(nets, d.testNet)
	}
	return nets
}
