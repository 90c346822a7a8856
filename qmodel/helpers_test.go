package qmodel

import (
	"bytes"
	"math"
	"testing"

	"qat/model"
)

// codes returns n hand-made codes of the given width: the first is the
// smallest code, the last the largest, the others cycle through the range.
func codes(n, bits int) []int8 {
	lo, hi := -1<<(bits-1), 1<<(bits-1)-1
	c := make([]int8, n)
	for i := range c {
		c[i] = int8(lo + (i*7+3)%(hi-lo+1))
	}
	c[0], c[n-1] = int8(lo), int8(hi)
	return c
}

// fixedPoint splits a positive real multiplier into a Q31 multiplier in
// [2^30, 2^31) and a right shift, as TFLite's QuantizeMultiplier does.
func fixedPoint(m float64) (int32, int32) {
	frac, exp := math.Frexp(m) // m = frac * 2^exp, frac in [0.5, 1)
	q := int64(math.Round(frac * (1 << 31)))
	if q == 1<<31 {
		q /= 2
		exp++
	}
	return int32(q), int32(-exp)
}

// testModel returns a valid model of every op type, per sample:
//
//	c1      conv 1->3 k3 s1 p1, fused ReLU   [1,6,6] -> [3,6,6]
//	r6      relu6                            [3,6,6]
//	pool1   maxpool k2 s2                    [3,3,3]
//	pool2   avgpool k2 s1                    [3,2,2]
//	flat    flatten                          [12]
//	head.fc linear 12->3                     [3]
//
// with convBits- and fcBits-bit hand-made weight codes (27 and 36 codes,
// so a packed conv weight leaves unused bits) and the given requant mode.
// In fixed mode one channel of head.fc has a multiplier above 1 (a
// negative shift).
func testModel(mode Requant, convBits, fcBits int) *Model {
	in := Quant{Scale: 0.012728, ZeroPoint: 33, QMin: 0, QMax: 255}
	act := Quant{Scale: 0.0235, ZeroPoint: 7, QMin: 0, QMax: 255}
	out := Quant{Scale: 0.171, ZeroPoint: 120, QMin: 0, QMax: 255}
	m := &Model{
		Name:       "small",
		Input:      [3]int{1, 6, 6},
		Classes:    3,
		Norm:       model.Norm{Mean: 0.1307, Std: 0.3081},
		InputQuant: in,
		Requant:    mode,
		Ops: []Op{
			{Type: model.OpConv, Name: "c1", In: 1, Out: 3, Kernel: 3, Stride: 1, Padding: 1, WeightBits: convBits,
				Weight: codes(27, convBits), WeightScale: []float32{0.012, 0.0071, 0.0203}, Bias: []int32{-120, 0, 3456},
				Output: act, ClampMin: 7, ClampMax: 255},
			{Type: model.OpReLU6, Name: "r6", Output: act, ClampMin: 7, ClampMax: 200},
			{Type: model.OpMaxPool, Name: "pool1", Kernel: 2, Stride: 2, Output: act},
			{Type: model.OpAvgPool, Name: "pool2", Kernel: 2, Stride: 1, Output: act},
			{Type: model.OpFlatten, Name: "flat", Output: act},
			{Type: model.OpLinear, Name: "head.fc", In: 12, Out: 3, WeightBits: fcBits,
				Weight: codes(36, fcBits), WeightScale: []float32{0.0049, 0.0061, 0.0033}, Bias: []int32{789, -4321, 0},
				Output: out, ClampMin: 0, ClampMax: 255},
		},
	}
	inScale := in.Scale
	for i := range m.Ops {
		op := &m.Ops[i]
		if op.Type != model.OpConv && op.Type != model.OpLinear {
			continue
		}
		for c, ws := range op.WeightScale {
			mul := inScale * ws / op.Output.Scale
			if mode == RequantFloat {
				op.Multiplier = append(op.Multiplier, mul)
				continue
			}
			if op.Type == model.OpLinear && c == 0 {
				mul = 3.7
			}
			fm, shift := fixedPoint(float64(mul))
			op.FixedMultiplier = append(op.FixedMultiplier, fm)
			op.Shift = append(op.Shift, shift)
		}
		inScale = op.Output.Scale
	}
	return m
}

