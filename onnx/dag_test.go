package onnx

import (
	"math/rand/v2"
	"strings"
	"testing"

	"qat/deploy"
	"qat/layers"
	"qat/model"
	"qat/onnx/onnxtest"
	"qat/qmodel"
)

// cifarNorm is a per-channel normalisation (CIFAR-10's training-set
// constants).
var cifarNorm = model.Norm{ChannelMean: []float32{0.4914, 0.4822, 0.4465}, ChannelStd: []float32{0.247, 0.2435, 0.2616}}

// joinModel is a DAG with every op type but avgpool and relu (relu6's
// twin) and every way the export wires one: a concat of the model input
// and a conv, a padded max pool read by a depthwise conv (8-bit weights,
// stored as uint8) and a grouped 1x1 conv (4-bit, int8, multipliers one
// float32 step off), their add with a narrowed clamp, a concat of that
// add twice (in the add's own quantization: kept as it is) and of the
// pool (requantized), a 2x2 max pool padded by 1, a global average pool,
// adds of a linear op's [N, K, 1, 1] codes and a flatten's [N, K] ones and
// of a linear op with itself. (plain takes no padding: the pools get it
// after.)
func joinModel(t *testing.T) *qmodel.Model {
	s := newSynth(13, "joins", [3]int{3, 8, 7}, cifarNorm,
		qmodel.Quant{Scale: 0.02, ZeroPoint: 110, QMin: 0, QMax: 255}, qmodel.RequantFloat)
	s.weighted("c0", 3, 9, 3, 1, 1, 8, 0, 0, 255, 0, 255, false) // 0 [9, 8, 7], ReLU
	s.join(model.OpConcat, "cat0", qmodel.Quant{Scale: 0.03, ZeroPoint: 40, QMin: 0, QMax: 255}, 0, 255, -1, 0)
	s.plain(model.OpMaxPool, "pool", 3, 2, 0, 0) // 2 [12, 4, 4]
	s.m.Ops[2].Padding = 1
	s.grouped(12)
	s.weighted("dw", 12, 12, 3, 1, 1, 8, 10, 0, 255, 10, 200, false) // 3 [12, 4, 4], depthwise
	s.from(2)
	s.grouped(3)
	s.weighted("pw", 12, 12, 1, 1, 0, 4, 120, 5, 250, 5, 250, true) // 4 [12, 4, 4]
	sum := qmodel.Quant{Scale: 0.05, ZeroPoint: 30, QMin: 0, QMax: 255}
	s.join(model.OpAdd, "sum", sum, 30, 220, 3, 4)       // 5
	s.join(model.OpConcat, "cat1", sum, 0, 255, 5, 2, 5) // 6 [36, 4, 4]
	s.plain(model.OpMaxPool, "pool2", 2, 1, 0, 0)        // 7 [36, 5, 5]
	s.m.Ops[7].Padding = 1
	s.plain(model.OpGlobalAvgPool, "gap", 0, 0, 0, 0) // 8 [36, 1, 1]
	s.plain(model.OpFlatten, "flat", 0, 0, 0, 0)      // 9 [36]
	s.weighted("f1", 36, 36, 0, 0, 0, 8, 100, 0, 255, 0, 255, false)
	s.plain(model.OpReLU6, "r6", 0, 0, 100, 180) // 11 [36, 1, 1] columns
	s.join(model.OpAdd, "res", qmodel.Quant{Scale: 0.25, ZeroPoint: 90, QMin: 0, QMax: 255}, 0, 255, 11, 9)
	s.weighted("f2", 36, 6, 0, 0, 0, 4, 128, 0, 255, 0, 255, false) // 13
	twice := qmodel.Quant{Scale: 2.5 * s.cur.Scale, ZeroPoint: 128, QMin: 0, QMax: 255}
	s.join(model.OpAdd, "twice", twice, 0, 255, 13, 13)
	return s.model(t)
}

// dagSpec is model/testdata/small-dag.json, a small graph of every DAG
// node type: a conv with BN and ReLU, a padded max pool read by a
// depthwise conv with BN and ReLU6 and by a grouped 1x1 conv, their add
// with ReLU, the concat of the add and the pool, a global average pool,
// flatten and the classifier.
func dagSpec() model.Graph {
	g, err := model.Load("../model/testdata/small-dag.json")
	if err != nil {
		panic(err) // the test data is part of the repository
	}
	return g
}

