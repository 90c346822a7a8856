package infer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"qat/export"
	"qat/model"
	"qat/qmodel"
)

// The expected values here come from refDynamic, a direct transcription
// of onnxruntime's CPU kernels for the dynamic-quantization graph
// (onnxruntime/core/util/qmath.h GetQuantizationParameter, mlas's
// MlasQuantizeLinear, MatMulInteger, then the Cast, Mul and Add nodes),
// which docs/int8-model.md specifies, and, for the quantization
// parameters, from hand computation.

// Instruction and library semantics refDynamic transcribes with.
func stdMin(a, b float32) float32 { // std::min(a, b)
	if b < a {
		return b
	}
	return a
}

func stdMax(a, b float32) float32 { // std::max(a, b)
	if a < b {
		return b
	}
	return a
}

func maxps(a, b float32) float32 { // _mm_max_ps(a, b): b unless a > b
	if a > b {
		return a
	}
	return b
}

func minps(a, b float32) float32 { // _mm_min_ps(a, b): b unless a < b
	if a < b {
		return a
	}
	return b
}

// refParams is GetQuantizationParameter<uint8_t> on x, line by line.
func refParams(x []float32) (float32, int32) {
	mn, mx := float32(math.MaxFloat32), -float32(math.MaxFloat32)
	for _, v := range x {
		mx = stdMax(mx, v)
		mn = stdMin(mn, v)
	}
	mn = stdMin(mn, 0)
	mx = stdMax(mx, 0)
	scale := float32(1)
	if mx != mn {
		scale = (mx - mn) / float32(255-0)
	}
	initial := float32(0) - mn/scale
	return scale, int32(math.RoundToEven(float64(stdMax(0, stdMin(255, initial)))))
}

// refDynamic is one sample of dynamic_linear o on floats x: the codes of
// MlasQuantizeLinear (divide, clamp to [-zp, 255-zp] by MAXPS and MINPS,
// round half to even, add zp), sum (q - zp) w exactly (int64), then
// float32(acc) * float32(xs * ws[j]) + bias[j] and the activation
// (Eigen's cwiseMax(0) is std::max(v, 0)).
func refDynamic(x []float32, o *qmodel.Op) []float32 {
	xs, zp := refParams(x)
	q := make([]int64, len(x))
	for i, v := range x {
		y := minps(maxps(v/xs, float32(0-zp)), float32(255-zp))
		q[i] = int64(math.RoundToEven(float64(y))) + int64(zp)
	}
	y := make([]float32, o.Out)
	for j := range y {
		var acc int64
		for i := range o.In {
			acc += (q[i] - int64(zp)) * int64(o.Weight[j*o.In+i])
		}
		v := float32(float32(int32(acc))*(xs*o.WeightScale[j])) + o.FloatBias[j]
		switch o.Act {
		case model.OpReLU:
			v = stdMax(v, 0)
		case model.OpReLU6:
			v = stdMin(stdMax(v, 0), 6)
		}
		y[j] = v
	}
	return y
}

// refDynamicNet runs the float input x of a FloatInput model m, one
// sample, through its ops (flatten moves nothing).
func refDynamicNet(m *qmodel.Model, x []float32) []float32 {
	for i := range m.Ops {
		if o := &m.Ops[i]; o.Type == qmodel.OpDynamicLinear {
			x = refDynamic(x, o)
		}
	}
	return x
}

