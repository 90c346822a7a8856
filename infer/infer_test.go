package infer

import (
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"testing"

	"qat/export"
	"qat/internal/qgemm"
	"qat/model"
	"qat/qmodel"
	"qat/quant"
)

// The expected values here come from refRun, a direct NCHW transcription
// of the arithmetic in docs/int8-model.md with one loop per index; the
// models come from export.Freeze of random float layers, so the export's
// output is checked to be runnable too.

// actParams returns affine per-tensor params for range [lo, hi].
func actParams(lo, hi float32, bits int) quant.Params {
	return quant.ParamsFromRange(quant.Scheme{Bits: bits}, lo, hi)
}

func weightParams(w []float32, out, bits int) quant.Params {
	s := quant.Scheme{Bits: bits, Signed: true, Symmetric: true, NarrowRange: true, PerChannel: true}
	inner := len(w) / out
	mins, maxs := make([]float32, out), make([]float32, out)
	for c := range out {
		for _, v := range w[c*inner : (c+1)*inner] {
			mins[c], maxs[c] = min(mins[c], v), max(maxs[c], v)
		}
	}
	return quant.ParamsFromRanges(s, mins, maxs)
}

func randn(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64()) * scale
	}
	return v
}

// layerSpec is a compact description of a test layer: in lists the
// layers it reads (-1: the input; nil: the layer before).
type layerSpec struct {
	typ                             model.OpType
	out, k, stride, pad, bn, groups int
	act                             model.OpType
	in                              []int
}

