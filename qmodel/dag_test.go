package qmodel

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"qat/model"
	"qat/safetensors"
)

// The expected shapes follow from the table in dagModel's doc and
// model.Node.OutShape's rule; the expected errors are this package's and
// the model package's messages for each edit.

func TestDAGShapesAndSources(t *testing.T) {
	m := dagModel(RequantFloat)
	got, err := m.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{4, 6, 6}, {4, 3, 3}, {4, 3, 3}, {4, 3, 3}, {8, 3, 3}, {8, 2, 2}, {8, 1, 1}, {8}, {3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Shapes = %v, want %v", got, want)
	}
	for i, want := range [][]int{{-1}, {0}, {0}, {1, 2}, {3, 1}, {4}, {5}, {6}, {7}} {
		if got := m.Sources(i); !reflect.DeepEqual(got, want) {
			t.Errorf("Sources(%d) = %v, want %v", i, got, want)
		}
	}
	m.Sources(3)[0] = 7 // the result is the caller's
	if m.Ops[3].Inputs[0] != 1 {
		t.Error("modifying Sources' result changed the model")
	}
}

// FormatVersion is FormatV3 exactly when a model uses one of its
// additions, and the writer stores it.
func TestFormatVersion(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Model)
		want string
	}{
		{"chain", func(*Model) {}, Format},
		{"explicit input of the op before", func(m *Model) { m.Ops[1].Inputs = []int{0} }, FormatV3},
		{"per-channel norm", func(m *Model) { m.Norm = model.Norm{ChannelMean: []float32{0.5}, ChannelStd: []float32{0.2}} }, FormatV3},
		{"maxpool padding", func(m *Model) { m.Ops[2].Padding = 1 }, FormatV3},
		{"groups", func(m *Model) { m.Ops[0].Groups = 2 }, FormatV3},
		{"global_avgpool", func(m *Model) { m.Ops[3] = Op{Type: model.OpGlobalAvgPool, Name: "gap"} }, FormatV3},
		{"add", func(m *Model) { m.Ops[1].Type = model.OpAdd }, FormatV3},
		{"concat", func(m *Model) { m.Ops[1].Type = model.OpConcat }, FormatV3},
		{"conv padding", func(m *Model) { m.Ops[0].Padding = 2 }, Format},
	} {
		m := testModel(RequantFloat, 8, 8)
		c.edit(m)
		if got := m.FormatVersion(); got != c.want {
			t.Errorf("%s: FormatVersion %q, want %q", c.name, got, c.want)
		}
	}
	for _, m := range []*Model{testModel(RequantFixed, 8, 8), dagModel(RequantFixed)} {
		f, err := m.File()
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Metadata[MetaFormat]; got != m.FormatVersion() {
			t.Errorf("model %s written as %q, want %q", m.Name, got, m.FormatVersion())
		}
	}
}

// reparse writes m, applies edit to the parsed file, sets its format and
// checksum, and parses the result.
func reparse(t *testing.T, m *Model, format string, edit func(*testing.T, *safetensors.File)) (*Model, error) {
	t.Helper()
	f, err := safetensors.Parse(encode(t, m))
	if err != nil {
		t.Fatal(err)
	}
	edit(t, f)
	f.Metadata[MetaFormat] = format
	f.Metadata[MetaChecksum] = Checksum(f)
	var b bytes.Buffer
	if err := f.Write(&b); err != nil {
		t.Fatal(err)
	}
	return Parse(b.Bytes())
}

