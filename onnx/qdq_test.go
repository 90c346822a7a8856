package onnx

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"qat/data"
	"qat/deploy"
	"qat/layers"
	"qat/model"
	"qat/onnx/onnxtest"
	"qat/qmodel"
)

// decodedNode is a node of a decoded model: its type, inputs, outputs
// and int attributes.
type decodedNode struct {
	op      string
	in, out []string
	ints    map[string]int64
}

// decodedTensor is an initializer of a decoded model.
type decodedTensor struct {
	dtype int64
	dims  []int64
	raw   []byte
}

// decodedModel is an exported model decoded with the schema.
type decodedModel struct {
	ir, opset int64
	nodes     []decodedNode
	inits     map[string]decodedTensor
	// producer maps a tensor name to the node that writes it.
	producer map[string]decodedNode
}

func decode(t *testing.T, b []byte) decodedModel {
	t.Helper()
	pm := newMessage("ModelProto")
	if err := proto.Unmarshal(b, pm); err != nil {
		t.Fatal(err)
	}
	get := func(msg protoreflect.Message, name string) protoreflect.Value { return msg.Get(fieldOf(msg, name)) }
	strs := func(l protoreflect.List) []string {
		var s []string
		for i := 0; i < l.Len(); i++ {
			s = append(s, l.Get(i).String())
		}
		return s
	}
	ops := get(pm, "opset_import").List()
	if ops.Len() != 1 {
		t.Fatalf("%d opset imports", ops.Len())
	}
	d := decodedModel{ir: get(pm, "ir_version").Int(), opset: get(ops.Get(0).Message(), "version").Int(),
		inits: map[string]decodedTensor{}, producer: map[string]decodedNode{}}
	g := get(pm, "graph").Message()
	nodes := get(g, "node").List()
	for i := 0; i < nodes.Len(); i++ {
		n := nodes.Get(i).Message()
		dn := decodedNode{op: get(n, "op_type").String(), in: strs(get(n, "input").List()), out: strs(get(n, "output").List()), ints: map[string]int64{}}
		attrs := get(n, "attribute").List()
		for j := 0; j < attrs.Len(); j++ {
			a := attrs.Get(j).Message()
			if get(a, "type").Enum() == attrInt {
				dn.ints[get(a, "name").String()] = get(a, "i").Int()
			}
		}
		d.nodes = append(d.nodes, dn)
		for _, o := range dn.out {
			d.producer[o] = dn
		}
	}
	inits := get(g, "initializer").List()
	for i := 0; i < inits.Len(); i++ {
		tp := inits.Get(i).Message()
		dt := decodedTensor{dtype: get(tp, "data_type").Int(), raw: get(tp, "raw_data").Bytes()}
		dl := get(tp, "dims").List()
		for j := 0; j < dl.Len(); j++ {
			dt.dims = append(dt.dims, dl.Get(j).Int())
		}
		d.inits[get(tp, "name").String()] = dt
	}
	return d
}

