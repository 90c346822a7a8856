package onnx

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"qat/infer"
	"qat/model"
	"qat/onnx/onnxtest"
	"qat/qmodel"
	"qat/quant"
)

// runInt8 runs m on pixels (NCHW, whole samples) in qat's int8 runtime
// and returns its output codes.
func runInt8(t *testing.T, m *qmodel.Model, pixels []uint8) []uint8 {
	t.Helper()
	net, err := infer.New(m)
	if err != nil {
		t.Fatal(err)
	}
	n := len(pixels) / net.InputLen()
	r := net.NewRunner(n)
	r.Pixels(pixels)
	return append([]uint8(nil), r.Run(n)...)
}

// compareInt8 exports m, runs the ONNX model in onnxruntime on pixels and
// the int8 model ref in qat's runtime, and returns their agreement. check
// also runs the onnx checker on the export.
func compareInt8(t *testing.T, ort *onnxtest.ORT, m, ref *qmodel.Model, pixels []uint8, check bool) onnxtest.Agreement {
	t.Helper()
	b, err := FromInt8(m)
	if err != nil {
		t.Fatal(err)
	}
	if check {
		onnxtest.Check(t, b)
	}
	c, h, w := m.Input[0], m.Input[1], m.Input[2]
	n := len(pixels) / (c * h * w)
	logits := ort.Run(t, b, onnxtest.Pixels(pixels), [4]int{n, c, h, w})
	a, err := onnxtest.Compare(ref.Ops[len(ref.Ops)-1].Output, ref.Classes, runInt8(t, ref, pixels), logits)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// randomPixels returns n samples of size pixels; the first sample holds
// every pixel value in turn, so that the input quantization of all 256 is
// compared.
func randomPixels(rng *rand.Rand, n, size int) []uint8 {
	p := make([]uint8, n*size)
	for i := range p {
		if i < size {
			p[i] = uint8(i)
		} else {
			p[i] = uint8(rng.IntN(256))
		}
	}
	return p
}

// synth builds a random int8 model op by op, each op reading the last
// unless from says otherwise.
type synth struct {
	rng *rand.Rand
	m   *qmodel.Model
	cur qmodel.Quant // the quantization of the next op's (first) input
	// next holds the Inputs and Groups of the next op (from, grouped).
	next qmodel.Op
}

// from makes the next op read ops inputs (-1: the model input).
func (s *synth) from(inputs ...int) {
	s.next.Inputs = inputs
	s.cur = s.m.InputQuant
	if inputs[0] >= 0 {
		s.cur = s.m.Ops[inputs[0]].Output
	}
}

// grouped makes the next op, a conv, one of g groups.
func (s *synth) grouped(g int) { s.next.Groups = g }

func newSynth(seed uint64, name string, input [3]int, norm model.Norm, in qmodel.Quant, mode qmodel.Requant) *synth {
	return &synth{rng: rand.New(rand.NewPCG(seed, 1)), cur: in,
		m: &qmodel.Model{Name: name, Input: input, Norm: norm, InputQuant: in, Requant: mode}}
}

// weighted adds a conv (k > 0) or linear op with random bits-wide codes
// and bias, output zero point and range zp, qmin, qmax and clamp [lo, hi].
// Its output scale maps a typical accumulator spread to about 40 codes; perturb moves each multiplier one float32 step off
// float32(in*w)/out, which the export cannot then express with the real
// scales.
func (s *synth) weighted(name string, in, out, k, stride, pad, bits int, zp, qmin, qmax, lo, hi int32, perturb bool) {
	op := qmodel.Op{Type: model.OpLinear, Name: name, In: in, Out: out, WeightBits: bits, ClampMin: lo, ClampMax: hi}
	kk := 1
	if k > 0 {
		op.Type, op.Kernel, op.Stride, op.Padding = model.OpConv, k, stride, pad
		kk = k
	}
	wmax := 1<<(bits-1) - 1
	per := in / max(s.next.Groups, 1) * kk * kk
	op.Weight = make([]int8, out*per)
	for i := range op.Weight {
		op.Weight[i] = int8(s.rng.IntN(2*wmax+2) - wmax - 1)
	}
	spread := math.Sqrt(float64(per)) * 60 * float64(wmax) / 2
	op.Output = qmodel.Quant{Scale: float32(float64(s.cur.Scale) * 0.0125 * spread / 40), ZeroPoint: zp, QMin: qmin, QMax: qmax}
	for range out {
		ws := float32(0.005 + 0.015*s.rng.Float64())
		m := float32(s.cur.Scale*ws) / op.Output.Scale
		if perturb {
			m = math.Nextafter32(m, 1)
		}
		op.WeightScale = append(op.WeightScale, ws)
		op.Multiplier = append(op.Multiplier, m)
		op.Bias = append(op.Bias, int32(s.rng.NormFloat64()*spread))
	}
	s.add(op)
}

// plain adds a pool (kernel, stride), flatten, relu or relu6 (clamp) op.
func (s *synth) plain(typ model.OpType, name string, kernel, stride int, lo, hi int32) {
	s.add(qmodel.Op{Type: typ, Name: name, Kernel: kernel, Stride: stride, ClampMin: lo, ClampMax: hi})
}

// join adds an add or concat op of output quantization out and clamp
// [lo, hi] reading ops inputs.
func (s *synth) join(typ model.OpType, name string, out qmodel.Quant, lo, hi int32, inputs ...int) {
	s.from(inputs...)
	s.add(qmodel.Op{Type: typ, Name: name, Output: out, ClampMin: lo, ClampMax: hi})
}

func (s *synth) add(op qmodel.Op) {
	if !op.Node().Requantizes() {
		op.Output = s.cur
	}
	op.Inputs, op.Groups = s.next.Inputs, s.next.Groups
	s.next = qmodel.Op{}
	s.m.Ops = append(s.m.Ops, op)
	s.cur = op.Output
}

// model returns the model with Classes set from the Out of the last op
// or, for an op without one (an add of linear ops), of the first op it
// reads, and so on.
func (s *synth) model(t *testing.T) *qmodel.Model {
	t.Helper()
	last := len(s.m.Ops) - 1
	for s.m.Ops[last].Out == 0 {
		last = s.m.Sources(last)[0]
	}
	s.m.Classes = s.m.Ops[last].Out
	if err := s.m.Validate(); err != nil {
		t.Fatal(err)
	}
	return s.m
}

// deepModel has every op type, both requantization-scale forms, a
// narrowed input range, padding, strides, an average pool whose window
// (36) makes ties, and clamps on every side.
func deepModel(t *testing.T) *qmodel.Model {
	s := newSynth(7, "deep", [3]int{3, 10, 10}, model.Norm{Mean: 0.45, Std: 0.27},
		qmodel.Quant{Scale: 0.012, ZeroPoint: 100, QMin: 2, QMax: 250}, qmodel.RequantFloat)
	s.weighted("c1", 3, 16, 3, 1, 1, 8, 20, 0, 255, 20, 255, false) // [16, 10, 10], fused ReLU
	s.plain(model.OpAvgPool, "a1", 6, 2, 0, 0)                      // [16, 3, 3]
	s.weighted("c2", 16, 6, 3, 2, 2, 4, 200, 5, 250, 5, 250, true)  // [6, 3, 3]
	s.plain(model.OpMaxPool, "m1", 2, 1, 0, 0)                      // [6, 2, 2]
	s.plain(model.OpReLU, "r1", 0, 0, 128, 200)
	s.plain(model.OpFlatten, "input", 0, 0, 0, 0) // named like the graph input
	s.weighted("f1", 24, 20, 0, 0, 0, 8, 60, 0, 255, 60, 255, true)
	s.plain(model.OpReLU6, "r2", 0, 0, 60, 180)
	s.weighted("f2", 20, 7, 0, 0, 0, 2, 110, 0, 255, 0, 255, false)
	return s.model(t)
}

// shallowModel: no normalisation division (Std 0), a strided conv without
// padding, and fixed requantization.
func shallowModel(t *testing.T) *qmodel.Model {
	s := newSynth(11, "shallow", [3]int{1, 9, 9}, model.Norm{Mean: 0.5},
		qmodel.Quant{Scale: 0.0041, ZeroPoint: 128, QMin: 0, QMax: 255}, qmodel.RequantFloat)
	s.weighted("c1", 1, 4, 3, 2, 0, 8, 0, 0, 255, 0, 255, false) // [4, 4, 4]
	s.plain(model.OpAvgPool, "a1", 2, 2, 0, 0)                   // [4, 2, 2]
	s.plain(model.OpFlatten, "flat", 0, 0, 0, 0)
	s.weighted("fc", 16, 5, 0, 0, 0, 4, 128, 0, 255, 0, 255, true)
	m := s.model(t)
	toFixed(t, m)
	return m
}

// toFixed replaces m's float multipliers with their Q31 form.
func toFixed(t *testing.T, m *qmodel.Model) {
	t.Helper()
	m.Requant = qmodel.RequantFixed
	for i := range m.Ops {
		op := &m.Ops[i]
		for _, v := range op.Multiplier {
			m0, sh, err := quant.FixedMultiplier(float64(v))
			if err != nil {
				t.Fatal(err)
			}
			op.FixedMultiplier, op.Shift = append(op.FixedMultiplier, m0), append(op.Shift, sh)
		}
		op.Multiplier = nil
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

// floatForm returns a copy of m with float requantization by the
// multipliers the ONNX export of m uses.
func floatForm(m *qmodel.Model) *qmodel.Model {
	f := *m
	f.Requant = qmodel.RequantFloat
	f.Ops = append([]qmodel.Op(nil), m.Ops...)
	for i := range f.Ops {
		op := &f.Ops[i]
		if op.Type == model.OpConv || op.Type == model.OpLinear {
			op.Multiplier = multipliers(&m.Ops[i], m.Requant)
			op.FixedMultiplier, op.Shift = nil, nil
		}
	}
	return &f
}

// cone returns the model of op i of m and of the ops it reads, directly
// or through others, in m's order, followed by a flatten when op i does
// not write a vector: the model's outputs are all of op i's codes, in C,
// H, W order.
func cone(t *testing.T, m *qmodel.Model, i int) *qmodel.Model {
	t.Helper()
	need := make([]bool, i+1)
	need[i] = true
	for j := i; j >= 0; j-- {
		for _, s := range m.Sources(j) {
			if need[j] && s >= 0 {
				need[s] = true
			}
		}
	}
	p := *m
	p.Ops = nil
	index := map[int]int{-1: -1} // from m's op indices to p's
	for j, op := range m.Ops[:i+1] {
		if !need[j] {
			continue
		}
		op.Inputs = nil
		for _, s := range m.Sources(j) {
			op.Inputs = append(op.Inputs, index[s])
		}
		if len(op.Inputs) == 1 && op.Inputs[0] == len(p.Ops)-1 {
			op.Inputs = nil // the op before
		}
		index[j] = len(p.Ops)
		p.Ops = append(p.Ops, op)
	}
	shapes, err := m.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	p.Classes = 1
	for _, d := range shapes[i] {
		p.Classes *= d
	}
	if len(shapes[i]) > 1 {
		p.Ops = append(p.Ops, qmodel.Op{Type: model.OpFlatten, Name: "cone.flatten", Output: m.Ops[i].Output})
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return &p
}

func readModel(t *testing.T, path string) *qmodel.Model {
	t.Helper()
	m, err := qmodel.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestInt8MatchesRuntime: onnxruntime computes exactly the codes of qat's
// int8 runtime (infer) for float requantization, after every op of a
// model with all op types and on qmodel's example files, on every CPU
// (with and without VNNI: the weight encodings of WeightEncodingOf). A
// fixed-mode model's ONNX computes exactly the float requantization by
// multipliers(), and stays within a code or so of the fixed runtime.
func TestInt8MatchesRuntime(t *testing.T) {
	ort := onnxtest.Require(t)
	rng := rand.New(rand.NewPCG(3, 4))
	t.Logf("onnxruntime-node %s on %s", ort.Version, onnxtest.CPU())
	exact := func(t *testing.T, m *qmodel.Model, a onnxtest.Agreement) {
		t.Helper()
		if a.ArgmaxAgreement != 1 || a.MaxLSB != 0 || a.ExactFraction != 1 {
			t.Errorf("onnxruntime differs from the int8 runtime: %+v", a)
		}
	}
	t.Run("deep", func(t *testing.T) {
		m := deepModel(t)
		pixels := randomPixels(rng, 64, 3*10*10)
		for i, op := range m.Ops {
			p := cone(t, m, i)
			a := compareInt8(t, ort, p, p, pixels, i == len(m.Ops)-1)
			t.Logf("after op %d (%s %s): %+v", i, op.Type, op.Name, a)
			exact(t, p, a)
		}
		// The arithmetic does not depend on onnxruntime's graph
		// optimizations (layout changes, fusions).
		b, err := FromInt8(m)
		if err != nil {
			t.Fatal(err)
		}
		want := runInt8(t, m, pixels)
		for _, opt := range []string{"disabled", "basic", "extended"} {
			a, err := onnxtest.Compare(m.Ops[len(m.Ops)-1].Output, m.Classes, want, ort.RunAt(t, opt, b, onnxtest.Pixels(pixels), [4]int{64, 3, 10, 10}))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("graph optimizations %s: %+v", opt, a)
			exact(t, m, a)
		}
	})
	t.Run("examples", func(t *testing.T) {
		// qmodel's example files: conv with 4-bit and 2-bit codes, relu6,
		// both pools, flatten and linear.
		pixels := randomPixels(rng, 256, 36)
		m := readModel(t, "../qmodel/testdata/small.qmodel")
		exact(t, m, compareInt8(t, ort, m, m, pixels, true))
		f := readModel(t, "../qmodel/testdata/small-fixed.qmodel")
		exact(t, f, compareInt8(t, ort, f, floatForm(f), pixels, true))
		t.Logf("small-fixed against the fixed runtime: %+v", compareInt8(t, ort, f, f, pixels, false))
	})
	t.Run("saturation", func(t *testing.T) {
		// The worst case of onnxruntime's saturating u8 x s8 kernels
		// (VPMADDUBSW: pairs of products summed into int16): input codes
		// of 255 against weights of +-MaxSafeInt8Weight (kept as int8,
		// pairs of 32640) and of +-127 or -128 (which saturate as int8, so
		// they go out as uint8).
		pixels := make([]uint8, 4*64)
		for i := range pixels {
			pixels[i] = uint8(255 - i/64) // samples of all 255, 254, ...
		}
		int8Only := func([]int8) WeightEncoding { return WeightsInt8 }
		for _, w := range []int8{MaxSafeInt8Weight, -MaxSafeInt8Weight, 127, -127, -128} {
			m := saturationModel(t, w)
			enc := WeightEncodingOf(m.Ops[1].Weight)
			if safe := w >= -MaxSafeInt8Weight && w <= MaxSafeInt8Weight; (enc == WeightsInt8) != safe {
				t.Errorf("weights %d: encoding %v", w, enc)
			}
			a := compareInt8(t, ort, m, m, pixels, false)
			t.Logf("weights %d (encoding %v): %+v", w, enc, a)
			exact(t, m, a)
			if enc == WeightsUint8 {
				// What the uint8 encoding avoids: the same weights as int8
				// saturate where onnxruntime has no VNNI.
				b, err := fromInt8(m, int8Only)
				if err != nil {
					t.Fatal(err)
				}
				codes := ort.Run(t, b, onnxtest.Pixels(pixels), [4]int{4, 1, 8, 8})
				s, err := onnxtest.Compare(m.Ops[1].Output, m.Classes, runInt8(t, m, pixels), codes)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("weights %d as int8 on %s: %+v", w, onnxtest.CPU(), s)
			}
		}
	})
	t.Run("fixed", func(t *testing.T) {
		m := shallowModel(t)
		pixels := randomPixels(rng, 512, 81)
		exact(t, m, compareInt8(t, ort, m, floatForm(m), pixels, true))
		a := compareInt8(t, ort, m, m, pixels, false)
		t.Logf("against the fixed runtime: %+v", a)
		// Each fixed requantization is within a code of its float form
		// (quant.RequantizeFixed); through this model's two layers the
		// outputs measured within 1, and 2 allows a first-layer code to
		// carry.
		if a.MaxLSB > 2 {
			t.Errorf("fixed requantization is %d codes from its float form", a.MaxLSB)
		}
	})
}

// The graph carries the model's own scales when onnxruntime's formula
// gives back the multipliers (qmodel's example: its multipliers are
// float32(in*w)/out), and 1, the multipliers, 1 otherwise (the deep
// model's c2, whose multipliers are one float32 step off).
func TestRequantScales(t *testing.T) {
	m := readModel(t, "../qmodel/testdata/small.qmodel")
	c1 := &m.Ops[0]
	xs, ws, ys := requantScales(c1, m.InputQuant, m.Requant)
	if xs != m.InputQuant.Scale || ys != c1.Output.Scale || !slices.Equal(ws, c1.WeightScale) {
		t.Errorf("small c1: scales %v %v %v, want the model's", xs, ws, ys)
	}
	f := readModel(t, "../qmodel/testdata/small-fixed.qmodel")
	if xs, _, _ := requantScales(&f.Ops[0], f.InputQuant, f.Requant); xs != f.InputQuant.Scale {
		t.Errorf("small-fixed c1: x_scale %v, want the model's (its fixed multipliers come from float32 ones)", xs)
	}
	d := deepModel(t)
	c2 := &d.Ops[2]
	xs, ws, ys = requantScales(c2, d.Ops[1].Output, d.Requant)
	if xs != 1 || ys != 1 || !slices.Equal(ws, c2.Multiplier) {
		t.Errorf("deep c2: scales %v %v %v, want 1, the multipliers, 1", xs, ws, ys)
	}
}

// saturationModel is a linear layer over 64 input codes (input zero point
// 0, so codes of 255 for white pixels) whose weights are all w, with an
// output scale that maps the accumulator of an all-255 input to 100 codes
// from the zero point 128, so that a saturated sum (half of the exact one
// for |w| = 127) shows.
func saturationModel(t *testing.T, w int8) *qmodel.Model {
	t.Helper()
	in := qmodel.Quant{Scale: 1.0 / 255, ZeroPoint: 0, QMin: 0, QMax: 255}
	const k, n = 64, 2
	op := qmodel.Op{Type: model.OpLinear, Name: "fc", In: k, Out: n, WeightBits: 8, ClampMin: 0, ClampMax: 255,
		Output: qmodel.Quant{Scale: 1, ZeroPoint: 128, QMin: 0, QMax: 255}}
	for range n * k {
		op.Weight = append(op.Weight, w)
	}
	sum := math.Abs(float64(255 * k * int(w)))
	for range n {
		ws := float32(100 * 255 / sum)
		op.WeightScale = append(op.WeightScale, ws)
		op.Multiplier = append(op.Multiplier, float32(in.Scale*ws)/op.Output.Scale)
		op.Bias = append(op.Bias, 0)
	}
	m := &qmodel.Model{Name: "saturation", Input: [3]int{1, 8, 8}, Norm: model.Norm{Mean: 0, Std: 1},
		InputQuant: in, Requant: qmodel.RequantFloat, Classes: n,
		Ops: []qmodel.Op{{Type: model.OpFlatten, Name: "flat", Output: in}, op}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}