func TestDynamicParams(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for _, c := range []struct {
		name  string
		x     []float32
		scale float32
		zp    int32
	}{
		// Hand-computed: the range extended to 0, scale (max-min)/255,
		// zero point -min/scale rounded and clamped to [0, 255].
		{"unit range", []float32{0, 255, 17}, 1, 0},
		{"negative unit range", []float32{-255, -3}, 1, 255},
		{"all positive", []float32{2, 3, 2.5}, float32(3) / 255, 0},
		{"all negative", []float32{-3, -2}, float32(3) / 255, 255},
		{"constant", []float32{5, 5, 5}, float32(5) / 255, 0},
		{"zeros", []float32{0, 0}, 1, 0},
		{"negative zero", []float32{float32(math.Copysign(0, -1))}, 1, 0},
		{"empty", nil, 1, 0},
		{"NaN left out", []float32{nan, 1, nan}, float32(1) / 255, 0},
		{"all NaN", []float32{nan, nan}, 1, 0},
		{"+Inf", []float32{inf, 1}, inf, 0},
		{"-Inf", []float32{-inf, 1}, inf, 255},                // -min/scale = -(-Inf/Inf) = NaN: 255
		{"overflowing range", []float32{-3e38, 3e38}, inf, 0}, // max-min = +Inf
		{"underflowing scale", []float32{0, 1e-44}, 0, 255},   // 1e-44/255 rounds to 0; 0/0 = NaN: 255
	} {
		scale, zp := DynamicParams(c.x)
		if math.Float32bits(scale) != math.Float32bits(c.scale) || zp != c.zp {
			t.Errorf("%s: DynamicParams(%v) = %v, %d; want %v, %d", c.name, c.x, scale, zp, c.scale, c.zp)
		}
		if rs, rz := refParams(c.x); math.Float32bits(rs) != math.Float32bits(scale) || rz != zp {
			t.Errorf("%s: the transcription gives %v, %d", c.name, rs, rz)
		}
	}
	// A range with a tie: [-1, 1] has z = 127.5 only if float32 says so;
	// whatever it is, the two agree on random ranges.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		x := randn(rng, 1+rng.IntN(9), float32(math.Pow(10, rng.Float64()*6-3)))
		if rng.IntN(3) == 0 {
			for i := range x {
				x[i] = float32(math.Abs(float64(x[i])))
			}
		}
		scale, zp := DynamicParams(x)
		if rs, rz := refParams(x); rs != scale || rz != zp {
			t.Fatalf("DynamicParams(%v) = %v, %d; the transcription %v, %d", x, scale, zp, rs, rz)
		}
		q := make([]uint8, len(x))
		QuantizeDynamic(q, x, scale, zp)
		for i, v := range x {
			want := math.RoundToEven(float64(minps(maxps(v/scale, float32(-zp)), float32(255-zp)))) + float64(zp)
			if float64(q[i]) != want {
				t.Fatalf("QuantizeDynamic(%v) code %d = %d, want %v", x, i, q[i], want)
			}
		}
	}
}

// dynamicSource returns a float model's source: flatten of a [1, 1, in]
// input, linear in->hidden with act, linear hidden->out, random weights.
func dynamicSource(rng *rand.Rand, in, hidden, out int, act model.OpType) export.Source {
	return export.Source{Name: "dyn", Input: [3]int{1, 1, in}, Classes: out, Norm: model.Norm{Mean: 0.13, Std: 0.31},
		Layers: []export.Layer{
			{Node: model.Node{Op: model.OpFlatten}},
			{Node: model.Node{Op: model.OpLinear, Name: "fc1", Out: hidden, Act: act}, In: in,
				Weight: randn(rng, hidden*in, 0.3), Bias: randn(rng, hidden, 0.2)},
			{Node: model.Node{Op: model.OpLinear, Name: "fc2", Out: out}, In: hidden,
				Weight: randn(rng, out*hidden, 0.3), Bias: randn(rng, out, 0.2)},
		}}
}

func sameFloats(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool {
		return math.Float32bits(x) == math.Float32bits(y) || x != x && y != y
	})
}