// A version-1 or -2 file with a field, type or normalisation of version 3
// is rejected, saying which; the same file as version 3 reads.
func TestV3FieldsInOlderFormats(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(j map[string]any)
		want string // for a version-2 file
	}{
		{"inputs", func(j map[string]any) { op(j, 1)["inputs"] = []int{0} },
			`op 1 (relu6 "r6"): field "inputs" does not apply to relu6 in format "qat-int8/2" ("qat-int8/3" has it)`},
		{"maxpool padding", func(j map[string]any) { op(j, 2)["padding"] = 0 },
			`op 2 (maxpool "pool1"): field "padding" does not apply to maxpool in format "qat-int8/2" ("qat-int8/3" has it)`},
		{"groups", func(j map[string]any) { op(j, 0)["groups"] = 0 },
			`op 0 (conv "c1"): field "groups" does not apply to conv in format "qat-int8/2" ("qat-int8/3" has it)`},
		{"type", func(j map[string]any) { op(j, 1)["type"] = "add"; op(j, 1)["inputs"] = []int{0, 0} },
			`op 1 (add "r6"): type add is not in format "qat-int8/2" ("qat-int8/3" has it)`},
		{"per-channel norm", func(j map[string]any) {
			j["norm"] = map[string]any{"mean": 0, "std": 0, "channel_mean": []float32{0.5}, "channel_std": []float32{0.2}}
		}, `norm: per-channel constants (channel_mean, channel_std) are not in format "qat-int8/2" ("qat-int8/3" has them)`},
	} {
		edit := func(t *testing.T, f *safetensors.File) { editJSON(t, f, c.edit) }
		for _, format := range []string{Format, FormatV1} {
			_, err := reparse(t, testModel(RequantFloat, 4, 8), format, edit)
			want := strings.ReplaceAll(c.want, `format "qat-int8/2"`, `format "`+format+`"`)
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s in %s: error %v, want one containing %q", c.name, format, err, want)
			}
		}
		if _, err := reparse(t, testModel(RequantFloat, 4, 8), FormatV3, edit); err != nil {
			t.Errorf("%s in %s: %v", c.name, FormatV3, err)
		}
	}
	// A version-3 file may hold a chain, and fields at their defaults;
	// it reads as the model those describe, which is written as version 2.
	m, err := reparse(t, testModel(RequantFloat, 4, 8), FormatV3, func(t *testing.T, f *safetensors.File) {
		editJSON(t, f, func(j map[string]any) { op(j, 2)["padding"] = 0; op(j, 0)["groups"] = 0 })
	})
	if err != nil || !reflect.DeepEqual(m, testModel(RequantFloat, 4, 8)) || m.FormatVersion() != Format {
		t.Errorf("chain as %s: %v, equal %v", FormatV3, err, reflect.DeepEqual(m, testModel(RequantFloat, 4, 8)))
	}
}