// float32s returns the initializer name as float32 values.
func (d decodedModel) float32s(t *testing.T, name string) []float32 {
	t.Helper()
	tp, ok := d.inits[name]
	if !ok || tp.dtype != typeFloat {
		t.Fatalf("%s: not a float initializer (%+v)", name, tp)
	}
	v := make([]float32, len(tp.raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(uint32(tp.raw[4*i]) | uint32(tp.raw[4*i+1])<<8 | uint32(tp.raw[4*i+2])<<16 | uint32(tp.raw[4*i+3])<<24)
	}
	return v
}

// codes returns the int8 or int4 initializer name as codes (int4:
// TensorProto's INT4 packing, the first of two codes in the low bits).
func (d decodedModel) codes(t *testing.T, name string, n int) []int8 {
	t.Helper()
	tp := d.inits[name]
	v := make([]int8, n)
	switch tp.dtype {
	case typeInt8:
		for i := range v {
			v[i] = int8(tp.raw[i])
		}
	case typeInt4:
		if len(tp.raw) != (n+1)/2 {
			t.Fatalf("%s: %d bytes for %d int4 codes", name, len(tp.raw), n)
		}
		for i := range v {
			v[i] = int8(tp.raw[i/2]<<(4*(1-i%2))) >> 4 // sign-extend the nibble
		}
	default:
		t.Fatalf("%s: data type %d, want int8 or int4", name, tp.dtype)
	}
	return v
}

// checkQDQStructure checks the QDQ export b of m with options o against
// m itself, as the package documentation describes the graph: the
// versions; every QuantizeLinear read only by DequantizeLinear nodes with
// its own scale and zero point, and every DequantizeLinear of activations
// reading a QuantizeLinear; each op's output quantization its
// QuantizeLinear's; and each conv (Conv) and linear (Gemm, transB 1)
// reading its weight codes (int8, or int4 for WeightBits <= 4 with
// Int4Weights) and int32 bias through DequantizeLinear with axis 0, the
// weight scales and the bias scales float32(s_in*s_w[c]).
func checkQDQStructure(t *testing.T, m *qmodel.Model, o QDQOptions, b []byte) {
	t.Helper()
	d := decode(t, b)
	if wantIR, wantOpset := int64(IRVersion), int64(Opset); o.Int4Weights {
		wantIR, wantOpset = IRVersionInt4, OpsetInt4
		if d.ir != wantIR || d.opset != wantOpset {
			t.Errorf("IR version %d, opset %d, want %d, %d", d.ir, d.opset, wantIR, wantOpset)
		}
	} else if d.ir != wantIR || d.opset != wantOpset {
		t.Errorf("IR version %d, opset %d, want %d, %d", d.ir, d.opset, wantIR, wantOpset)
	}
	readers := map[string][]decodedNode{}
	for _, n := range d.nodes {
		for _, in := range n.in {
			readers[in] = append(readers[in], n)
		}
		if strings.HasPrefix(n.op, "QLinear") || n.op == "Cast" {
			t.Errorf("node %s %v: not a QDQ graph", n.op, n.out)
		}
	}
	for _, n := range d.nodes {
		switch n.op {
		case "QuantizeLinear":
			if _, ok := n.ints["axis"]; ok {
				t.Errorf("QuantizeLinear %v of activations has an axis", n.out)
			}
			for _, r := range readers[n.out[0]] {
				if r.op != "DequantizeLinear" || !slices.Equal(r.in[1:], n.in[1:]) {
					t.Errorf("QuantizeLinear %v is read by %s %v (scale and zero point %v, want %v)", n.out, r.op, r.out, r.in[1:], n.in[1:])
				}
			}
		case "DequantizeLinear":
			if _, init := d.inits[n.in[0]]; !init && d.producer[n.in[0]].op != "QuantizeLinear" {
				t.Errorf("DequantizeLinear %v reads %s", n.out, d.producer[n.in[0]].op)
			}
		}
	}
	q := func(prefix string) qmodel.Quant {
		t.Helper()
		s, z := d.float32s(t, prefix+"/scale"), d.inits[prefix+"/zero_point"]
		switch {
		case len(s) != 1 || len(z.raw) != 1:
			t.Fatalf("%s: scale %v, zero point %+v", prefix, s, z)
		case z.dtype == typeInt8 && z.raw[0] == 0:
			return qmodel.Quant{Scale: s[0], ZeroPoint: signedZeroPoint} // codes q-128
		case z.dtype != typeUint8 || z.raw[0] == signedZeroPoint:
			t.Fatalf("%s: zero point %+v, want uint8 other than %d, or int8 0", prefix, z, signedZeroPoint)
		}
		return qmodel.Quant{Scale: s[0], ZeroPoint: int32(z.raw[0])}
	}
	if got := q("input"); got.Scale != m.InputQuant.Scale || got.ZeroPoint != m.InputQuant.ZeroPoint {
		t.Errorf("input quantized as %+v, want %+v", got, m.InputQuant)
	}
	for i := range m.Ops {
		op := &m.Ops[i]
		if (op.Type == model.OpReLU || op.Type == model.OpReLU6) && op.ClampMin == 0 && op.ClampMax == 255 {
			continue // no clamp: no nodes
		}
		if got := q(op.Name); got.Scale != op.Output.Scale || got.ZeroPoint != op.Output.ZeroPoint {
			t.Errorf("op %s quantized as %+v, want %+v", op.Name, got, op.Output)
		}
		if !op.Node().Weighted() {
			continue
		}
		want := map[model.OpType]string{model.OpConv: "Conv", model.OpLinear: "Gemm"}[op.Type]
		var n decodedNode
		for _, c := range d.nodes {
			if c.op == want && strings.HasPrefix(c.out[0], op.Name+"/") {
				n = c
			}
		}
		if n.op == "" || len(n.in) != 3 || op.Type == model.OpLinear && n.ints["transB"] != 1 {
			t.Fatalf("op %s: node %+v, want %s of input, weight and bias (Gemm: transB 1)", op.Name, n, want)
		}
		w, bias := d.producer[n.in[1]], d.producer[n.in[2]]
		if w.op != "DequantizeLinear" || bias.op != "DequantizeLinear" || w.ints["axis"] != 0 || bias.ints["axis"] != 0 {
			t.Fatalf("op %s: weight from %+v, bias from %+v, want per-channel DequantizeLinear, axis 0", op.Name, w, bias)
		}
		wantType := int64(typeInt8)
		if o.Int4Weights && op.WeightBits <= 4 {
			wantType = typeInt4
		}
		if wt := d.inits[w.in[0]]; wt.dtype != wantType || d.inits[w.in[2]].dtype != wantType {
			t.Errorf("op %s (%d-bit weights): weight type %d, zero point type %d, want %d", op.Name, op.WeightBits, wt.dtype, d.inits[w.in[2]].dtype, wantType)
		}
		if got := d.codes(t, w.in[0], len(op.Weight)); !slices.Equal(got, op.Weight) {
			t.Errorf("op %s: weight codes differ from the model's", op.Name)
		}
		if zp := d.codes(t, w.in[2], op.Out); slices.ContainsFunc(zp, func(z int8) bool { return z != 0 }) {
			t.Errorf("op %s: weight zero points %v", op.Name, zp)
		}
		if got := d.float32s(t, w.in[1]); !slices.Equal(got, op.WeightScale) {
			t.Errorf("op %s: weight scales %v, want %v", op.Name, got, op.WeightScale)
		}
		in := sourceQuants(m, i)[0]
		for c, s := range d.float32s(t, bias.in[1]) {
			if s != in.Scale*op.WeightScale[c] {
				t.Errorf("op %s: bias scale[%d] %v, want float32(%v * %v)", op.Name, c, s, in.Scale, op.WeightScale[c])
			}
		}
		bt := d.inits[bias.in[0]]
		if bt.dtype != typeInt32 || len(bias.in) != 2 || len(bt.raw) != 4*op.Out {
			t.Errorf("op %s: bias %+v read by %v, want int32 [%d] without zero point", op.Name, bt, bias.in, op.Out)
		}
		for c, v := range op.Bias {
			r := bt.raw[4*c:]
			if got := int32(uint32(r[0]) | uint32(r[1])<<8 | uint32(r[2])<<16 | uint32(r[3])<<24); got != v {
				t.Errorf("op %s: bias[%d] %d, want %d", op.Name, c, got, v)
			}
		}
	}
}

// signedActs quantizes activations with signed symmetric 8-bit codes,
// zero point 128 in the qmodel format, which the QDQ graph writes as int8
// with zero point 0.
var signedActs = layers.QuantConfig{Act: layers.QuantSpec{Signed: true, Symmetric: true}}

// TestQDQStructure checks the QDQ exports of a small DAG at W8A8 and
// W4A8 (both options), lenet at W4A4 and with signed activations
// (signedActs), and qmodel's example (8-, 4- and
// 2-bit weights, relu6, both pools) against the models
// (checkQDQStructure), that a second export gives the same bytes, and
// runs the onnx checker on the opset 13 files (the installed onnx package,
// 1.12, predates opset 21 and int4).
func TestQDQStructure(t *testing.T) {
	w4 := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 4}}
	w4a4 := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 4}, Act: layers.QuantSpec{Bits: 4}}
	lenet, _ := model.Builtin("lenet")
	for _, c := range []struct {
		name string
		m    *qmodel.Model
		opts []QDQOptions
	}{
		{"dag-w8a8", quantizedDAG(t, dagSpec(), layers.QuantConfig{}), []QDQOptions{{}}},
		{"dag-w4a8", quantizedDAG(t, dagSpec(), w4), []QDQOptions{{}, {Int4Weights: true}}},
		{"lenet-w4a4", calibrated(t, lenet, w4a4), []QDQOptions{{}, {Int4Weights: true}}},
		{"lenet-w8a8-signed", calibrated(t, lenet, signedActs), []QDQOptions{{}}},
		{"small", readModel(t, "../qmodel/testdata/small.qmodel"), []QDQOptions{{}, {Int4Weights: true}}},
	} {
		if strings.HasSuffix(c.name, "-signed") && c.m.InputQuant.ZeroPoint != signedZeroPoint {
			t.Fatalf("%s: input zero point %d, want %d", c.name, c.m.InputQuant.ZeroPoint, signedZeroPoint)
		}
		for _, o := range c.opts {
			b, err := FromInt8QDQ(c.m, o)
			if err != nil {
				t.Fatalf("%s %+v: %v", c.name, o, err)
			}
			if again, err := FromInt8QDQ(c.m, o); err != nil || !bytes.Equal(again, b) {
				t.Errorf("%s %+v: a second export differs (error %v)", c.name, o, err)
			}
			checkQDQStructure(t, c.m, o, b)
			if !o.Int4Weights {
				onnxtest.Check(t, b)
			}
		}
	}
}