// encode writes m, failing the test on error.
func encode(t testing.TB, m *Model) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// dagModel returns a valid model that uses every addition of FormatV3,
// per sample:
//
//	op  name   type                                   inputs   shape
//	0   stem   conv 2->4 k3 s1 p1, fused ReLU         input    [4,6,6]
//	1   dw     conv 4->4 k3 s2 p1 groups 4 (depthwise) 0       [4,3,3]
//	           , fused ReLU6
//	2   pw     conv 4->4 k1 s2 groups 2                0       [4,3,3]
//	3   sum    add, fused ReLU                        1, 2     [4,3,3]
//	4   cat    concat                                 3, 1     [8,3,3]
//	5   pool   maxpool k3 s2 p1                       4        [8,2,2]
//	6   gap    global_avgpool                         5        [8,1,1]
//	7   flat   flatten                                6        [8]
//	8   fc     linear 8->3                            7        [3]
//
// with per-channel normalisation, 8-bit weights but for the 4-bit
// depthwise conv, and the given requant mode (multipliers worked out
// from each op's source's scale, as testModel's).
func dagModel(mode Requant) *Model {
	in := Quant{Scale: 0.0173, ZeroPoint: 120, QMin: 0, QMax: 255}
	stem := Quant{Scale: 0.031, ZeroPoint: 3, QMin: 0, QMax: 255}
	dw := Quant{Scale: 0.0251, ZeroPoint: 0, QMin: 0, QMax: 255}
	pw := Quant{Scale: 0.047, ZeroPoint: 131, QMin: 0, QMax: 255}
	sum := Quant{Scale: 0.053, ZeroPoint: 9, QMin: 0, QMax: 255}
	cat := Quant{Scale: 0.061, ZeroPoint: 17, QMin: 0, QMax: 255}
	out := Quant{Scale: 0.29, ZeroPoint: 127, QMin: 0, QMax: 255}
	m := &Model{
		Name:       "dag",
		Input:      [3]int{2, 6, 6},
		Classes:    3,
		Norm:       model.Norm{ChannelMean: []float32{0.4914, 0.4822}, ChannelStd: []float32{0.247, 0.2435}},
		InputQuant: in,
		Requant:    mode,
		Ops: []Op{
			{Type: model.OpConv, Name: "stem", In: 2, Out: 4, Kernel: 3, Stride: 1, Padding: 1, WeightBits: 8,
				Weight: codes(72, 8), WeightScale: []float32{0.011, 0.013, 0.0071, 0.009}, Bias: []int32{-300, 0, 41, 977},
				Output: stem, ClampMin: 3, ClampMax: 255},
			{Type: model.OpConv, Name: "dw", Inputs: []int{0}, In: 4, Out: 4, Kernel: 3, Stride: 2, Padding: 1, Groups: 4, WeightBits: 4,
				Weight: codes(36, 4), WeightScale: []float32{0.052, 0.07, 0.031, 0.044}, Bias: []int32{12, -7, 0, 3},
				Output: dw, ClampMin: 0, ClampMax: 239},
			{Type: model.OpConv, Name: "pw", Inputs: []int{0}, In: 4, Out: 4, Kernel: 1, Stride: 2, Groups: 2, WeightBits: 8,
				Weight: codes(8, 8), WeightScale: []float32{0.0031, 0.0027, 0.0049, 0.0063}, Bias: []int32{5000, -123, 77, 0},
				Output: pw, ClampMin: 0, ClampMax: 255},
			{Type: model.OpAdd, Name: "sum", Inputs: []int{1, 2}, Output: sum, ClampMin: 9, ClampMax: 255},
			{Type: model.OpConcat, Name: "cat", Inputs: []int{3, 1}, Output: cat, ClampMin: 0, ClampMax: 255},
			{Type: model.OpMaxPool, Name: "pool", Kernel: 3, Stride: 2, Padding: 1, Output: cat},
			{Type: model.OpGlobalAvgPool, Name: "gap", Output: cat},
			{Type: model.OpFlatten, Name: "flat", Output: cat},
			{Type: model.OpLinear, Name: "fc", In: 8, Out: 3, WeightBits: 8,
				Weight: codes(24, 8), WeightScale: []float32{0.0087, 0.0093, 0.0101}, Bias: []int32{-55, 0, 1234},
				Output: out, ClampMin: 0, ClampMax: 255},
		},
	}
	for i := range m.Ops {
		op := &m.Ops[i]
		if op.Type != model.OpConv && op.Type != model.OpLinear {
			continue
		}
		for _, ws := range op.WeightScale {
			mul := m.inputQuant(i).Scale * ws / op.Output.Scale
			if mode == RequantFloat {
				op.Multiplier = append(op.Multiplier, mul)
				continue
			}
			fm, shift := fixedPoint(float64(mul))
			op.FixedMultiplier = append(op.FixedMultiplier, fm)
			op.Shift = append(op.Shift, shift)
		}
	}
	return m
}