// randomModel freezes a random float model of the given layers on a
// [c, h, w] input, its shapes by model's shape rule.
func randomModel(t testing.TB, rng *rand.Rand, in [3]int, specs []layerSpec, wbits, abits int, mode qmodel.Requant) *qmodel.Model {
	t.Helper()
	src := export.Source{Name: "test", Input: in, Norm: model.Norm{Mean: 0.13, Std: 0.31},
		InputQuant: actParams(-0.5, 2.8, abits)}
	var shapes [][]int
	for i, s := range specs {
		l := export.Layer{Node: model.Node{Op: s.typ, Name: fmt.Sprintf("l%d", i), Kernel: s.k, Stride: s.stride, Padding: s.pad,
			Groups: s.groups, Act: s.act}}
		if s.typ == model.OpConv || s.typ == model.OpLinear {
			l.Out = s.out
		}
		sources := s.in
		if sources == nil {
			sources = []int{i - 1}
		} else {
			for _, j := range s.in {
				l.Inputs = append(l.Inputs, map[bool]string{true: model.InputName, false: fmt.Sprintf("l%d", j)}[j < 0])
			}
		}
		ins := make([][]int, len(sources))
		for k, j := range sources {
			ins[k] = in[:]
			if j >= 0 {
				ins[k] = shapes[j]
			}
		}
		out, err := l.OutShape(ins...)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		shapes = append(shapes, out)
		lo := float32(-3)
		if s.act != "" {
			lo = 0
		}
		switch s.typ {
		case model.OpAdd, model.OpConcat:
			l.ActQuant = actParams(lo, 4+float32(rng.Float64()), abits)
		case model.OpConv, model.OpLinear:
			l.In = ins[0][0]
			inner := ins[0][0] / l.EffectiveGroups()
			if s.typ == model.OpConv {
				inner *= s.k * s.k
			}
			l.Weight = randn(rng, s.out*inner, 0.3)
			l.Bias = randn(rng, s.out, 0.2)
			if s.bn != 0 {
				v := randn(rng, s.out, 0.5)
				for i := range v {
					v[i] = v[i]*v[i] + 0.1
				}
				l.BN = &export.BN{Gamma: randn(rng, s.out, 1), Beta: randn(rng, s.out, 0.3), Mean: randn(rng, s.out, 0.2), Var: v, Eps: 1e-5}
			}
			w := l.Weight
			if l.BN != nil {
				sf := make([]float32, s.out)
				quant.FoldScale(sf, make([]float32, s.out), l.BN.Gamma, l.BN.Var, l.BN.Eps)
				w = make([]float32, len(l.Weight))
				for c := range s.out {
					for j := range inner {
						w[c*inner+j] = l.Weight[c*inner+j] * sf[c]
					}
				}
			}
			l.WeightQuant = weightParams(w, s.out, wbits)
			l.ActQuant = actParams(lo, 4+float32(rng.Float64()), abits)
		}
		src.Layers = append(src.Layers, l)
	}
	src.Classes = shapes[len(shapes)-1][0]
	m, err := export.Freeze(src, mode)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// refRun runs one sample of pixels (NCHW) through m, in NCHW, one loop
// per index, each op on the values of its sources. Add and concat follow
// the element rules of docs/int8-model.md, written out here: each input
// code dequantized in float32, (q - zero point) * scale, an add's two
// values summed in float32, and the result quantized with the output
// params by quant.Code, clamped to [clamp_min, clamp_max].
func refRun(m *qmodel.Model, pixels []uint8) []uint8 {
	type val struct {
		x     []int32
		shape []int
		q     qmodel.Quant
	}
	iq := m.InputQuant
	x := make([]int32, len(pixels))
	hw := m.Input[1] * m.Input[2]
	for i, p := range pixels {
		x[i], _ = quant.Code(m.Norm.Of(i/hw).Apply(p), 1/iq.Scale, iq.ZeroPoint, iq.QMin, iq.QMax)
	}
	input := val{x, []int{m.Input[0], m.Input[1], m.Input[2]}, iq}
	vals := make([]val, len(m.Ops))
	requant := func(op *qmodel.Op, acc int32, c int) int32 {
		acc += op.Bias[c]
		if m.Requant == qmodel.RequantFloat {
			return quant.RequantizeFloat(acc, op.Multiplier[c], op.Output.ZeroPoint, op.ClampMin, op.ClampMax)
		}
		return quant.RequantizeFixed(acc, op.FixedMultiplier[c], op.Shift[c], op.Output.ZeroPoint, op.ClampMin, op.ClampMax)
	}
	for oi := range m.Ops {
		op := &m.Ops[oi]
		var ins []val
		for _, j := range m.Sources(oi) {
			if j < 0 {
				ins = append(ins, input)
			} else {
				ins = append(ins, vals[j])
			}
		}
		x, shape, zin := ins[0].x, ins[0].shape, ins[0].q.ZeroPoint
		var y []int32
		switch op.Type {
		case model.OpConv:
			c, h, w := shape[0], shape[1], shape[2]
			oh, ow := (h+2*op.Padding-op.Kernel)/op.Stride+1, (w+2*op.Padding-op.Kernel)/op.Stride+1
			g := max(op.Groups, 1)
			cg, og := c/g, op.Out/g
			y = make([]int32, op.Out*oh*ow)
			for o := range op.Out {
				for oy := range oh {
					for ox := range ow {
						var acc int32
						for ci := range cg {
							for ky := range op.Kernel {
								for kx := range op.Kernel {
									iy, ix := oy*op.Stride-op.Padding+ky, ox*op.Stride-op.Padding+kx
									if iy < 0 || iy >= h || ix < 0 || ix >= w {
										continue
									}
									wt := int32(op.Weight[((o*cg+ci)*op.Kernel+ky)*op.Kernel+kx])
									acc += (x[((o/og*cg+ci)*h+iy)*w+ix] - zin) * wt
								}
							}
						}
						y[(o*oh+oy)*ow+ox] = requant(op, acc, o)
					}
				}
			}
			shape = []int{op.Out, oh, ow}
		case model.OpLinear:
			y = make([]int32, op.Out)
			for o := range op.Out {
				var acc int32
				for i := range op.In {
					acc += (x[i] - zin) * int32(op.Weight[o*op.In+i])
				}
				y[o] = requant(op, acc, o)
			}
			shape = []int{op.Out}
		case model.OpMaxPool, model.OpAvgPool, model.OpGlobalAvgPool:
			c, h, w := shape[0], shape[1], shape[2]
			kh, kw, st, pad := op.Kernel, op.Kernel, op.Stride, op.Padding
			if op.Type == model.OpGlobalAvgPool {
				kh, kw, st = h, w, 1 // one window: the whole plane
			}
			oh, ow := (h+2*pad-kh)/st+1, (w+2*pad-kw)/st+1
			y = make([]int32, c*oh*ow)
			for ci := range c {
				for oy := range oh {
					for ox := range ow {
						best, sum := int32(-1), int32(0)
						for ky := range kh {
							for kx := range kw {
								iy, ix := oy*st-pad+ky, ox*st-pad+kx
								if iy < 0 || iy >= h || ix < 0 || ix >= w {
									continue // maxpool padding: never the maximum
								}
								v := x[(ci*h+iy)*w+ix]
								best, sum = max(best, v), sum+v
							}
						}
						if op.Type != model.OpMaxPool {
							n := int32(kh * kw)
							best = sum / n
							if r := sum % n; 2*r > n || (2*r == n && best%2 == 1) {
								best++
							}
						}
						y[(ci*oh+oy)*ow+ox] = best
					}
				}
			}
			shape = []int{c, oh, ow}
		case model.OpFlatten:
			y, shape = x, []int{len(x)}
		case model.OpReLU, model.OpReLU6:
			y = make([]int32, len(x))
			for i, v := range x {
				y[i] = min(max(v, op.ClampMin), op.ClampMax)
			}
		case model.OpAdd:
			a, b, out := ins[0], ins[1], op.Output
			y = make([]int32, len(x))
			for i := range y {
				v := float32(a.x[i]-a.q.ZeroPoint)*a.q.Scale + float32(b.x[i]-b.q.ZeroPoint)*b.q.Scale
				y[i], _ = quant.Code(v, 1/out.Scale, out.ZeroPoint, op.ClampMin, op.ClampMax)
			}
		case model.OpConcat:
			out := op.Output
			shape = []int{0, shape[1], shape[2]}
			for _, in := range ins { // NCHW: the channels of each input in turn
				for _, c := range in.x {
					q, _ := quant.Code(float32(c-in.q.ZeroPoint)*in.q.Scale, 1/out.Scale, out.ZeroPoint, op.ClampMin, op.ClampMax)
					y = append(y, q)
				}
				shape[0] += in.shape[0]
			}
		}
		vals[oi] = val{y, shape, op.Output}
	}
	last := vals[len(vals)-1].x
	out := make([]uint8, len(last))
	for i, v := range last {
		out[i] = uint8(v)
	}
	return out
}

// testNet is a test network: its input shape and layers.
type testNet struct {
	name  string
	in    [3]int
	specs []layerSpec
}

var testNets = []testNet{
	{"lenet", [3]int{1, 28, 28}, []layerSpec{
		{typ: model.OpConv, out: 16, k: 5, stride: 1, bn: 1, act: model.OpReLU},
		{typ: model.OpMaxPool, k: 2, stride: 2},
		{typ: model.OpConv, out: 32, k: 5, stride: 1, bn: 1, act: model.OpReLU},
		{typ: model.OpMaxPool, k: 2, stride: 2},
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 128, act: model.OpReLU},
		{typ: model.OpLinear, out: 10},
	}},
	{"padded-strided", [3]int{3, 13, 11}, []layerSpec{
		{typ: model.OpConv, out: 5, k: 3, stride: 2, pad: 1, act: model.OpReLU6},
		{typ: model.OpAvgPool, k: 2, stride: 1},
		{typ: model.OpConv, out: 7, k: 1, stride: 1},
		{typ: model.OpReLU6},
		{typ: model.OpConv, out: 9, k: 2, stride: 1, pad: 1, bn: 1},
		{typ: model.OpReLU},
		{typ: model.OpAvgPool, k: 3, stride: 3},
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 17, act: model.OpReLU},
		{typ: model.OpLinear, out: 3},
	}},
	// im2col's copy widths: k*c = 3 with padding (one word), 16 (two
	// words exactly) and 18 with padding (a copy).
	{"im2col-widths", [3]int{1, 9, 10}, []layerSpec{
		{typ: model.OpConv, out: 4, k: 3, stride: 2, pad: 2, act: model.OpReLU},
		{typ: model.OpConv, out: 6, k: 4, stride: 1},
		{typ: model.OpConv, out: 5, k: 3, stride: 1, pad: 1, act: model.OpReLU},
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 3},
	}},
	// im2col's other widths: k*c = 8 (one word exactly), 12 (one 16-byte
	// word) and 35 with padding (three, the last mostly slack).
	{"im2col-chunks", [3]int{2, 11, 10}, []layerSpec{
		{typ: model.OpConv, out: 3, k: 4, stride: 1, act: model.OpReLU},
		{typ: model.OpConv, out: 7, k: 2, stride: 1, pad: 1},
		{typ: model.OpConv, out: 4, k: 5, stride: 2, pad: 2, act: model.OpReLU6},
		{typ: model.OpMaxPool, k: 3, stride: 1},
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 3},
	}},
	// Codes flattened from [H W C] keep the runtime's channels-last order
	// through element-wise ops: the linear after them and the output of a
	// net that ends there must see PyTorch's C, H, W order.
	{"flatten-relu-linear", [3]int{2, 4, 3}, []layerSpec{
		{typ: model.OpConv, out: 3, k: 2, stride: 1},
		{typ: model.OpFlatten},
		{typ: model.OpReLU},
		{typ: model.OpLinear, out: 5},
	}},
	{"ends-in-flatten", [3]int{2, 4, 3}, []layerSpec{
		{typ: model.OpConv, out: 3, k: 2, stride: 1},
		{typ: model.OpFlatten},
		{typ: model.OpReLU6},
	}},
	// Implicit convolutions (qgemm.GemmConv, output rows of 8 or more
	// pixels): padded, the first strided so that its last padded row is
	// never read, with window rows of k*c = 12, 24 and 51 codes (padded
	// to the weights' unit of 4, 8 or 16 codes where needed), one with a
	// fused max pool; the last conv's rows are too narrow and take the
	// im2col path.
	{"implicit", [3]int{4, 20, 37}, []layerSpec{
		{typ: model.OpConv, out: 8, k: 3, stride: 2, pad: 1, bn: 1, act: model.OpReLU},
		{typ: model.OpMaxPool, k: 2, stride: 2},
		{typ: model.OpConv, out: 17, k: 3, stride: 1, pad: 1, act: model.OpReLU6},
		{typ: model.OpConv, out: 33, k: 3, stride: 1, pad: 2, act: model.OpReLU},
		{typ: model.OpConv, out: 5, k: 2, stride: 2},
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 3},
	}},
	{"mlp", [3]int{1, 5, 7}, []layerSpec{
		{typ: model.OpFlatten},
		{typ: model.OpLinear, out: 33, act: model.OpReLU},
		{typ: model.OpLinear, out: 65, act: model.OpReLU6},
		{typ: model.OpLinear, out: 4},
	}},
}

