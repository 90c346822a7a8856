package onnx

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"qat/data"
	"qat/deploy"
	"qat/infer"
	"qat/layers"
	"qat/model"
	"qat/onnx/onnxtest"
	"qat/qmodel"
)

var mnistNorm = model.Norm{Mean: 0.1307, Std: 0.3081}

// embeddedTest returns the pixels and labels of the MNIST test sample
// built into the binary (data.LoadEmbedded).
func embeddedTest(t *testing.T) (pixels, labels []uint8) {
	t.Helper()
	te, err := data.LoadEmbedded(data.Test)
	if err != nil {
		t.Fatal(err)
	}
	return te.Images, te.Labels
}

// dynamicLenet returns the built-in lenet with seeded params, quantized
// with the default config, calibrated on 16 embedded test images and
// frozen with its linear layers dynamic: convs static int8, fc1 and fc2
// dynamic, reading the dequantized codes of the flatten.
func dynamicLenet(t *testing.T) *qmodel.Model {
	t.Helper()
	spec, err := model.Builtin("lenet")
	if err != nil {
		t.Fatal(err)
	}
	m := floatModel(t, spec, 23)
	if err := m.Quantize(layers.QuantConfig{}); err != nil {
		t.Fatal(err)
	}
	cal, err := m.NewGraph(8, layers.Calibrate)
	if err != nil {
		t.Fatal(err)
	}
	pixels, _ := embeddedTest(t)
	for b := range 2 {
		for i := range cal.Input() {
			cal.Input()[i] = mnistNorm.Apply(pixels[b*8*784+i])
		}
		if err := cal.Run(make([]int, cal.Batch())); err != nil {
			t.Fatal(err)
		}
	}
	q, err := deploy.FreezeDynamic(m, mnistNorm, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// dynamicMLP returns the built-in mlp with seeded params as a float
// model frozen dynamically: float input, three dynamic linear layers.
func dynamicMLP(t *testing.T) *qmodel.Model {
	t.Helper()
	spec, err := model.Builtin("mlp")
	if err != nil {
		t.Fatal(err)
	}
	q, err := deploy.FreezeDynamic(floatModel(t, spec, 29), mnistNorm, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// runDynamic returns the int8 runtime's float outputs of m on pixels.
func runDynamic(t *testing.T, m *qmodel.Model, pixels []uint8) []float32 {
	t.Helper()
	net, err := infer.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(net.NewParallel(len(pixels)/net.InputLen(), 2).RunFloat(pixels))
}

// logitAgreement compares float logits got with want, [N, classes]:
// the fraction of samples whose first largest logit is the same class,
// the largest |got - want| (+Inf for a NaN on one side only) and the
// fraction of samples whose every logit is the same float32, bit for bit.
type logitAgreement struct {
	Argmax, MaxAbsDiff, Exact float64
}

func compareLogits(got, want []float32, classes int) logitAgreement {
	var a logitAgreement
	n := len(want) / classes
	for s := range n {
		g, w := got[s*classes:(s+1)*classes], want[s*classes:(s+1)*classes]
		bg, bw, same := 0, 0, true
		for j := range classes {
			if g[j] > g[bg] {
				bg = j
			}
			if w[j] > w[bw] {
				bw = j
			}
			if math.Float32bits(g[j]) != math.Float32bits(w[j]) {
				same = false
				d := math.Abs(float64(g[j]) - float64(w[j]))
				if math.IsNaN(d) {
					d = math.Inf(1)
				}
				a.MaxAbsDiff = max(a.MaxAbsDiff, d)
			}
		}
		if bg == bw {
			a.Argmax++
		}
		if same {
			a.Exact++
		}
	}
	a.Argmax /= float64(n)
	a.Exact /= float64(n)
	return a
}

// The dynamic graph is what the package documentation and dynamicLinear
// say: per dynamic op one per-row ReduceMin, ReduceMax, QuantizeLinear
// (axis 0) and MatMulInteger with the transposed weights (uint8 w+128
// with zero point 128 for 8-bit codes beyond MaxSafeInt8Weight), no
// DynamicQuantizeLinear (per tensor); the static convs as QLinearConv;
// logits from an Identity of the last op's floats; the checker accepts it.
func TestDynamicStructure(t *testing.T) {
	for _, m := range []*qmodel.Model{dynamicLenet(t), dynamicMLP(t)} {
		b, err := FromInt8(m)
		if err != nil {
			t.Fatal(err)
		}
		onnxtest.Check(t, b)
		d := decode(t, b)
		count := map[string]int{}
		for _, n := range d.nodes {
			count[n.op]++
			if n.op == "QuantizeLinear" && len(n.in) == 3 && n.ints["axis"] != 0 {
				t.Errorf("%s: QuantizeLinear %v with axis %d", m.Name, n.out, n.ints["axis"])
			}
		}
		dynamic, static := 0, 0
		for i := range m.Ops {
			op := &m.Ops[i]
			switch op.Type {
			case qmodel.OpDynamicLinear:
				dynamic++
				w := d.inits[op.Name+"/weight"]
				if !slices.Equal(w.dims, []int64{int64(op.In), int64(op.Out)}) || w.dtype != typeUint8 {
					t.Errorf("%s: weight %v of type %d", op.Name, w.dims, w.dtype)
				}
				for o := range op.Out {
					for k := range op.In {
						if got := int(w.raw[k*op.Out+o]) - 128; got != int(op.Weight[o*op.In+k]) {
							t.Fatalf("%s: weight[%d][%d] = %d, want %d", op.Name, o, k, got, op.Weight[o*op.In+k])
						}
					}
				}
				if got := d.float32s(t, op.Name+"/bias"); !slices.Equal(got, op.FloatBias) {
					t.Errorf("%s: bias %v, want %v", op.Name, got, op.FloatBias)
				}
			case model.OpConv:
				static++
			}
		}
		for op, want := range map[string]int{"ReduceMin": dynamic, "ReduceMax": dynamic, "MatMulInteger": dynamic,
			"DynamicQuantizeLinear": 0, "QLinearConv": static, "DequantizeLinear": 0} {
			if count[op] != want {
				t.Errorf("%s: %d %s nodes, want %d", m.Name, count[op], op, want)
			}
		}
		if last := d.nodes[len(d.nodes)-1]; last.op != "Identity" || last.out[0] != "logits" {
			t.Errorf("%s: last node %+v", m.Name, last)
		}
	}
}

// TestDynamicMatchesRuntime: onnxruntime computes the float logits of
// qat's int8 runtime bit for bit on the embedded MNIST test sample, for
// a lenet with static convs and dynamic fc1, fc2 and for an all-dynamic
// float mlp: one sample a run (batch 1, where the per-row graph is
// DynamicQuantizeLinear's arithmetic on the whole input), and batches of
// 100 and of all 1000 samples, at the default graph optimizations and
// with them disabled.
func TestDynamicMatchesRuntime(t *testing.T) {
	ort := onnxtest.Require(t)
	t.Logf("onnxruntime-node %s on %s", ort.Version, onnxtest.CPU())
	pixels, labels := embeddedTest(t)
	n := len(labels)
	x := onnxtest.Pixels(pixels)
	for _, m := range []*qmodel.Model{dynamicLenet(t), dynamicMLP(t)} {
		b, err := FromInt8(m)
		if err != nil {
			t.Fatal(err)
		}
		want := runDynamic(t, m, pixels)
		for _, run := range []struct {
			opt   string
			batch int
		}{{"all", 1}, {"all", 100}, {"all", 0}, {"disabled", 1}, {"disabled", 0}} {
			got := ort.RunBatches(t, run.opt, run.batch, b, x, [4]int{n, 1, 28, 28})
			a := compareLogits(got, want, m.Classes)
			t.Logf("%s, optimizations %s, batch %d (0: all %d): %+v", m.Name, run.opt, run.batch, n, a)
			if a.Exact != 1 || a.Argmax != 1 {
				t.Errorf("%s, optimizations %s, batch %d: onnxruntime differs from the int8 runtime: %+v", m.Name, run.opt, run.batch, a)
			}
		}
	}
}

// TestDynamicQuantizeLinearMatchesORT checks infer.DynamicParams and
// infer.QuantizeDynamic, transcribed from onnxruntime's source, against
// onnxruntime's own DynamicQuantizeLinear on rows of every kind, one row
// a run: a graph of Flatten, DynamicQuantizeLinear and the Concat of its
// codes, scale and zero point as floats.
func TestDynamicQuantizeLinearMatchesORT(t *testing.T) {
	ort := onnxtest.Require(t)
	const k = 37
	b := newGraph("dql")
	x := b.input("input", typeFloat, dim{param: "N"}, dim{value: 1}, dim{value: 1}, dim{value: k})
	x = b.node("Flatten", "flat", []string{x}, intAttr("axis", 1))
	n := newMessage("NodeProto")
	add(n, "input", b.use(x))
	for _, o := range []string{"codes", "scale", "zero_point"} {
		add(n, "output", b.define(o))
	}
	set(n, "name", "dql")
	set(n, "op_type", "DynamicQuantizeLinear")
	add(b.g, "node", n)
	one := b.int64s("one_by_one", []int{2}, 1, 1)
	y := b.node("Concat", "all", []string{
		b.node("Cast", "codes_float", []string{"codes"}, intAttr("to", typeFloat)),
		b.node("Reshape", "scale_2d", []string{"scale", one}),
		b.node("Reshape", "zero_point_2d", []string{b.node("Cast", "zero_point_float", []string{"zero_point"}, intAttr("to", typeFloat)), one}),
	}, intAttr("axis", 1))
	b.output(y, typeFloat, dim{param: "N"}, dim{value: k + 2})
	model, err := b.marshal("DynamicQuantizeLinear", nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(31, 32))
	var rows [][]float32
	for i := range 300 {
		r := make([]float32, k)
		scale := math.Pow(10, rng.Float64()*8-4)
		for j := range r {
			r[j] = float32(rng.NormFloat64() * scale)
			switch i % 4 {
			case 1:
				r[j] = float32(math.Abs(float64(r[j]))) // all positive
			case 2:
				r[j] = -float32(math.Abs(float64(r[j]))) // all negative
			}
		}
		if i%10 == 3 {
			for j := range r {
				r[j] = r[0] // constant
			}
		}
		rows = append(rows, r)
	}
	rows = append(rows, make([]float32, k))
	var in []float32
	for _, r := range rows {
		in = append(in, r...)
	}
	got := ort.RunBatches(t, "all", 1, model, in, [4]int{len(rows), 1, 1, k})
	for i, r := range rows {
		scale, zp := infer.DynamicParams(r)
		q := make([]uint8, k)
		infer.QuantizeDynamic(q, r, scale, zp)
		g := got[i*(k+2) : (i+1)*(k+2)]
		if g[k] != scale || g[k+1] != float32(zp) {
			t.Fatalf("row %d %v: onnxruntime's scale %v, zero point %v; infer's %v, %d", i, r, g[k], g[k+1], scale, zp)
		}
		for j, c := range q {
			if g[j] != float32(c) {
				t.Fatalf("row %d %v: code %d is %v in onnxruntime, %d in infer", i, r, j, g[j], c)
			}
		}
	}
}

// FromInt8QDQ refuses a dynamic model: a QDQ graph has static scales.
func TestDynamicNoQDQ(t *testing.T) {
	_, err := FromInt8QDQ(dynamicMLP(t), QDQOptions{})
	if !errors.Is(err, ErrNoQDQ) || !strings.Contains(err.Error(), "is quantized dynamically") {
		t.Errorf("FromInt8QDQ: %v", err)
	}
}