// quantizedDAG returns spec with seeded params and BN state (floatModel),
// quantized as qc, calibrated on two random batches of 8 normalised
// inputs and frozen with float requantization and cifarNorm.
func quantizedDAG(t *testing.T, spec model.Graph, qc layers.QuantConfig) *qmodel.Model {
	t.Helper()
	m := floatModel(t, spec, 17)
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	cal, err := m.NewGraph(8, layers.Calibrate)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(19, 20))
	for range 2 {
		for i := range cal.Input() {
			cal.Input()[i] = float32(r.NormFloat64())
		}
		if err := cal.Run(make([]int, cal.Batch())); err != nil {
			t.Fatal(err)
		}
	}
	q, err := deploy.Freeze(m, cifarNorm, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestDAGInt8MatchesRuntime: onnxruntime computes exactly the codes of
// qat's int8 runtime for graphs: after every op of joinModel and of a
// quantized small DAG (W8A8: weights stored as uint8; W4A8: as int8),
// and after every add and the global pool of quantized resnet20 and
// mobilenet_v2, at every graph optimization level for the small models.
// Forcing all weights to uint8 keeps that (the kernels that sum exactly
// on every CPU, depthwise ones included); forcing int8 is logged, exact
// where onnxruntime has VNNI.
func TestDAGInt8MatchesRuntime(t *testing.T) {
	ort := onnxtest.Require(t)
	t.Logf("onnxruntime-node %s on %s", ort.Version, onnxtest.CPU())
	rng := rand.New(rand.NewPCG(21, 22))
	resnet20, _ := model.Builtin("resnet20")
	mobilenet, _ := model.Builtin("mobilenet_v2")
	w4 := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 4}}
	for _, c := range []struct {
		name  string
		model func(t *testing.T) *qmodel.Model
		batch int
		// every: compare after every op, else after every add and global
		// average pool.
		every bool
	}{
		{"joins", joinModel, 64, true},
		{"dag-w8a8", func(t *testing.T) *qmodel.Model { return quantizedDAG(t, dagSpec(), layers.QuantConfig{}) }, 64, true},
		{"dag-w4a8", func(t *testing.T) *qmodel.Model { return quantizedDAG(t, dagSpec(), w4) }, 64, true},
		{"resnet20", func(t *testing.T) *qmodel.Model { return quantizedDAG(t, resnet20, layers.QuantConfig{}) }, 16, false},
		{"mobilenet_v2", func(t *testing.T) *qmodel.Model { return quantizedDAG(t, mobilenet, layers.QuantConfig{}) }, 16, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := c.model(t)
			in := m.Input
			shape := [4]int{c.batch, in[0], in[1], in[2]}
			pixels := randomPixels(rng, c.batch, in[0]*in[1]*in[2])
			want := runInt8(t, m, pixels)
			last := m.Ops[len(m.Ops)-1].Output
			compare := func(what string, b []byte, opt string) onnxtest.Agreement {
				t.Helper()
				a, err := onnxtest.Compare(last, m.Classes, want, ort.RunAt(t, opt, b, onnxtest.Pixels(pixels), shape))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: %+v", what, a)
				return a
			}
			exact := func(a onnxtest.Agreement) {
				t.Helper()
				if a.ArgmaxAgreement != 1 || a.MaxLSB != 0 || a.ExactFraction != 1 {
					t.Errorf("onnxruntime differs from the int8 runtime: %+v", a)
				}
			}
			b, err := FromInt8(m)
			if err != nil {
				t.Fatal(err)
			}
			onnxtest.Check(t, b)
			levels := []string{"all"}
			if c.every {
				levels = []string{"disabled", "basic", "extended", "all"}
			}
			for _, opt := range levels {
				exact(compare("graph optimizations "+opt, b, opt))
			}
			uint8Only := func([]int8) WeightEncoding { return WeightsUint8 }
			int8Only := func([]int8) WeightEncoding { return WeightsInt8 }
			for _, f := range []struct {
				enc   func([]int8) WeightEncoding
				exact bool
			}{{uint8Only, true}, {int8Only, false}} {
				b, err := fromInt8(m, f.enc)
				if err != nil {
					t.Fatal(err)
				}
				a := compare("weights forced to "+f.enc(nil).String(), b, "all")
				if f.exact {
					exact(a)
				}
			}
			for i, op := range m.Ops[:len(m.Ops)-1] {
				if !c.every && op.Type != model.OpAdd && op.Type != model.OpGlobalAvgPool {
					continue
				}
				p := cone(t, m, i)
				a := compareInt8(t, ort, p, p, pixels, false)
				t.Logf("after op %d (%s %s): %+v", i, op.Type, op.Name, a)
				exact(a)
			}
		})
	}
}