// TestCorruptDAG edits the version-3 file of dagModel (ops: 0 stem, 1 dw,
// 2 pw, 3 sum, 4 cat, 5 pool, 6 gap, 7 flat, 8 fc) into wrong graphs.
func TestCorruptDAG(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(j map[string]any)
		file func(f *safetensors.File) // after edit, when not nil
		want string
	}{
		{name: "input index forward", edit: func(j map[string]any) { op(j, 3)["inputs"] = []int{1, 4} },
			want: `op 3 (add "sum"): inputs[1] = 4: want -1 (the model input) or an earlier op's index, 0 to 2`},
		{name: "input index of itself", edit: func(j map[string]any) { op(j, 3)["inputs"] = []int{3, 2} },
			want: `op 3 (add "sum"): inputs[0] = 3: want -1 (the model input) or an earlier op's index, 0 to 2`},
		{name: "input index below -1", edit: func(j map[string]any) { op(j, 4)["inputs"] = []int{3, -2} },
			want: `op 4 (concat "cat"): inputs[1] = -2: want -1 (the model input) or an earlier op's index, 0 to 3`},
		{name: "first op reads an op", edit: func(j map[string]any) { op(j, 0)["inputs"] = []int{0} },
			want: `op 0 (conv "stem"): inputs[0] = 0: the first op can read only the model input, -1`},
		{name: "empty inputs", edit: func(j map[string]any) { op(j, 5)["inputs"] = []int{} },
			want: `op 5 (maxpool "pool"): field "inputs" is empty (leave it out to read the op before)`},
		{name: "add of one input", edit: func(j map[string]any) { op(j, 3)["inputs"] = []int{1} },
			want: `op 3 (add "sum"): 1 inputs, want 2`},
		{name: "add of three inputs", edit: func(j map[string]any) { op(j, 3)["inputs"] = []int{1, 2, 2} },
			want: `op 3 (add "sum"): 3 inputs, want 2`},
		{name: "concat of the op before only", edit: func(j map[string]any) { delete(op(j, 4), "inputs") },
			want: `op 4 (concat "cat"): 1 inputs, want at least 2`},
		{name: "conv of two inputs", edit: func(j map[string]any) { op(j, 2)["inputs"] = []int{0, 0} },
			want: `op 2 (conv "pw"): 2 inputs, want 1`},
		{name: "add of two shapes", edit: func(j map[string]any) { op(j, 3)["inputs"] = []int{1, 0} },
			want: `op 3 (add "sum"): input 1 has shape [4 6 6], input 0 [4 3 3]: add needs one shape`},
		{name: "concat of two sizes", edit: func(j map[string]any) { op(j, 4)["inputs"] = []int{3, 1, 0} },
			want: `op 4 (concat "cat"): input 2 has shape [4 6 6], input 0 [4 3 3]: concat needs [C, H, W] inputs of one H and W`},
		{name: "concat of a vector", edit: func(j map[string]any) { op(j, 8)["type"] = "concat"; op(j, 8)["inputs"] = []int{7, 7} },
			want: `op 8 (concat "fc"): field "in" does not apply to concat`},
		{name: "unread op", edit: func(j map[string]any) { op(j, 3)["inputs"] = []int{1, 1} },
			want: `op 2 (conv "pw"): no op reads its output`},
		{name: "groups that do not divide", edit: func(j map[string]any) { op(j, 2)["groups"] = 3 },
			want: `op 2 (conv "pw"): groups 3 do not divide the 4 input channels and out 4`},
		{name: "groups 1", edit: func(j map[string]any) { op(j, 2)["groups"] = 1 },
			want: `op 2 (conv "pw"): groups 1: want 0 (one group) or 2 to 65536`},
		{name: "grouped weight of another group count", edit: func(j map[string]any) { op(j, 2)["groups"] = 4 },
			want: `tensor "pw.weight" is I8 [4 2 1 1], want I8 [4 1 1 1]`},
		{name: "depthwise weight as ungrouped", edit: func(j map[string]any) { delete(op(j, 1), "groups") },
			want: `tensor "dw.weight" is U8 [18], want U8 [72]`},
		{name: "groups on a linear", edit: func(j map[string]any) { op(j, 8)["groups"] = 2 },
			want: `op 8 (linear "fc"): field "groups" does not apply to linear`},
		{name: "maxpool padding above half the kernel", edit: func(j map[string]any) { op(j, 5)["padding"] = 2 },
			want: `op 5 (maxpool "pool"): padding 2 is more than half the kernel 3`},
		{name: "global_avgpool with a kernel", edit: func(j map[string]any) { op(j, 6)["kernel"] = 2 },
			want: `op 6 (global_avgpool "gap"): field "kernel" does not apply to global_avgpool`},
		{name: "global_avgpool changes quantization", edit: func(j map[string]any) { op(j, 6)["output"].(map[string]any)["zero_point"] = 18 },
			want: `op 6 (global_avgpool "gap"): output (scale 0.061, zero_point 18, qmin 0, qmax 255) differs from the input's quantization (scale 0.061, zero_point 17`},
		{name: "pool keeps its source's quantization", edit: func(j map[string]any) { op(j, 4)["output"].(map[string]any)["zero_point"] = 18 },
			want: `op 5 (maxpool "pool"): output (scale 0.061, zero_point 17, qmin 0, qmax 255) differs from the input's quantization (scale 0.061, zero_point 18`},
		{name: "add clamp outside", edit: func(j map[string]any) { op(j, 3)["clamp_max"] = 256 },
			want: `op 3 (add "sum"): clamp_min 9, clamp_max 256: want qmin 0 <= clamp_min <= clamp_max <= qmax 255`},
		{name: "add without clamp", edit: func(j map[string]any) { delete(op(j, 3), "clamp_min") },
			want: `op 3 (add "sum"): missing field "clamp_min"`},
		{name: "concat output scale 0", edit: func(j map[string]any) { op(j, 4)["output"].(map[string]any)["scale"] = 0 },
			want: `op 4 (concat "cat"): output: scale 0: want a finite positive number`},
		{name: "add with a tensor", edit: func(map[string]any) {},
			file: func(f *safetensors.File) { f.Tensors["sum.weight"] = safetensors.FromInt8([]int{1}, []int8{1}) },
			want: `unexpected tensor "sum.weight": no op uses it`},
		{name: "per-channel norm of another channel count", edit: func(j map[string]any) {
			j["norm"].(map[string]any)["channel_mean"] = []float32{0.5, 0.5, 0.5}
		}, want: "norm: normalisation has 3 channel means and 2 channel stds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := reparse(t, dagModel(RequantFloat), FormatV3, func(t *testing.T, f *safetensors.File) {
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
