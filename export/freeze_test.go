package export

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"qat/model"
	"qat/qmodel"
	"qat/quant"
)

// Expected values are worked by hand from the formulas in doc.go.

func linearLayer() Layer {
	return Layer{
		Node: model.Node{Op: model.OpLinear, Name: "fc", Out: 2, Act: model.OpReLU}, In: 3,
		Weight: []float32{0.5, -1, 0.25, 2, 0, -2},
		Bias:   []float32{0.3, -0.1},
		WeightQuant: quant.Params{Scale: []float32{1.0 / 127, 2.0 / 127}, ZeroPoint: []int32{0, 0},
			QMin: -127, QMax: 127, Axis: 0},
		ActQuant: quant.Params{Scale: []float32{0.05}, ZeroPoint: []int32{20}, QMin: 0, QMax: 255, Axis: -1},
	}
}

func TestFreezeLayerLinear(t *testing.T) {
	in := qmodel.Quant{Scale: 0.5, ZeroPoint: 10, QMin: 0, QMax: 255}
	op, err := FreezeLayer(linearLayer(), in, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	// w / s_w: 0.5*127 = 63.5 -> 64 (half to even), -127, 31.75 -> 32;
	// 2*127/2 = 127, 0, -127.
	wantW := []int8{64, -127, 32, 127, 0, -127}
	for i, w := range wantW {
		if op.Weight[i] != w {
			t.Fatalf("weight codes %v, want %v", op.Weight, wantW)
		}
	}
	// bias / (0.5 * s_w): 0.3 / (0.5/127) = 76.2 -> 76; -0.1 / (1/127) = -12.7 -> -13.
	if op.Bias[0] != 76 || op.Bias[1] != -13 {
		t.Errorf("bias %v, want [76 -13]", op.Bias)
	}
	for c, sw := range []float32{1.0 / 127, 2.0 / 127} {
		if want := float32(in.Scale*sw) / 0.05; op.Multiplier[c] != want {
			t.Errorf("multiplier[%d] = %g, want %g", c, op.Multiplier[c], want)
		}
	}
	if op.WeightBits != 8 || op.ClampMin != 20 || op.ClampMax != 255 || op.Output.ZeroPoint != 20 {
		t.Errorf("bits %d clamp [%d, %d] output %+v", op.WeightBits, op.ClampMin, op.ClampMax, op.Output)
	}
	fixed, err := FreezeLayer(linearLayer(), in, qmodel.RequantFixed)
	if err != nil {
		t.Fatal(err)
	}
	for c, m := range op.Multiplier {
		m0, shift, _ := quant.FixedMultiplier(float64(m))
		if fixed.FixedMultiplier[c] != m0 || fixed.Shift[c] != shift || fixed.Multiplier != nil {
			t.Errorf("fixed channel %d: %d >> %d, want %d >> %d", c, fixed.FixedMultiplier[c], fixed.Shift[c], m0, shift)
		}
	}
}

func TestFreezeLayerFoldsBN(t *testing.T) {
	l := linearLayer()
	l.Op, l.Kernel, l.Stride, l.In = model.OpConv, 1, 1, 3
	l.BN = &BN{Gamma: []float32{2, -1}, Beta: []float32{0.5, 0}, Mean: []float32{0.1, 0.2}, Var: []float32{3.99999, 0.99999}, Eps: 1e-5}
	l.WeightQuant.Scale = []float32{4.0 / 127, 2.0 / 127}
	in := qmodel.Quant{Scale: 0.5, ZeroPoint: 0, QMin: 0, QMax: 255}
	op, err := FreezeLayer(l, in, qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	sf := make([]float32, 2)
	quant.FoldScale(sf, make([]float32, 2), l.BN.Gamma, l.BN.Var, l.BN.Eps)
	if math.Abs(float64(sf[0]-1)) > 1e-6 || math.Abs(float64(sf[1]+1)) > 1e-6 {
		t.Fatalf("fold scale %v, want about [1 -1]", sf)
	}
	// Channel 1 is negated by sf: codes of -w.
	if op.Weight[3] != -127 || op.Weight[5] != 127 {
		t.Errorf("folded weight codes %v", op.Weight)
	}
	// bias: beta + (b - mean)*sf = 0.5 + 0.2*1 = 0.7 -> 0.7/(0.5*4/127) = 44.45 -> 44;
	// 0 + (-0.1-0.2)*-1 = 0.3 -> 0.3/(0.5*2/127) = 38.1 -> 38.
	if op.Bias[0] != 44 || op.Bias[1] != 38 {
		t.Errorf("folded bias %v, want [44 38]", op.Bias)
	}
}

func TestActQuantOffsetsSigned(t *testing.T) {
	q, err := ActQuant(quant.Params{Scale: []float32{0.1}, ZeroPoint: []int32{-3}, QMin: -128, QMax: 127, Axis: -1})
	if err != nil {
		t.Fatal(err)
	}
	if q != (qmodel.Quant{Scale: 0.1, ZeroPoint: 125, QMin: 0, QMax: 255}) {
		t.Errorf("offset params %+v", q)
	}
	lo, hi, err := Clamp(model.OpReLU6, qmodel.Quant{Scale: 0.1, ZeroPoint: 5, QMin: 0, QMax: 255})
	if err != nil || lo != 5 || hi != 65 {
		t.Errorf("relu6 clamp [%d, %d], %v; want [5, 65]", lo, hi, err)
	}
}

func TestFreezeLayerErrors(t *testing.T) {
	in := qmodel.Quant{Scale: 0.5, ZeroPoint: 10, QMin: 0, QMax: 255}
	for _, c := range []struct {
		name        string
		edit        func(*Layer)
		want        string
		unsupported bool
	}{
		{"asymmetric weights", func(l *Layer) { l.WeightQuant.ZeroPoint = []int32{0, 3} }, "zero point[1] = 3", true},
		{"per-channel activations", func(l *Layer) {
			l.ActQuant = quant.Params{Scale: []float32{1, 1}, ZeroPoint: []int32{0, 0}, QMax: 255, Axis: 1}
		}, "per-channel activation", true},
		{"16-bit activations", func(l *Layer) { l.ActQuant.QMax = 65535 }, "wider than 8 bits", true},
		{"weight count", func(l *Layer) { l.Weight = l.Weight[:5] }, "weight has 5 elements, want 6", false},
		{"bias count", func(l *Layer) { l.Bias = l.Bias[:1] }, "bias has 1 elements", false},
		{"NaN bias", func(l *Layer) { l.Bias[0] = float32(math.NaN()) }, "bias[0] = NaN is not finite", false},
		{"huge bias", func(l *Layer) { l.Bias[1] = 1e9 }, "beyond 2^30", true},
		{"bad scale", func(l *Layer) { l.WeightQuant.Scale[0] = 0 }, "weight quantizer", false},
		{"wide weights", func(l *Layer) { l.WeightQuant.QMin, l.WeightQuant.QMax = -1000, 1000 }, "does not fit 8 signed bits", true},
		{"activation", func(l *Layer) { l.Act = "gelu" }, `activation "gelu"`, true},
		{"pool", func(l *Layer) { l.Op = model.OpMaxPool }, "FreezeLayer of a maxpool", true},
	} {
		l := linearLayer()
		l.WeightQuant.ZeroPoint = append([]int32(nil), l.WeightQuant.ZeroPoint...)
		l.Bias = append([]float32(nil), l.Bias...)
		c.edit(&l)
		_, err := FreezeLayer(l, in, qmodel.RequantFloat)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "layer fc") {
			t.Errorf("%s: error %v, want one naming layer fc and containing %q", c.name, err, c.want)
			continue
		}
		if errors.Is(err, ErrUnsupported) != c.unsupported {
			t.Errorf("%s: errors.Is(ErrUnsupported) = %v", c.name, !c.unsupported)
		}
	}
	if _, err := FreezeLayer(linearLayer(), in, "double"); err == nil || !strings.Contains(err.Error(), `mode "double"`) {
		t.Errorf("bad mode: %v", err)
	}
}

func TestWeightBits(t *testing.T) {
	for _, c := range []struct{ lo, hi, want int32 }{{-2, 1, 2}, {-1, 1, 2}, {-8, 7, 4}, {-7, 7, 4}, {-4, 3, 4}, {-127, 127, 8}, {-16, 15, 8}} {
		if got, err := weightBits(c.lo, c.hi); err != nil || int32(got) != c.want {
			t.Errorf("weightBits(%d, %d) = %d, %v; want %d", c.lo, c.hi, got, err, c.want)
		}
	}
}

// dagSource is a small graph on a [2, 4, 4] input: c0 conv 1x1 -> dw
// (depthwise 3x3, padded) and c2 (1x1, reading c0) -> their add with ReLU
// -> the concat of the add and the input -> a padded max pool -> global
// average pool -> flatten -> fc. Every output quantizer has its own
// scale, so that each op's input scale names its source.
func dagSource() Source {
	wq := quant.Params{Scale: []float32{0.01}, ZeroPoint: []int32{0}, QMin: -127, QMax: 127, Axis: -1}
	act := func(scale float32, zp int32) quant.Params {
		return quant.Params{Scale: []float32{scale}, ZeroPoint: []int32{zp}, QMin: 0, QMax: 255, Axis: -1}
	}
	weights := func(n int) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(i%5-2) * 0.1
		}
		return w
	}
	conv := func(name string, inputs []string, k, pad, groups int, scale float32) Layer {
		return Layer{Node: model.Node{Op: model.OpConv, Name: name, Inputs: inputs, Out: 2, Kernel: k, Padding: pad, Groups: groups},
			In: 2, Weight: weights(2 * 2 / max(groups, 1) * k * k), Bias: []float32{0.1, -0.2}, WeightQuant: wq, ActQuant: act(scale, 0)}
	}
	return Source{Name: "dag", Input: [3]int{2, 4, 4}, Classes: 3, InputQuant: act(0.02, 128), Layers: []Layer{
		conv("c0", nil, 1, 0, 0, 0.1),
		conv("dw", nil, 3, 1, 2, 0.2),
		conv("c2", []string{"c0"}, 1, 0, 0, 0.3),
		{Node: model.Node{Op: model.OpAdd, Name: "sum", Inputs: []string{"dw", "c2"}, Act: model.OpReLU}, ActQuant: act(0.05, 10)},
		{Node: model.Node{Op: model.OpConcat, Name: "cat", Inputs: []string{"sum", model.InputName}}, ActQuant: act(0.07, 3)},
		{Node: model.Node{Op: model.OpMaxPool, Kernel: 3, Stride: 2, Padding: 1}},
		{Node: model.Node{Op: model.OpGlobalAvgPool}},
		{Node: model.Node{Op: model.OpFlatten}},
		{Node: model.Node{Op: model.OpLinear, Name: "fc", Out: 3}, In: 4, Weight: weights(12), WeightQuant: wq, ActQuant: act(0.5, 100)},
	}}
}