// FromInt8QDQ refuses what a QDQ graph cannot express, wrapping
// ErrNoQDQ: fixed requantization (shallowModel) and multipliers that are
// not those of the scales (deepModel's c2, one float32 step off); and
// int4 weights for a model whose weights are all 8-bit.
func TestQDQErrors(t *testing.T) {
	if _, err := FromInt8QDQ(nil, QDQOptions{}); err == nil || !strings.HasPrefix(err.Error(), "onnx: ") {
		t.Errorf("nil model: %v", err)
	}
	for _, c := range []struct {
		name string
		m    *qmodel.Model
		o    QDQOptions
		want string
		noQD bool
	}{
		{"fixed", shallowModel(t), QDQOptions{}, "onnx: int8 model shallow: no QDQ form: fixed requantization", true},
		{"multiplier", deepModel(t), QDQOptions{}, "onnx: int8 model deep: no QDQ form: op 2 (c2) channel 0: multiplier", true},
		{"int4", quantizedDAG(t, dagSpec(), layers.QuantConfig{}), QDQOptions{Int4Weights: true}, "no conv or linear op has weights of 4 bits or fewer", false},
	} {
		_, err := FromInt8QDQ(c.m, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, ErrNoQDQ) != c.noQD {
			t.Errorf("%s: %v, want an error containing %q (wrapping ErrNoQDQ: %v)", c.name, err, c.want, c.noQD)
		}
	}
}

