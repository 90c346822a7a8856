package qmodel

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"qat/model"
)

func TestShapes(t *testing.T) {
	m := testModel(RequantFloat, 8, 8)
	got, err := m.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{3, 6, 6}, {3, 6, 6}, {3, 3, 3}, {3, 2, 2}, {12}, {3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Shapes = %v, want %v", got, want)
	}
	got[1][0] = 99 // the result is the caller's
	if got, _ := m.Shapes(); got[0][0] != 3 || m.Input != [3]int{1, 6, 6} {
		t.Error("modifying a returned shape changed the model or another shape")
	}

	// Strides and padding: a 1x7x5 input, conv k3 s2 p1 gives 4x3, a
	// 2x2 maxpool with stride 3 gives 1x1.
	s := &Model{Input: [3]int{1, 7, 5}, Classes: 2, Ops: []Op{
		{Type: model.OpConv, Name: "c", In: 1, Out: 2, Kernel: 3, Stride: 2, Padding: 1, WeightBits: 8},
		{Type: model.OpMaxPool, Name: "p", Kernel: 2, Stride: 3},
		{Type: model.OpFlatten, Name: "f"},
	}}
	got, err = s.Shapes()
	if want := [][]int{{2, 4, 3}, {2, 1, 1}, {2}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Shapes = %v, %v, want %v", got, err, want)
	}
}