// TestDynamicLinear runs float-input nets of odd sizes on rows of every
// kind and compares each sample with refDynamicNet.
func TestDynamicLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	const in = 13
	rows := map[string][]float32{
		"all positive":       {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9},
		"all negative":       {-3, -1, -4, -1, -5, -9, -2, -6, -5, -3, -5, -8, -9},
		"constant":           {0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7},
		"zeros":              make([]float32, in),
		"NaN":                {1, nan, -2, 0.5, nan, 3, 0, 0, 1, 1, -1, 2, 0.25},
		"infinite":           {1, inf, -2, 0.5, 0, 3, 0, 0, 1, 1, -1, 2, 0.25},
		"extreme":            {3e38, -3e38, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"tiny":               {1e-44, 0, 3e-45, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"mixed":              randn(rng, in, 2),
		"mixed small values": randn(rng, in, 1e-5),
	}
	for _, act := range []model.OpType{"", model.OpReLU, model.OpReLU6} {
		m, err := export.FreezeDynamic(dynamicSource(rng, in, 7, 5, act), qmodel.RequantFloat)
		if err != nil {
			t.Fatal(err)
		}
		if !m.FloatInput || m.Ops[1].Type != qmodel.OpDynamicLinear {
			t.Fatalf("FreezeDynamic of a float source: %+v", m)
		}
		net, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		r := net.NewRunner(len(rows))
		var x, want []float32
		var names []string
		for name, row := range rows {
			names = append(names, name)
			x = append(x, row...)
			want = append(want, refDynamicNet(m, row)...)
		}
		r.Quantize(x)
		got := r.RunFloat(len(rows))
		for s, name := range names {
			if g, w := got[s*5:(s+1)*5], want[s*5:(s+1)*5]; !sameFloats(g, w) {
				t.Errorf("act %q, %s: got %v, want %v", act, name, g, w)
			}
		}
	}
}

// mixedModel freezes a quantized conv (3 channels, so that flatten
// reorders NHWC codes) feeding two dynamic linear layers, and returns it
// with its static prefix, which ends at the flatten (its codes in C, H,
// W order are the first dynamic op's input).
func mixedModel(t *testing.T, rng *rand.Rand, mode qmodel.Requant) (m, prefix *qmodel.Model) {
	t.Helper()
	src := export.Source{Name: "mixed", Input: [3]int{1, 6, 6}, Classes: 4, Norm: model.Norm{Mean: 0.13, Std: 0.31},
		InputQuant: actParams(-0.5, 2.8, 8)}
	w := randn(rng, 3*9, 0.3)
	src.Layers = []export.Layer{
		{Node: model.Node{Op: model.OpConv, Name: "c1", Out: 3, Kernel: 3, Act: model.OpReLU}, In: 1, Weight: w, Bias: randn(rng, 3, 0.2),
			WeightQuant: weightParams(w, 3, 8), ActQuant: actParams(0, 3, 8)},
		{Node: model.Node{Op: model.OpFlatten}},
		{Node: model.Node{Op: model.OpLinear, Name: "fc1", Out: 9, Act: model.OpReLU}, In: 48, Weight: randn(rng, 9*48, 0.3), Bias: randn(rng, 9, 0.2)},
		{Node: model.Node{Op: model.OpLinear, Name: "fc2", Out: 4}, In: 9, Weight: randn(rng, 4*9, 0.3)},
	}
	m, err := export.FreezeDynamic(src, mode)
	if err != nil {
		t.Fatal(err)
	}
	prefix = &qmodel.Model{Name: "prefix", Input: m.Input, Classes: 48, Norm: m.Norm, InputQuant: m.InputQuant, Requant: mode,
		Ops: slices.Clone(m.Ops[:2])}
	return m, prefix
}

// TestDynamicAfterCodes checks a net whose first dynamic op reads codes:
// they are dequantized, float32(q - zp) * scale, in C, H, W order.
func TestDynamicAfterCodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, mode := range []qmodel.Requant{qmodel.RequantFloat, qmodel.RequantFixed} {
		m, prefix := mixedModel(t, rng, mode)
		net, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		pre, err := New(prefix)
		if err != nil {
			t.Fatal(err)
		}
		const batch = 9
		pixels := randomPixels(rng, batch*net.InputLen())
		r, rp := net.NewRunner(batch), pre.NewRunner(batch)
		r.Pixels(pixels)
		got := r.RunFloat(batch)
		rp.Pixels(pixels)
		codes := rp.Run(batch)
		q := m.Ops[1].Output
		for s := range batch {
			x := make([]float32, 48)
			for i, c := range codes[s*48 : (s+1)*48] {
				x[i] = float32(int32(c)-q.ZeroPoint) * q.Scale
			}
			want := refDynamic(refDynamic(x, &m.Ops[2]), &m.Ops[3])
			if g := got[s*4 : (s+1)*4]; !sameFloats(g, want) {
				t.Errorf("%s sample %d: got %v, want %v", mode, s, g, want)
			}
		}
	}
}

