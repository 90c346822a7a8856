package qmodel

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"qat/model"
	"qat/safetensors"
)

// dynamicModel returns testModel(RequantFloat, 8, 8) with its linear
// head replaced by two dynamic_linear ops, per sample:
//
//	...     the static convs and pools of testModel        [12] codes
//	fc1     dynamic_linear 12->5, fused ReLU (reads codes) [5] floats
//	fc2     dynamic_linear 5->3                             [3] floats
//
// with hand-made weights, scales and biases.
func dynamicModel() *Model {
	m := testModel(RequantFloat, 8, 8)
	m.Name = "small-dynamic"
	m.Ops = append(m.Ops[:len(m.Ops)-1],
		Op{Type: OpDynamicLinear, Name: "fc1", In: 12, Out: 5, Act: model.OpReLU, Weight: codes(60, 8),
			WeightScale: []float32{0.0049, 0.0061, 0.0033, 0.011, 0.007}, FloatBias: []float32{0.25, -1.5, 0, 3e-7, 12}},
		Op{Type: OpDynamicLinear, Name: "fc2", In: 5, Out: 3, Weight: codes(15, 8),
			WeightScale: []float32{0.021, 0.0173, 0.0301}, FloatBias: []float32{-0.125, 0.5, 2}})
	return m
}

// floatInputModel returns an all-dynamic model of float input (the mlp
// form): flatten of the [1, 4, 3] normalised image, dynamic_linear 12->4
// with ReLU6, dynamic_linear 4->3.
func floatInputModel() *Model {
	return &Model{
		Name: "float-in", Input: [3]int{1, 4, 3}, Classes: 3, Norm: model.Norm{Mean: 0.1307, Std: 0.3081},
		FloatInput: true, Requant: RequantFloat,
		Ops: []Op{
			{Type: model.OpFlatten, Name: "flat"},
			{Type: OpDynamicLinear, Name: "fc1", In: 12, Out: 4, Act: model.OpReLU6, Weight: codes(48, 8),
				WeightScale: []float32{0.01, 0.02, 0.03, 0.04}, FloatBias: []float32{0, 0, 1, -1}},
			{Type: OpDynamicLinear, Name: "fc2", In: 4, Out: 3, Weight: codes(12, 8),
				WeightScale: []float32{0.5, 0.25, 0.125}, FloatBias: []float32{0, 0, 0}},
		},
	}
}

// Dynamic models are written as version 4 and read back unchanged; their
// float values are where the model says (Floats).
func TestDynamicRoundTrip(t *testing.T) {
	for _, c := range []struct {
		m      *Model
		floats []bool
	}{
		{dynamicModel(), []bool{false, false, false, false, false, true, true}},
		{floatInputModel(), []bool{true, true, true}},
	} {
		m := c.m
		if err := m.Validate(); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if !m.Dynamic() || m.FormatVersion() != FormatV4 {
			t.Errorf("%s: Dynamic %v, FormatVersion %q", m.Name, m.Dynamic(), m.FormatVersion())
		}
		if got := m.Floats(); !reflect.DeepEqual(got, c.floats) {
			t.Errorf("%s: Floats %v, want %v", m.Name, got, c.floats)
		}
		b := encode(t, m)
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%s: round trip changed the model:\n%+v\n%+v", m.Name, got, m)
		}
		f, err := safetensors.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if f.Metadata[MetaFormat] != FormatV4 || f.Tensors["fc1.bias"].DType != safetensors.F32 {
			t.Errorf("%s: format %q, fc1.bias %s", m.Name, f.Metadata[MetaFormat], f.Tensors["fc1.bias"].DType)
		}
		// No input_quant for a float input, no output for a flatten of
		// floats, no act for none.
		js := f.Metadata[MetaModel]
		if strings.Contains(js, `"input_quant"`) == m.FloatInput || strings.Count(js, `"act"`) != 1 {
			t.Errorf("%s: description %s", m.Name, js)
		}
	}
	if testModel(RequantFloat, 8, 8).Dynamic() || dagModel(RequantFloat).Dynamic() {
		t.Error("a static model is Dynamic")
	}
}

// A version-3 or older file cannot hold dynamic ops or a float input.
func TestDynamicInOlderFormats(t *testing.T) {
	for _, c := range []struct {
		m    *Model
		want string
	}{
		{dynamicModel(), `op 5 (dynamic_linear "fc1"): type dynamic_linear is not in format "qat-int8/3" ("qat-int8/4" has it)`},
		{floatInputModel(), `missing field "input_quant"`},
	} {
		for _, format := range []string{FormatV3, Format} {
			_, err := reparse(t, c.m, format, func(*testing.T, *safetensors.File) {})
			want := strings.ReplaceAll(c.want, `format "qat-int8/3"`, `format "`+format+`"`)
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s in %s: error %v, want one containing %q", c.m.Name, format, err, want)
			}
		}
	}
}