func TestValidate(t *testing.T) {
	if err := testModel(RequantFloat, 8, 8).Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		mode Requant // default float
		edit func(m *Model)
		want string
	}{
		{"empty name", "", func(m *Model) { m.Name = "" }, `name "": want a non-empty UTF-8 string`},
		{"name not UTF-8", "", func(m *Model) { m.Name = "a\xff" }, `want a non-empty UTF-8 string`},
		{"name with control character", "", func(m *Model) { m.Name = "a\nb" }, `contains a control character`},
		{"NaN mean", "", func(m *Model) { m.Norm.Mean = float32(math.NaN()) }, "norm: normalisation mean NaN is not finite"},
		{"negative std", "", func(m *Model) { m.Norm.Std = -1 }, "norm: normalisation std -1 is not a finite non-negative number"},
		{"infinite std", "", func(m *Model) { m.Norm.Std = float32(math.Inf(1)) }, "norm: normalisation std +Inf"},
		{"channel means", "", func(m *Model) { m.Norm.ChannelMean, m.Norm.ChannelStd = []float32{0.5, 0.5}, []float32{1, 1} }, "norm: normalisation has 2 channel means, want one per input channel (1)"},
		{"subnormal input scale", "", func(m *Model) { m.InputQuant.Scale = 1e-40 }, "input_quant: scale 1e-40: its float32 reciprocal is not finite"},
		{"NaN input scale", "", func(m *Model) { m.InputQuant.Scale = float32(math.NaN()) }, "input_quant: scale NaN: want a finite positive number"},
		{"qmin = qmax", "", func(m *Model) { m.InputQuant.QMin, m.InputQuant.QMax, m.InputQuant.ZeroPoint = 5, 5, 5 }, "input_quant: qmin 5, qmax 5: want 0 <= qmin < qmax <= 255"},
		{"negative qmin", "", func(m *Model) { m.InputQuant.QMin = -1 }, "qmin -1, qmax 255"},
		{"zero point below qmin", "", func(m *Model) { m.InputQuant.QMin = 40 }, "input_quant: zero_point 33: outside [qmin, qmax] = [40, 255]"},
		{"no requant", "", func(m *Model) { m.Requant = "" }, `requant "": want "float" or "fixed"`},
		{"no ops", "", func(m *Model) { m.Ops = nil }, "no ops"},
		{"zero input dimension", "", func(m *Model) { m.Input[1] = 0 }, "input shape [1 0 6]: every dimension must be in [1, 65536]"},
		{"input dimension too large", "", func(m *Model) { m.Input[2] = MaxDim + 1 }, "every dimension must be in [1, 65536]"},
		{"input too large", "", func(m *Model) { m.Input = [3]int{4096, 256, 512} }, "holds 536870912 elements, more than 268435456"},
		{"zero classes", "", func(m *Model) { m.Classes = 0 }, "classes 0: want at least 1"},
		{"empty op name", "", func(m *Model) { m.Ops[1].Name = "" }, `op 1 (relu6 ""): empty name`},
		{"op name starts with a digit", "", func(m *Model) { m.Ops[1].Name = "1r" }, `op 1 (relu6 "1r"): name "1r": want a letter or '_'`},
		{"op name with a dash", "", func(m *Model) { m.Ops[1].Name = "r-6" }, `name "r-6": want a letter`},
		{"op name starts with a dot", "", func(m *Model) { m.Ops[1].Name = ".r" }, `name ".r": want a letter`},
		{"duplicate op names", "", func(m *Model) { m.Ops[4].Name = "pool1" }, `op 4 (flatten "pool1"): name "pool1" is also the name of op 2`},
		{"unknown op type", "", func(m *Model) { m.Ops[1].Type = "gelu" }, `op 1 (gelu "r6"): unknown type "gelu"`},
		{"conv in mismatch", "", func(m *Model) { m.Ops[0].In = 2 }, `op 0 (conv "c1"): in 2, but the input [1 6 6] has 1 channels`},
		{"conv kernel 0", "", func(m *Model) { m.Ops[0].Kernel = 0 }, `op 0 (conv "c1"): kernel 0: want at least 1`},
		{"conv stride 0", "", func(m *Model) { m.Ops[0].Stride = 0 }, `op 0 (conv "c1"): stride 0: want at least 1`},
		{"negative padding", "", func(m *Model) { m.Ops[0].Padding = -1 }, `op 0 (conv "c1"): padding -1: want 0 to 65536`},
		{"kernel larger than the input", "", func(m *Model) { m.Ops[0].Kernel = 9 }, `op 0 (conv "c1"): kernel 9 larger than the input [1 6 6] padded to 8x8`},
		{"conv accumulation limit", "", func(m *Model) {
			m.Input = [3]int{1, 300, 300}
			m.Ops[0].Kernel = 257
		}, `op 0 (conv "c1"): in/groups*kernel*kernel = 66049 products per output exceed the int32 accumulation limit of 65792`},
		{"avgpool window limit", "", func(m *Model) {
			m.Input = [3]int{1, 300, 300}
			m.Ops = []Op{{Type: model.OpAvgPool, Name: "p", Kernel: 257, Stride: 1, Output: m.InputQuant}}
		}, `op 0 (avgpool "p"): kernel*kernel = 66049 codes per output exceed the limit of 65792`},
		{"linear on an image", "", func(m *Model) { m.Ops = append(m.Ops[:4], m.Ops[5]) }, `op 4 (linear "head.fc"): input [3 2 2] is not a vector: add a flatten node`},
		{"linear in mismatch", "", func(m *Model) { m.Ops[5].In = 11 }, `op 5 (linear "head.fc"): in 11, but the input has 12 features`},
		{"linear with a kernel", "", func(m *Model) { m.Ops[5].Kernel = 1 }, `op 5 (linear "head.fc"): kernel 1: does not apply to linear (must be 0)`},
		{"avgpool with padding", "", func(m *Model) { m.Ops[3].Padding = 1 }, `op 3 (avgpool "pool2"): padding 1: does not apply to avgpool (must be 0)`},
		{"pool with a clamp", "", func(m *Model) { m.Ops[2].ClampMin = 1 }, `op 2 (maxpool "pool1"): clamp_min 1: does not apply to maxpool (must be 0)`},
		{"relu with a stride", "", func(m *Model) { m.Ops[1].Stride = 1 }, `op 1 (relu6 "r6"): stride 1: does not apply to relu6 (must be 0)`},
		{"flatten with weight bits", "", func(m *Model) { m.Ops[4].WeightBits = 8 }, `op 4 (flatten "flat"): weight_bits 8: does not apply to flatten (must be 0)`},
		{"flatten with weights", "", func(m *Model) { m.Ops[4].Weight = []int8{1} }, `op 4 (flatten "flat"): weight has 1 elements, but does not apply to flatten`},
		{"relu with multipliers", "", func(m *Model) { m.Ops[1].Multiplier = []float32{1} }, `op 1 (relu6 "r6"): multiplier has 1 elements, but does not apply to relu6`},
		{"out 0", "", func(m *Model) { m.Ops[5].Out = 0 }, `op 5 (linear "head.fc"): out 0: want 1 to 65536`},
		{"weight bits 3", "", func(m *Model) { m.Ops[0].WeightBits = 3 }, `op 0 (conv "c1"): weight_bits 3: want 8, 4 or 2`},
		{"last op not classes", "", func(m *Model) { m.Ops = m.Ops[:4] }, "the last op gives shape [3 2 2] per sample, want [3] (classes)"},
		{"output zero point outside", "", func(m *Model) { m.Ops[0].Output.ZeroPoint = 256 }, `op 0 (conv "c1"): output: zero_point 256: outside [qmin, qmax] = [0, 255]`},
		{"output zero scale", "", func(m *Model) { m.Ops[5].Output.Scale = 0 }, `op 5 (linear "head.fc"): output: scale 0: want a finite positive number`},
		{"clamp min above max", "", func(m *Model) { m.Ops[0].ClampMin = 200; m.Ops[0].ClampMax = 100 }, `op 0 (conv "c1"): clamp_min 200, clamp_max 100`},
		{"clamp below qmin", "", func(m *Model) {
			m.Ops[5].Output.QMin = 10
			m.Ops[5].ClampMin = 5
		}, `op 5 (linear "head.fc"): clamp_min 5, clamp_max 255: want qmin 10 <= clamp_min`},
		{"relu clamp outside", "", func(m *Model) { m.Ops[1].ClampMax = 300 }, `op 1 (relu6 "r6"): clamp_min 7, clamp_max 300`},
		{"relu changes quantization", "", func(m *Model) { m.Ops[1].Output.Scale = 0.5 }, `op 1 (relu6 "r6"): output (scale 0.5, zero_point 7, qmin 0, qmax 255) differs from the input's quantization (scale 0.0235`},
		{"first op keeps the input quantization", "", func(m *Model) {
			m.Ops = append([]Op{{Type: model.OpReLU, Name: "r0", Output: m.Ops[0].Output, ClampMin: 7, ClampMax: 255}}, m.Ops...)
		}, `op 0 (relu "r0"): output (scale 0.0235, zero_point 7, qmin 0, qmax 255) differs from the input's quantization (scale 0.012728, zero_point 33`},
		{"short weight", "", func(m *Model) { m.Ops[0].Weight = m.Ops[0].Weight[1:] }, `op 0 (conv "c1"): weight has 26 elements, want 27`},
		{"4-bit code too large", "", func(m *Model) { m.Ops[0].WeightBits = 4; m.Ops[0].Weight = codes(27, 4); m.Ops[0].Weight[3] = 8 }, `op 0 (conv "c1"): weight[3] = 8: outside [-8, 7] for 4-bit weights`},
		{"2-bit code too small", "", func(m *Model) { m.Ops[5].WeightBits = 2; m.Ops[5].Weight = codes(36, 2); m.Ops[5].Weight[35] = -3 }, `op 5 (linear "head.fc"): weight[35] = -3: outside [-2, 1] for 2-bit weights`},
		{"short weight scale", "", func(m *Model) { m.Ops[0].WeightScale = m.Ops[0].WeightScale[:2] }, `op 0 (conv "c1"): weight_scale has 2 elements, want 3`},
		{"zero weight scale", "", func(m *Model) { m.Ops[0].WeightScale[2] = 0 }, `op 0 (conv "c1"): weight_scale[2] = 0: want a finite positive number`},
		{"infinite weight scale", "", func(m *Model) { m.Ops[0].WeightScale[0] = float32(math.Inf(1)) }, `weight_scale[0] = +Inf`},
		{"long bias", "", func(m *Model) { m.Ops[5].Bias = append(m.Ops[5].Bias, 0) }, `op 5 (linear "head.fc"): bias has 4 elements, want 3`},
		{"bias overflow", "", func(m *Model) { m.Ops[5].Bias[0] = math.MinInt32 }, `op 5 (linear "head.fc"): bias[0] = -2147483648: 255*sum|weight| + |bias|`},
		{"no multiplier", "", func(m *Model) { m.Ops[0].Multiplier = nil }, `op 0 (conv "c1"): multiplier has 0 elements, want 3`},
		{"negative multiplier", "", func(m *Model) { m.Ops[0].Multiplier[1] = -0.5 }, `op 0 (conv "c1"): multiplier[1] = -0.5: want a finite positive number`},
		{"fixed arrays in a float model", "", func(m *Model) {
			m.Ops[0].FixedMultiplier, m.Ops[0].Shift = []int32{1 << 30, 1 << 30, 1 << 30}, []int32{1, 1, 1}
		}, `op 0 (conv "c1"): fixed_multiplier has 3 elements, but a model with float requantization has none`},
		{"float multiplier in a fixed model", RequantFixed, func(m *Model) { m.Ops[5].Multiplier = []float32{1, 1, 1} },
			`op 5 (linear "head.fc"): multiplier has 3 elements, but a model with fixed requantization has none`},
		{"no shift", RequantFixed, func(m *Model) { m.Ops[0].Shift = nil }, `op 0 (conv "c1"): shift has 0 elements, want 3`},
		{"fixed multiplier 2^30-1", RequantFixed, func(m *Model) { m.Ops[0].FixedMultiplier[0] = 1<<30 - 1 },
			`op 0 (conv "c1"): fixed_multiplier[0] = 1073741823: outside [1073741824, 2147483647]`},
		{"negative fixed multiplier", RequantFixed, func(m *Model) { m.Ops[0].FixedMultiplier[2] = -1 << 30 }, `fixed_multiplier[2] = -1073741824: outside`},
		{"shift -32", RequantFixed, func(m *Model) { m.Ops[5].Shift[1] = -32 }, `op 5 (linear "head.fc"): shift[1] = -32: outside [-31, 62]`},
		{"shift 63", RequantFixed, func(m *Model) { m.Ops[5].Shift[2] = 63 }, `shift[2] = 63: outside [-31, 62]`},
		{"extreme fixed parameters", RequantFixed, func(m *Model) {
			m.Ops[0].FixedMultiplier = []int32{1 << 30, math.MaxInt32, 1 << 30}
			m.Ops[0].Shift = []int32{MinShift, MaxShift, 0}
		}, ""},
		{"extreme codes and bias", "", func(m *Model) {
			// 255*128*12 + |bias| = 2^31-1 exactly.
			for i := range m.Ops[5].Weight {
				m.Ops[5].Weight[i] = -128
			}
			m.Ops[5].Bias[1] = -(math.MaxInt32 - 255*128*12)
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mode := c.mode
			if mode == "" {
				mode = RequantFloat
			}
			m := testModel(mode, 8, 8)
			c.edit(m)
			err := m.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("valid model rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
}