// TestNetMatchesReference checks every test net against refRun, with
// implicit convolutions and with the im2col path they replace.
func TestNetMatchesReference(t *testing.T) {
	defer func() { useImplicit = true }()
	for _, implicit := range []bool{true, false} {
		useImplicit = implicit
		testNetMatchesReference(t, implicit)
	}
}

func testNetMatchesReference(t *testing.T, implicit bool) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tn := range testNets {
		for _, bits := range [][2]int{{8, 8}, {4, 4}, {2, 8}, {8, 5}} {
			for _, mode := range []qmodel.Requant{qmodel.RequantFloat, qmodel.RequantFixed} {
				name := fmt.Sprintf("%s/W%dA%d/%s/implicit=%v", tn.name, bits[0], bits[1], mode, implicit)
				t.Run(name, func(t *testing.T) {
					m := randomModel(t, rng, tn.in, tn.specs, bits[0], bits[1], mode)
					net, err := New(m)
					if err != nil {
						t.Fatal(err)
					}
					implicitOps := 0
					for _, o := range net.ops {
						if o.implicit != nil {
							implicitOps++
						}
					}
					// At 8 bits the first three convs' window rows hold
					// 12, 24 and 52 codes (51 padded to 4): implicit where
					// the selected kernel reads them without a gather.
					if implicit && tn.name == "implicit" && bits[0] == 8 {
						want := 0
						for _, seg := range []int{12, 24, 52} {
							if qgemm.ConvDirect(qgemm.Conv{OH: 1, OW: 8, Segs: 3, SegLen: seg}) {
								want++
							}
						}
						if implicitOps != want {
							t.Fatalf("%d implicit convolutions, want %d", implicitOps, want)
						}
					}
					const batch = 5
					n := net.InputLen()
					pixels := make([]uint8, batch*n)
					for i := range pixels {
						pixels[i] = uint8(rng.IntN(256))
					}
					for _, r := range []*Runner{net.NewRunner(batch), net.NewRunner(batch + 3)} {
						r.Pixels(pixels)
						got := r.Run(batch)
						for s := range batch {
							want := refRun(m, pixels[s*n:(s+1)*n])
							if g := got[s*net.Classes() : (s+1)*net.Classes()]; fmt.Sprint(g) != fmt.Sprint(want) {
								t.Fatalf("sample %d: got %v, want %v", s, g, want)
							}
						}
					}
				})
			}
		}
	}
}