func randomPixels(rng *rand.Rand, n int) []uint8 {
	p := make([]uint8, n)
	for i := range p {
		p[i] = uint8(rng.IntN(256))
	}
	return p
}

// A sample's outputs depend on it alone (its own range): Parallel gives
// one Runner's outputs on each sample alone, bit for bit, for every
// thread count and batch split, and Evaluate's result does not depend on
// the batch size. A Runner allocates nothing once it has run.
func TestDynamicBatchAndThreads(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m, _ := mixedModel(t, rng, qmodel.RequantFloat)
	f, err := export.FreezeDynamic(dynamicSource(rng, 13, 7, 4, model.OpReLU), qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*qmodel.Model{m, f} {
		net, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		const batch = 11
		n := net.InputLen()
		pixels := randomPixels(rng, batch*n)
		one := net.NewRunner(1)
		var want []float32
		for s := range batch {
			one.Pixels(pixels[s*n : (s+1)*n])
			want = append(want, one.RunFloat(1)...)
		}
		for _, threads := range []int{1, 2, 3, 7} {
			p := net.NewParallel(batch, threads)
			for _, b := range []int{batch, 5, 1} {
				if got := p.RunFloat(pixels[:b*n]); !sameFloats(got, want[:b*4]) {
					t.Fatalf("%s threads %d batch %d: got %v, want %v", m.Name, threads, b, got, want[:b*4])
				}
			}
		}
		labels := make([]uint8, batch)
		for i := range labels {
			labels[i] = uint8(i % 4)
		}
		var first Result
		for _, b := range []int{1, 4, batch} {
			res, err := Evaluate(net, pixels, labels, EvalConfig{Batch: b, Threads: 2, KeepCodes: true})
			if err != nil {
				t.Fatal(err)
			}
			if !sameFloats(res.Logits, want) || res.Codes != nil {
				t.Fatalf("%s: Evaluate batch %d logits %v, want %v", m.Name, b, res.Logits, want)
			}
			res.SamplesPerSec = 0
			if b == 1 {
				first = res
			} else if res.Correct != first.Correct || res.Correct5 != first.Correct5 || res.Loss != first.Loss {
				t.Errorf("%s: Evaluate batch %d %+v, batch 1 %+v", m.Name, b, res, first)
			}
		}
		r := net.NewRunner(3)
		if a := testing.AllocsPerRun(5, func() { r.Pixels(pixels[:3*n]); r.RunFloat(3) }); a != 0 {
			t.Errorf("%s: %v allocations a run", m.Name, a)
		}
	}
}

// Run refuses a net with float outputs; RunFloat of a codes net is its
// dequantized codes.
func TestRunFloatOfCodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	_, prefix := mixedModel(t, rng, qmodel.RequantFloat)
	net, err := New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	pixels := randomPixels(rng, 2*net.InputLen())
	r := net.NewRunner(2)
	r.Pixels(pixels)
	codes := slices.Clone(r.Run(2))
	want := make([]float32, len(codes))
	net.Dequantize(want, codes)
	if got := r.RunFloat(2); !sameFloats(got, want) || net.FloatOutput() {
		t.Errorf("RunFloat %v, want %v", got, want)
	}
	m, _ := mixedModel(t, rng, qmodel.RequantFloat)
	dyn, err := New(m)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Run of a net with float outputs did not panic")
		}
	}()
	dyn.NewRunner(1).Run(1)
}