// calibrated returns spec with seeded params and BN state (floatModel),
// quantized as qc, calibrated on two batches of 64 images of the embedded
// MNIST training sample and frozen with float requantization and MNIST's
// normalisation.
func calibrated(t *testing.T, spec model.Graph, qc layers.QuantConfig) *qmodel.Model {
	t.Helper()
	m := floatModel(t, spec, 29)
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	ds, err := data.LoadEmbedded("train")
	if err != nil {
		t.Fatal(err)
	}
	norm := model.Norm{Mean: data.MNISTMean, Std: data.MNISTStd}
	cal, err := m.NewGraph(64, layers.Calibrate)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 2 {
		for i := range cal.Input() {
			cal.Input()[i] = norm.Apply(ds.Images[b*len(cal.Input())+i])
		}
		if err := cal.Run(make([]int, cal.Batch())); err != nil {
			t.Fatal(err)
		}
	}
	q, err := deploy.Freeze(m, norm, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestQDQMatchesRuntime runs QDQ exports in onnxruntime, with its graph
// optimizations off (the float graph as written) and at its default (QDQ
// groups fused into integer kernels), and compares the output codes with
// qat's int8 runtime. They are not the same arithmetic (QDQInexact), so
// the test allows what was measured, with a margin; the figures are from
// an Intel Xeon (Sapphire Rapids, AVX-512 VNNI), onnxruntime-node 1.30.0.
//
// mnist: lenet and the graph model/testdata/residual-mnist.json (add,
// concat, depthwise conv, padded max pool, global pool), W8A8, W4A4 (as
// int8 and as int4 weights) and W8A8 with signed activations (int8 in the
// graph), seeded and calibrated on the embedded MNIST training sample
// (calibrated), on the 1000 images of the embedded test sample: measured
// at most 1 LSB, at least 99.3% of the samples exact, argmax agreement
// 100%; required at most 2 LSB, 90% exact, 99% argmax agreement.
//
// random: the small DAG (W8A8, W4A4, signed activations) on 1000 and
// resnet20 (W8A8) on 64 samples of random pixels, seeded and calibrated on
// random inputs (quantizedDAG), farther from the data the scales were
// made for: measured at most 3 LSB, 59% (resnet20 without optimizations)
// to 98% exact, argmax agreement at least 97.4%; required at most 4 LSB
// and 95% argmax agreement.
func TestQDQMatchesRuntime(t *testing.T) {
	ort := onnxtest.Require(t)
	t.Logf("onnxruntime-node %s on %s", ort.Version, onnxtest.CPU())
	w4a4 := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 4}, Act: layers.QuantSpec{Bits: 4}}
	type config struct {
		name string
		qc   layers.QuantConfig
		opts []QDQOptions
	}
	// compare runs the exports of m with opts on pixels and checks the
	// agreement against the bounds.
	compare := func(t *testing.T, name string, m *qmodel.Model, opts []QDQOptions, pixels []uint8, maxLSB int, exact, argmax float64) {
		t.Helper()
		want := runInt8(t, m, pixels)
		in := m.Input
		shape := [4]int{len(pixels) / (in[0] * in[1] * in[2]), in[0], in[1], in[2]}
		for _, o := range opts {
			b, err := FromInt8QDQ(m, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, opt := range []string{"disabled", "all"} {
				a, err := onnxtest.Compare(m.Ops[len(m.Ops)-1].Output, m.Classes, want, ort.RunAt(t, opt, b, onnxtest.Pixels(pixels), shape))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s %+v, optimizations %s: %+v", name, o, opt, a)
				if a.MaxLSB > maxLSB || a.ExactFraction < exact || a.ArgmaxAgreement < argmax {
					t.Errorf("%s %+v, optimizations %s: onnxruntime is farther from the int8 runtime than measured: %+v", name, o, opt, a)
				}
			}
		}
	}
	t.Run("mnist", func(t *testing.T) {
		ds, err := data.LoadEmbedded("test")
		if err != nil {
			t.Fatal(err)
		}
		lenet, _ := model.Builtin("lenet")
		residual, err := model.Load("../model/testdata/residual-mnist.json")
		if err != nil {
			t.Fatal(err)
		}
		for _, spec := range []model.Graph{lenet, residual} {
			for _, c := range []config{
				{"w8a8", layers.QuantConfig{}, []QDQOptions{{}}},
				{"w4a4", w4a4, []QDQOptions{{}, {Int4Weights: true}}},
				{"w8a8-signed", signedActs, []QDQOptions{{}}},
			} {
				compare(t, spec.Name+" "+c.name, calibrated(t, spec, c.qc), c.opts, ds.Images, 2, 0.9, 0.99)
			}
		}
	})
	t.Run("random", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(31, 32))
		for _, c := range []config{
			{"w8a8", layers.QuantConfig{}, []QDQOptions{{}}},
			{"w4a4", w4a4, []QDQOptions{{}, {Int4Weights: true}}},
			{"w8a8-signed", signedActs, []QDQOptions{{}}},
		} {
			m := quantizedDAG(t, dagSpec(), c.qc)
			compare(t, "dag "+c.name, m, c.opts, randomPixels(rng, 1000, m.Input[0]*m.Input[1]*m.Input[2]), 4, 0, 0.95)
		}
		resnet20, _ := model.Builtin("resnet20")
		m := quantizedDAG(t, resnet20, layers.QuantConfig{})
		compare(t, "resnet20 w8a8", m, []QDQOptions{{}}, randomPixels(rng, 64, 3*32*32), 4, 0, 0.95)
	})
}