// Quantize from normalised floats agrees with the pixel path.
func TestQuantizeMatchesPixels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := randomModel(t, rng, testNets[0].in, testNets[0].specs, 8, 8, qmodel.RequantFloat)
	net, err := New(m)
	if err != nil {
		t.Fatal(err)
	}
	n := net.InputLen()
	pixels := make([]uint8, 2*n)
	x := make([]float32, 2*n)
	for i := range pixels {
		pixels[i] = uint8(rng.IntN(256))
		x[i] = m.Norm.Of((i % n) / (n / m.Input[0])).Apply(pixels[i])
	}
	r1, r2 := net.NewRunner(2), net.NewRunner(2)
	r1.Pixels(pixels)
	r2.Quantize(x)
	if a, b := fmt.Sprint(r1.Run(2)), fmt.Sprint(r2.Run(2)); a != b {
		t.Fatalf("pixels %v, floats %v", a, b)
	}
}

// A Layer on NCHW codes equals the same op inside a Net.
func TestLayerMatchesNet(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tn := testNets[1]
	m := randomModel(t, rng, tn.in, []layerSpec{tn.specs[0], {typ: model.OpFlatten}}, 8, 8, qmodel.RequantFloat)
	op := m.Ops[0]
	oh, ow := 7, 6
	net, err := New(m)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLayer(&op, []int{3, 13, 11}, m.InputQuant, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(l.OutShape()); s != fmt.Sprint([]int{op.Out, oh, ow}) {
		t.Fatalf("OutShape %s", s)
	}
	const batch = 3
	pixels := make([]uint8, batch*net.InputLen())
	for i := range pixels {
		pixels[i] = uint8(rng.IntN(256))
	}
	codes := make([]uint8, len(pixels))
	for i, p := range pixels {
		codes[i] = net.pixel[i%net.InputLen()/(net.InputLen()/net.model.Input[0])][p]
	}
	r := net.NewRunner(batch)
	r.Pixels(pixels)
	want := r.Run(batch) // a net's output is in PyTorch's order too
	got := make([]uint8, len(want))
	l.Run(got, codes, batch)
	for s := range batch {
		for c := range op.Out {
			for i := range oh * ow {
				if g, w := got[(s*op.Out+c)*oh*ow+i], want[(s*op.Out+c)*oh*ow+i]; g != w {
					t.Fatalf("sample %d channel %d position %d: layer %d, net %d", s, c, i, g, w)
				}
			}
		}
	}
}

// evenDivider equals divRoundEven for every window sum of every window
// size up to 64 x 64, and for random dividends and divisors.
func TestEvenDivider(t *testing.T) {
	for k := uint32(1); k <= 64; k++ {
		n := k * k
		d := newEvenDivider(n)
		for s := uint32(0); s <= 255*n; s++ {
			if got, want := d.div(s), divRoundEven(s, n); got != want {
				t.Fatalf("n=%d: %d gives %d, want %d", n, s, got, want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for range 1000000 {
		n := max(rng.Uint32()>>rng.IntN(32), 1)
		s := rng.Uint32() >> rng.IntN(32)
		if rng.IntN(4) == 0 { // near a multiple of n, or of n/2
			s = (s/n)*n + uint32(rng.IntN(3)) - 1 + n/2*uint32(rng.IntN(2))
		}
		if got, want := newEvenDivider(n).div(s), divRoundEven(s, n); got != want {
			t.Fatalf("n=%d: %d gives %d, want %d", n, s, got, want)
		}
	}
}

func TestDivRoundEven(t *testing.T) {
	for _, c := range []struct{ t, n, want uint32 }{{5, 2, 2}, {7, 2, 4}, {6, 4, 2}, {10, 4, 2}, {14, 4, 4}, {11, 4, 3}, {9, 4, 2}, {0, 9, 0}, {2295, 9, 255}} {
		if got := divRoundEven(c.t, c.n); got != c.want {
			t.Errorf("divRoundEven(%d, %d) = %d, want %d", c.t, c.n, got, c.want)
		}
	}
}

// refPool is the pooling of refRun on one NHWC sample of [h w c] codes.
func refPool(src []uint8, h, w, c, k, stride int, avg bool) []uint8 {
	oh, ow := (h-k)/stride+1, (w-k)/stride+1
	out := make([]uint8, oh*ow*c)
	for oy := range oh {
		for ox := range ow {
			for ch := range c {
				best, sum := 0, 0
				for ky := range k {
					for kx := range k {
						v := int(src[((oy*stride+ky)*w+ox*stride+kx)*c+ch])
						best, sum = max(best, v), sum+v
					}
				}
				if avg {
					n := k * k
					best = sum / n
					if r := sum % n; 2*r > n || (2*r == n && best%2 == 1) {
						best++
					}
				}
				out[(oy*ow+ox)*c+ch] = uint8(best)
			}
		}
	}
	return out
}

// TestPools compares maxPool and avgPool with refPool over channel counts
// around the vector widths and avgPool's 64-channel chunks, windows with
// and without overlap, and codes near 0 and 255.
func TestPools(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, c := range []int{1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 70, 130} {
		for _, ks := range [][2]int{{1, 1}, {2, 2}, {2, 1}, {3, 2}, {3, 3}, {4, 3}, {5, 1}} {
			k, stride := ks[0], ks[1]
			h, w := k+rng.IntN(6), k+rng.IntN(6)
			oh, ow := (h-k)/stride+1, (w-k)/stride+1
			const batch = 2
			src := make([]uint8, batch*h*w*c)
			for i := range src {
				switch rng.IntN(4) {
				case 0:
					src[i] = 255 - uint8(rng.IntN(2))
				case 1:
					src[i] = uint8(rng.IntN(2))
				default:
					src[i] = uint8(rng.IntN(256))
				}
			}
			for _, avg := range []bool{false, true} {
				dst := make([]uint8, batch*oh*ow*c)
				in, out := []int{h, w, c}, []int{oh, ow, c}
				if avg {
					avgPool(dst, src, batch, in, out, k, k, stride)
				} else {
					maxPool(dst, src, batch, in, out, k, stride, make([]uint8, w*c))
				}
				for b := range batch {
					want := refPool(src[b*h*w*c:(b+1)*h*w*c], h, w, c, k, stride, avg)
					if got := dst[b*oh*ow*c : (b+1)*oh*ow*c]; fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("c=%d k=%d stride=%d [%d %d] avg=%v sample %d:\ngot  %v\nwant %v", c, k, stride, h, w, avg, b, got, want)
					}
				}
			}
		}
	}
}

// A Runner allocates nothing once it has run a batch.
func TestRunDoesNotAllocate(t *testing.T) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				t.Skip("the race detector's instrumentation allocates")
			}
		}
	}
	rng := rand.New(rand.NewPCG(15, 16))
	for _, tn := range allNets() {
		for _, mode := range []qmodel.Requant{qmodel.RequantFloat, qmodel.RequantFixed} {
			m := randomModel(t, rng, tn.in, tn.specs, 8, 8, mode)
			net, err := New(m)
			if err != nil {
				t.Fatal(err)
			}
			const batch = 3
			pixels := make([]uint8, batch*net.InputLen())
			r := net.NewRunner(batch)
			if a := testing.AllocsPerRun(5, func() { r.Pixels(pixels); r.Run(batch) }); a != 0 {
				t.Errorf("%s/%s: %v allocations a run", tn.name, mode, a)
			}
		}
	}
}