// Freeze of a graph: each op reads its layer's sources, by index, and
// their quantization; adds and concats take their own; groups and maxpool
// padding carry over. Expected values follow from dagSource and the
// formulas in doc.go.
func TestFreezeDAG(t *testing.T) {
	m, err := Freeze(dagSource(), qmodel.RequantFloat)
	if err != nil {
		t.Fatal(err)
	}
	wantInputs := [][]int{nil, nil, {0}, {1, 2}, {3, -1}, nil, nil, nil, nil}
	for i, op := range m.Ops {
		if !slices.Equal(op.Inputs, wantInputs[i]) {
			t.Errorf("op %d (%s): inputs %v, want %v", i, op.Name, op.Inputs, wantInputs[i])
		}
	}
	// c2 reads c0 (scale 0.1), not dw (0.2): multiplier 0.1*0.01/0.3.
	if want := float32(float32(0.1)*0.01) / 0.3; m.Ops[2].Multiplier[0] != want {
		t.Errorf("c2 multiplier %v, want %v", m.Ops[2].Multiplier[0], want)
	}
	if dw := m.Ops[1]; dw.Groups != 2 || len(dw.Weight) != 2*1*3*3 || dw.In != 2 {
		t.Errorf("dw: groups %d, %d weights, in %d; want 2, 18, 2", dw.Groups, len(dw.Weight), dw.In)
	}
	if c0 := m.Ops[0]; c0.Groups != 0 {
		t.Errorf("c0: groups %d, want 0", c0.Groups)
	}
	sum := qmodel.Quant{Scale: 0.05, ZeroPoint: 10, QMin: 0, QMax: 255}
	if op := m.Ops[3]; op.Output != sum || op.ClampMin != 10 || op.ClampMax != 255 {
		t.Errorf("add: output %+v clamp [%d, %d]; want %+v, [10, 255]", op.Output, op.ClampMin, op.ClampMax, sum)
	}
	cat := qmodel.Quant{Scale: 0.07, ZeroPoint: 3, QMin: 0, QMax: 255}
	if op := m.Ops[4]; op.Output != cat || op.ClampMin != 0 || op.ClampMax != 255 {
		t.Errorf("concat: output %+v clamp [%d, %d]; want %+v, [0, 255]", op.Output, op.ClampMin, op.ClampMax, cat)
	}
	if pool := m.Ops[5]; pool.Padding != 1 || pool.Stride != 2 || pool.Output != cat || m.Ops[6].Output != cat {
		t.Errorf("pools: %+v, %+v; want padding 1, stride 2, the concat's quantization", pool, m.Ops[6])
	}
	if m.FormatVersion() != qmodel.FormatV3 {
		t.Errorf("format %s, want %s", m.FormatVersion(), qmodel.FormatV3)
	}
	// Layers of it as a chain of version-2 ops (c0, c2 whose input is
	// the layer before, a 4x4 max pool, flatten, fc on 2 features): no
	// inputs anywhere, format version 2.
	d := dagSource().Layers
	fc := d[8]
	fc.In, fc.Weight = 2, fc.Weight[:6]
	chain := Source{Name: "chain", Input: [3]int{2, 4, 4}, Classes: 3, InputQuant: dagSource().InputQuant,
		Layers: []Layer{d[0], d[2], {Node: model.Node{Op: model.OpMaxPool, Kernel: 4}}, d[7], fc}}
	cm, err := Freeze(chain, qmodel.RequantFixed)
	if err != nil {
		t.Fatal(err)
	}
	for i, op := range cm.Ops {
		if op.Inputs != nil {
			t.Errorf("chain op %d: inputs %v", i, op.Inputs)
		}
	}
	if cm.FormatVersion() != qmodel.Format {
		t.Errorf("chain format %s, want %s", cm.FormatVersion(), qmodel.Format)
	}
}

// An add or concat without an output quantizer has no int8 form.
func TestFreezeJoinWithoutQuantizer(t *testing.T) {
	for _, i := range []int{3, 4} {
		src := dagSource()
		src.Layers[i].ActQuant = quant.Params{}
		_, err := Freeze(src, qmodel.RequantFloat)
		want := fmt.Sprintf("layer %d (%s): cannot export: %s without an output quantizer", i, src.Layers[i].Name, src.Layers[i].Op)
		if !errors.Is(err, ErrUnsupported) || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want ErrUnsupported containing %q", err, want)
		}
	}
}