// TestCorruptDynamic edits the version-4 files of dynamicModel (ops: 0
// c1, 1 r6, 2 pool1, 3 pool2, 4 flat, 5 fc1, 6 fc2) and floatInputModel
// (0 flat, 1 fc1, 2 fc2) into invalid ones; the wanted errors are the
// format's rules (docs/int8-model.md, sections 3 and 4).
func TestCorruptDynamic(t *testing.T) {
	for _, c := range []struct {
		name  string
		float bool // edit floatInputModel rather than dynamicModel
		edit  func(j map[string]any)
		file  func(f *safetensors.File)
		want  string
	}{
		{name: "output on a dynamic_linear", edit: func(j map[string]any) { op(j, 5)["output"] = op(j, 3)["output"] },
			want: `op 5 (dynamic_linear "fc1"): field "output" does not apply to dynamic_linear`},
		{name: "clamp on a dynamic_linear", edit: func(j map[string]any) { op(j, 5)["clamp_min"] = 0 },
			want: `op 5 (dynamic_linear "fc1"): field "clamp_min" does not apply to dynamic_linear`},
		{name: "weight_bits on a dynamic_linear", edit: func(j map[string]any) { op(j, 5)["weight_bits"] = 8 },
			want: `op 5 (dynamic_linear "fc1"): field "weight_bits" does not apply to dynamic_linear`},
		{name: "unknown act", edit: func(j map[string]any) { op(j, 5)["act"] = "gelu" },
			want: `op 5 (dynamic_linear "fc1"): act "gelu": want relu, relu6 or none`},
		{name: "empty act", edit: func(j map[string]any) { op(j, 5)["act"] = "" },
			want: `op 5 (dynamic_linear "fc1"): field "act" is empty (leave it out for no activation)`},
		{name: "act on a conv", edit: func(j map[string]any) { op(j, 0)["act"] = "relu" },
			want: `op 0 (conv "c1"): field "act" does not apply to conv`},
		{name: "int32 bias", edit: func(map[string]any) {},
			file: func(f *safetensors.File) { f.Tensors["fc1.bias"] = safetensors.FromInt32([]int{5}, make([]int32, 5)) },
			want: `tensor "fc1.bias" is I32 [5], want F32 [5]`},
		{name: "multiplier on a dynamic_linear", edit: func(map[string]any) {},
			file: func(f *safetensors.File) {
				f.Tensors["fc1.multiplier"] = safetensors.FromFloat32([]int{5}, make([]float32, 5))
			},
			want: `unexpected tensor "fc1.multiplier": no op uses it`},
		{name: "NaN bias", edit: func(map[string]any) {},
			file: func(f *safetensors.File) {
				f.Tensors["fc2.bias"] = safetensors.FromFloat32([]int{3}, []float32{0, float32(math.NaN()), 0})
			}, want: `op 6 (dynamic_linear "fc2"): bias[1] = NaN: want a finite number`},
		{name: "zero weight scale", edit: func(map[string]any) {},
			file: func(f *safetensors.File) {
				f.Tensors["fc2.weight_scale"] = safetensors.FromFloat32([]int{3}, []float32{1, 0, 1})
			},
			want: `op 6 (dynamic_linear "fc2"): weight_scale[1] = 0: want a finite positive number`},
		{name: "dynamic_linear of another width", edit: func(j map[string]any) { op(j, 6)["in"] = 6 },
			want: `op 6 (dynamic_linear "fc2"): in 6, but the input has 5 features`},
		{name: "flatten of floats with an output", float: true,
			edit: func(j map[string]any) {
				op(j, 0)["output"] = map[string]any{"scale": 0.1, "zero_point": 0, "qmin": 0, "qmax": 255}
			}, want: `op 0 (flatten "flat"): output (scale 0.1, zero_point 0, qmin 0, qmax 255): a flatten of floats has no quantization`},
		{name: "flatten of codes without an output", edit: func(j map[string]any) { delete(op(j, 4), "output") },
			want: `op 4 (flatten "flat"): output (scale 0, zero_point 0, qmin 0, qmax 0) differs from the input's quantization`},
		{name: "maxpool of the float input", float: true,
			edit: func(j map[string]any) {
				j["ops"] = append([]any{map[string]any{"type": "maxpool", "name": "pool", "kernel": 1, "stride": 1,
					"output": map[string]any{"scale": 0.1, "zero_point": 0, "qmin": 0, "qmax": 255}}}, j["ops"].([]any)...)
			}, want: `op 0 (maxpool "pool"): inputs[0]: reads the model's float input, but maxpool reads codes (only dynamic_linear and flatten read floats)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := dynamicModel()
			if c.float {
				m = floatInputModel()
			}
			_, err := reparse(t, m, FormatV4, func(t *testing.T, f *safetensors.File) {
				editJSON(t, f, c.edit)
				if c.file != nil {
					c.file(f)
				}
			})
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", c.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error does not wrap ErrFormat: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
}

// Validate's rules for what a file cannot express: a float input with
// input quantization, a conv reading a dynamic_linear's floats.
func TestValidateDynamic(t *testing.T) {
	m := floatInputModel()
	m.InputQuant = Quant{Scale: 1, QMax: 255}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "input_quant (scale 1, zero_point 0, qmin 0, qmax 255): a model with float input has none") {
		t.Errorf("float input with input_quant: %v", err)
	}
	m = dynamicModel()
	m.Ops[6] = Op{Type: model.OpReLU, Name: "r", Output: m.Ops[3].Output, ClampMin: 7, ClampMax: 255}
	m.Ops = append(m.Ops, Op{Type: model.OpLinear, Name: "head", In: 5, Out: 3, WeightBits: 8})
	m.Classes = 3
	err := m.Validate()
	if want := `op 6 (relu "r"): inputs[0]: reads the float output of op 5 (dynamic_linear "fc1"), but relu reads codes`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("relu of floats: %v, want %q", err, want)
	}
}