// TestIm2col compares im2col with a loop per index over window widths
// k*c from 1 to 85 (the in-order words, the by-row words and every exact
// tail), with and without padding, stride and spare capacity after src.
func TestIm2col(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	var s scratch
	for _, c := range []int{1, 2, 3, 4, 5, 7, 8, 16, 17} {
		for k := 1; k <= 5; k++ {
			for _, sp := range [][2]int{{1, 0}, {1, 1}, {2, 0}, {2, 2}, {3, 1}} {
				st, pad := sp[0], sp[1]
				h, w := k+rng.IntN(5), k+rng.IntN(5)
				oh, ow := (h+2*pad-k)/st+1, (w+2*pad-k)/st+1
				p := &op{in: []int{h, w, c}, out: []int{oh, ow, 1}, co: []int{oh, ow, 1}, k: k, stride: st, pad: pad, zin: uint8(rng.IntN(256))}
				// Without spare capacity, src is staged; with 16 bytes of it
				// and no padding, im2col reads src in place.
				spare := 16 * rng.IntN(2)
				src := make([]uint8, h*w*c, h*w*c+spare)
				for i := range src[:cap(src)] {
					src[:cap(src)][i] = uint8(rng.IntN(256))
				}
				kd := k * k * c
				col := make([]uint8, oh*ow*kd+16)
				p.im2col(col, src, c, &s)
				for oy := range oh {
					for ox := range ow {
						for ky := range k {
							for kx := range k {
								for ch := range c {
									y, x := oy*st-pad+ky, ox*st-pad+kx
									want := p.zin
									if y >= 0 && y < h && x >= 0 && x < w {
										want = src[(y*w+x)*c+ch]
									}
									if got := col[(oy*ow+ox)*kd+(ky*k+kx)*c+ch]; got != want {
										t.Fatalf("c=%d k=%d stride=%d pad=%d [%d %d]: row (%d, %d) code (%d, %d, %d): got %d want %d",
											c, k, st, pad, h, w, oy, ox, ky, kx, ch, got, want)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}