// A global average pool of H*W = 65541 codes (above avgpool's largest
// window, 65536) whose mean 200.5 + 1/(2*65541) lies closer to the tie
// than float32 resolves at 200: qat rounds it up to 201, and so must
// onnxruntime (a float32 mean of the codes themselves rounds to the tie,
// then to 200).
func TestGlobalAvgPoolNearTie(t *testing.T) {
	ort := onnxtest.Require(t)
	const h, w = 3, 21847
	in := qmodel.Quant{Scale: 1.0 / 255, ZeroPoint: 0, QMin: 0, QMax: 255}
	m := &qmodel.Model{Name: "gap", Input: [3]int{2, h, w}, Classes: 2, Norm: model.Norm{Mean: 0, Std: 1},
		InputQuant: in, Requant: qmodel.RequantFloat, Ops: []qmodel.Op{
			{Type: model.OpGlobalAvgPool, Name: "gap", Output: in},
			{Type: model.OpFlatten, Name: "flat", Output: in},
		}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	// Channel 0: 32771 codes of 201 and the rest 200, a sum of
	// 200*65541 + 32771 = (401*65541 + 1)/2; channel 1 random.
	rng := rand.New(rand.NewPCG(23, 24))
	pixels := make([]uint8, 2*h*w)
	for i := range pixels {
		switch {
		case i < 32771:
			pixels[i] = 201
		case i < h*w:
			pixels[i] = 200
		default:
			pixels[i] = uint8(rng.IntN(256))
		}
	}
	if got := runInt8(t, m, pixels); got[0] != 201 {
		t.Fatalf("the int8 runtime's mean of channel 0 is %d, want 201", got[0])
	}
	a := compareInt8(t, ort, m, m, pixels, true)
	t.Logf("%+v", a)
	if a.MaxLSB != 0 || a.ExactFraction != 1 {
		t.Errorf("onnxruntime differs from the int8 runtime: %+v", a)
	}
}

// Exactness: "" for float requantization, the reason for fixed
// requantization, and for an add of two inputs whose dequantized codes
// overflow float32 (scale 1e37): their sum +Inf + -Inf is NaN, which qat
// quantizes to the zero point and onnxruntime, as Exactness says, not.
func TestExactness(t *testing.T) {
	if e := Exactness(joinModel(t)); e != "" {
		t.Errorf("joins: %q", e)
	}
	if e := Exactness(shallowModel(t)); !strings.Contains(e, "integer-only requantization") {
		t.Errorf("shallow (fixed): %q", e)
	}
	in := qmodel.Quant{Scale: 1.0 / 255, ZeroPoint: 0, QMin: 0, QMax: 255}
	big := qmodel.Quant{Scale: 1e37, ZeroPoint: 128, QMin: 0, QMax: 255}
	out := qmodel.Quant{Scale: 1, ZeroPoint: 100, QMin: 0, QMax: 255}
	conv := func(name string, w int8) qmodel.Op { // the input code times w/2
		return qmodel.Op{Type: model.OpConv, Name: name, Inputs: []int{-1}, In: 1, Out: 1, Kernel: 1, Stride: 1, WeightBits: 8,
			Weight: []int8{w}, WeightScale: []float32{1}, Bias: []int32{0}, Multiplier: []float32{0.5}, Output: big, ClampMin: 0, ClampMax: 255}
	}
	m := &qmodel.Model{Name: "huge", Input: [3]int{1, 4, 4}, Classes: 16, Norm: model.Norm{Mean: 0, Std: 1},
		InputQuant: in, Requant: qmodel.RequantFloat, Ops: []qmodel.Op{
			conv("a", 127), conv("b", -127),
			{Type: model.OpAdd, Name: "sum", Inputs: []int{0, 1}, Output: out, ClampMin: 0, ClampMax: 255},
			{Type: model.OpFlatten, Name: "flat", Output: out},
		}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if e := Exactness(m); !strings.Contains(e, "add sum: ") {
		t.Errorf("huge: %q", e)
	}
	ort := onnxtest.Require(t)
	pixels := make([]uint8, 16)
	for i := range pixels {
		pixels[i] = uint8(16 * i)
	}
	if a := compareInt8(t, ort, m, m, pixels, false); a.ExactFraction != 0 {
		t.Errorf("onnxruntime gives qat's codes of NaN sums: %+v", a)
	}
}
