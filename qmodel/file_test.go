package qmodel

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"qat/internal/floats"
	"qat/model"
	"qat/safetensors"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata with the writer's output")

// golden lists the golden files and the models they hold.
var golden = []struct {
	path  string
	model func() *Model
}{
	{"testdata/small.qmodel", func() *Model { return testModel(RequantFloat, 4, 8) }},
	{"testdata/small-fixed.qmodel", func() *Model { return testModel(RequantFixed, 2, 4) }},
	{"testdata/dag.qmodel", func() *Model { return dagModel(RequantFloat) }},
	{"testdata/dynamic.qmodel", dynamicModel},
}

// TestGolden pins the file layout: the writer's output must equal the
// golden files byte for byte, and the golden files must parse to their
// models.
func TestGolden(t *testing.T) {
	for _, g := range golden {
		b := encode(t, g.model())
		if *update {
			if err := os.WriteFile(g.path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(g.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("the writer's output differs from %s: the format changed (if on purpose, bump Format and run go test -update)", g.path)
		}
		m, err := ReadFile(g.path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m, g.model()) {
			t.Errorf("%s does not parse to its model", g.path)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, mode := range []Requant{RequantFloat, RequantFixed} {
		models := map[string]*Model{"dag": dagModel(mode)}
		for _, bits := range [][2]int{{8, 8}, {4, 4}, {2, 2}, {4, 8}, {2, 4}, {8, 2}} {
			models[fmt.Sprintf("w%d-w%d", bits[0], bits[1])] = testModel(mode, bits[0], bits[1])
		}
		for name, m := range models {
			t.Run(string(mode)+"/"+name, func(t *testing.T) {
				b := encode(t, m)
				got, err := Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, m) {
					t.Fatalf("Parse(Write(m)) differs from m:\n got %+v\nwant %+v", got, m)
				}
				if again := encode(t, got); !bytes.Equal(again, b) {
					t.Error("writing the parsed model gives other bytes")
				}
				got, err = Read(bytes.NewReader(b))
				if err != nil || !reflect.DeepEqual(got, m) {
					t.Errorf("Read: %v, equal %v", err, reflect.DeepEqual(got, m))
				}
				path := filepath.Join(t.TempDir(), "m.qmodel")
				if err := WriteFile(path, m); err != nil {
					t.Fatal(err)
				}
				got, err = ReadFile(path)
				if err != nil || !reflect.DeepEqual(got, m) {
					t.Errorf("ReadFile(WriteFile): %v, equal %v", err, reflect.DeepEqual(got, m))
				}
			})
		}
	}
}

// TestParseCopies checks that the parsed model does not alias the input.
func TestParseCopies(t *testing.T) {
	m0 := testModel(RequantFloat, 8, 8)
	b := encode(t, m0)
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xAA
	}
	if !reflect.DeepEqual(m, m0) {
		t.Error("overwriting the input buffer changed the parsed model")
	}
}

// TestFloat32JSON checks that float32 values survive the JSON description
// bit for bit: encoding/json writes the shortest decimal that reads back
// as the same float32.
func TestFloat32JSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []float32{0, float32(math.Copysign(0, -1)), 1, 0.1, 1.0 / 3, math.MaxFloat32, -math.MaxFloat32,
		math.SmallestNonzeroFloat32, 1.1754944e-38, math.Nextafter32(1, 2), math.Nextafter32(0.1, 0), 16777217}
	for range 20000 {
		x := math.Float32frombits(r.Uint32())
		if floats.Finite(x) {
			values = append(values, x)
		}
	}
	for _, x := range values {
		js, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		var y float32
		if err := json.Unmarshal(js, &y); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		if math.Float32bits(x) != math.Float32bits(y) {
			t.Fatalf("%v (%#08x) encodes as %s, which decodes to %v (%#08x)", x, math.Float32bits(x), js, y, math.Float32bits(y))
		}
	}
	// And through a whole file, in every float32 field of the description.
	m := testModel(RequantFloat, 8, 8)
	m.Norm = model.Norm{Mean: math.Nextafter32(0.1307, 1), Std: 1.0 / 3}
	m.InputQuant.Scale = 1.1754944e-38 // the smallest normal: 1/scale is finite
	m.Ops[5].Output.Scale = math.Nextafter32(0.171, 0)
	got, err := Parse(encode(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("float32 fields changed through the file: got %+v %+v, want %+v %+v", got.Norm, got.InputQuant, m.Norm, m.InputQuant)
	}
}

func TestPack(t *testing.T) {
	// The worked example of docs/int8-model.md.
	if got, want := PackWeights([]int8{-1, 3, -8, 7}, 4), []byte{0x3F, 0x78}; !bytes.Equal(got, want) {
		t.Errorf("PackWeights 4-bit [-1 3 -8 7] = % x, want % x", got, want)
	}
	// -2 = 0b10, -1 = 0b11, 0 = 0b00, 1 = 0b01; the fifth code starts a byte.
	if got, want := PackWeights([]int8{-2, -1, 0, 1, 1}, 2), []byte{0x4E, 0x01}; !bytes.Equal(got, want) {
		t.Errorf("PackWeights 2-bit [-2 -1 0 1 1] = % x, want % x", got, want)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, bits := range []int{4, 2} {
		for n := 1; n <= 19; n++ {
			c := make([]int8, n)
			for i := range c {
				c[i] = int8(r.IntN(1<<bits) - 1<<(bits-1))
			}
			b := PackWeights(c, bits)
			if len(b) != packedLen(n, bits) {
				t.Fatalf("%d-bit, %d codes: %d bytes, want %d", bits, n, len(b), packedLen(n, bits))
			}
			got, err := unpack(b, bits, n)
			if err != nil || !reflect.DeepEqual(got, c) {
				t.Fatalf("%d-bit: unpack(PackWeights(%v)) = %v, %v", bits, c, got, err)
			}
			if n%(8/bits) != 0 {
				b[len(b)-1] |= 0x80
				if _, err := unpack(b, bits, n); err == nil {
					t.Fatalf("%d-bit, %d codes: nonzero unused bits accepted", bits, n)
				}
			}
		}
	}
}

func TestIsModelFile(t *testing.T) {
	f, err := testModel(RequantFixed, 8, 8).File()
	if err != nil {
		t.Fatal(err)
	}
	if !IsModelFile(f) {
		t.Error("a model's file is not a model file")
	}
	f.Metadata[MetaFormat] = "qat-int8/7"
	if !IsModelFile(f) {
		t.Error("a later version is not a model file")
	}
	checkpoint := &safetensors.File{Metadata: map[string]string{MetaFormat: "qat-checkpoint/1"}}
	if IsModelFile(checkpoint) || IsModelFile(&safetensors.File{}) || IsModelFile(nil) {
		t.Error("a checkpoint, an empty file or nil is a model file")
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadFile(filepath.Join(dir, "none.qmodel"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrFormat) {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(dir, "bad.qmodel")
	if err := os.WriteFile(path, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(path)
	if !errors.Is(err, ErrFormat) || !errors.Is(err, safetensors.ErrFormat) || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt file: %v", err)
	}
}

func TestWriteInvalid(t *testing.T) {
	m := testModel(RequantFloat, 8, 8)
	m.Ops[0].Kernel = 0
	var b bytes.Buffer
	if err := Write(&b, m); err == nil || b.Len() > 0 {
		t.Errorf("Write of an invalid model: %v, %d bytes written", err, b.Len())
	}
	path := filepath.Join(t.TempDir(), "m.qmodel")
	if err := WriteFile(path, m); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("WriteFile of an invalid model: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile of an invalid model left a file: %v", err)
	}
}

// editJSON rewrites the model description of f through edit.
func editJSON(t *testing.T, f *safetensors.File, edit func(j map[string]any)) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(f.Metadata[MetaModel]))
	dec.UseNumber()
	var j map[string]any
	if err := dec.Decode(&j); err != nil {
		t.Fatal(err)
	}
	edit(j)
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata[MetaModel] = string(b)
}

// op returns the JSON object of op i.
func op(j map[string]any, i int) map[string]any { return j["ops"].([]any)[i].(map[string]any) }

// setFloat sets element i of an F32 tensor.
func setFloat(f *safetensors.File, name string, i int, x float32) {
	t := f.Tensors[name]
	d := append([]byte(nil), t.Data...)
	binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(x))
	t.Data = d
	f.Tensors[name] = t
}

func TestCorrupt(t *testing.T) {
	valid := encode(t, testModel(RequantFloat, 4, 8))
	headerEnd := 8 + int(binary.LittleEndian.Uint64(valid))
	cases := []struct {
		name  string
		mode  Requant             // the model to start from (default float)
		bytes func([]byte) []byte // edits the file's bytes
		// file edits the parsed file, which is then written with its
		// checksum recomputed (a well-formed file from a faulty writer),
		// unless keepSum.
		file    func(*testing.T, *safetensors.File)
		keepSum bool
		want    string
	}{
		{name: "flipped weight bit", bytes: func(b []byte) []byte { b[len(b)-1] ^= 0x10; return b }, want: "checksum mismatch"},
		{name: "flipped scale digit", bytes: func(b []byte) []byte {
			i := bytes.Index(b, []byte(`\"scale\":0.0`))
			b[i+len(`\"scale\":0.0`)] ^= 0x01
			return b
		}, want: "checksum mismatch"},
		{name: "no checksum", file: func(t *testing.T, f *safetensors.File) { delete(f.Metadata, MetaChecksum) }, keepSum: true,
			want: `no qat.crc32c metadata (format "qat-int8/2" has a checksum)`},
		{name: "edited without checksum", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { j["name"] = "other" })
		}, keepSum: true, want: "checksum mismatch"},
		{name: "empty", bytes: func(b []byte) []byte { return nil }, want: "shorter than the 8-byte header size"},
		{name: "truncated 5", bytes: func(b []byte) []byte { return b[:5] }, want: "shorter than the 8-byte header size"},
		{name: "truncated 8", bytes: func(b []byte) []byte { return b[:8] }, want: "exceeds the 0 bytes that follow"},
		{name: "truncated in header", bytes: func(b []byte) []byte { return b[:100] }, want: "exceeds the 92 bytes that follow"},
		{name: "truncated in data", bytes: func(b []byte) []byte { return b[:headerEnd+10] }, want: "end beyond the 10-byte data buffer"},
		{name: "truncated last byte", bytes: func(b []byte) []byte { return b[:len(b)-1] }, want: "end beyond"},
		{name: "trailing byte", bytes: func(b []byte) []byte { return append(b, 0) }, want: "1 trailing bytes"},
		{name: "flipped header size", bytes: func(b []byte) []byte { b[1] ^= 0x40; return b }, want: "malformed safetensors file: header size"},
		{name: "flipped header brace", bytes: func(b []byte) []byte { b[8] ^= 0x20; return b }, want: "does not start with '{'"},
		{name: "flipped dtype", bytes: func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"I32"`))
			b[i+3] ^= 0x01
			return b
		}, want: `unknown dtype "I33"`},
		{name: "flipped quote", bytes: func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"c1.bias"`))
			b[i] = ' '
			return b
		}, want: "header is not valid JSON"},
		{name: "flipped metadata JSON", bytes: func(b []byte) []byte {
			i := bytes.Index(b, []byte(`\"classes\":3`))
			b[i+11] = 'x'
			return b
		}, want: "checksum mismatch"},

		{name: "no format", file: func(t *testing.T, f *safetensors.File) { delete(f.Metadata, MetaFormat) }, want: "no qat.format metadata: not a qat int8 model"},
		{name: "newer format", file: func(t *testing.T, f *safetensors.File) { f.Metadata[MetaFormat] = "qat-int8/5" },
			want: `format "qat-int8/5" is not supported (this reader reads "qat-int8/4", "qat-int8/3", "qat-int8/2" and "qat-int8/1")`},
		{name: "checkpoint format", file: func(t *testing.T, f *safetensors.File) { f.Metadata[MetaFormat] = "qat-checkpoint/1" },
			want: `format "qat-checkpoint/1" is not a qat int8 model`},
		{name: "no description", file: func(t *testing.T, f *safetensors.File) { delete(f.Metadata, MetaModel) }, want: "no qat.model metadata"},
		{name: "truncated JSON", file: func(t *testing.T, f *safetensors.File) { f.Metadata[MetaModel] = `{"name":"x",` }, want: "not valid JSON: unexpected EOF"},
		{name: "JSON array", file: func(t *testing.T, f *safetensors.File) { f.Metadata[MetaModel] = `[]` }, want: "metadata qat.model: not a JSON object"},
		{name: "JSON trailing data", file: func(t *testing.T, f *safetensors.File) { f.Metadata[MetaModel] += `{}` }, want: "data after the JSON object"},
		{name: "duplicate field", file: func(t *testing.T, f *safetensors.File) {
			f.Metadata[MetaModel] = strings.Replace(f.Metadata[MetaModel], `"classes":3`, `"classes":3,"classes":3`, 1)
		}, want: `duplicate field "classes"`},
		{name: "unknown field", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 0)["kernal"] = 3 })
		}, want: `op 0 (conv "c1"): unknown field "kernal"`},
		{name: "field in another case", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { j["Name"] = j["name"]; delete(j, "name") })
		}, want: `unknown field "Name"`},
		{name: "bad field type", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 0)["kernel"] = "3" })
		}, want: `op 0 (conv "c1"): field "kernel": json: cannot unmarshal string`},
		{name: "fractional field", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 0)["stride"] = 1.5 })
		}, want: `op 0 (conv "c1"): field "stride": json: cannot unmarshal number 1.5`},
		{name: "null field", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { j["classes"] = nil })
		}, want: `field "classes" is null`},
		{name: "missing field", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { delete(j, "norm") })
		}, want: `missing field "norm"`},
		{name: "missing op field", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { delete(op(j, 0), "padding") })
		}, want: `op 0 (conv "c1"): missing field "padding"`},
		{name: "missing quant field", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { delete(op(j, 1)["output"].(map[string]any), "qmax") })
		}, want: `op 1 (relu6 "r6"): output: missing field "qmax"`},
		{name: "field that does not apply", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 2)["padding"] = 0 })
		}, want: `op 2 (maxpool "pool1"): field "padding" does not apply to maxpool`},
		{name: "unknown op type", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 4)["type"] = "reshape" })
		}, want: `op 4 (reshape "flat"): unknown type "reshape"`},
		{name: "input of two dimensions", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { j["input"] = []int{6, 6} })
		}, want: "input [6 6]: want [C, H, W]"},
		{name: "unknown requant", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { j["requant"] = "double" })
		}, want: `requant "double": want "float" or "fixed"`},

		{name: "missing tensor", file: func(t *testing.T, f *safetensors.File) { delete(f.Tensors, "c1.bias") },
			want: `missing tensor "c1.bias" of op 0 (conv "c1")`},
		{name: "extra tensor", file: func(t *testing.T, f *safetensors.File) {
			f.Tensors["pool1.weight"] = safetensors.FromInt8([]int{1}, []int8{1})
		}, want: `unexpected tensor "pool1.weight": no op uses it`},
		{name: "fixed tensors in a float model", file: func(t *testing.T, f *safetensors.File) {
			f.Tensors["c1.fixed_multiplier"] = safetensors.FromInt32([]int{3}, []int32{1 << 30, 1 << 30, 1 << 30})
			f.Tensors["c1.shift"] = safetensors.FromInt32([]int{3}, []int32{1, 1, 1})
		}, want: `unexpected tensors "c1.fixed_multiplier", "c1.shift": no op uses them`},
		{name: "float multiplier in a fixed model", mode: RequantFixed, file: func(t *testing.T, f *safetensors.File) {
			f.Tensors["c1.multiplier"] = safetensors.FromFloat32([]int{3}, []float32{0.1, 0.1, 0.1})
		}, want: `unexpected tensor "c1.multiplier"`},
		{name: "wrong dtype", file: func(t *testing.T, f *safetensors.File) {
			b := f.Tensors["c1.bias"]
			b.DType = safetensors.F32
			f.Tensors["c1.bias"] = b
		}, want: `tensor "c1.bias" is F32 [3], want I32 [3]`},
		{name: "wrong shape", file: func(t *testing.T, f *safetensors.File) {
			s := f.Tensors["c1.weight_scale"]
			s.Shape = []int{1, 3}
			f.Tensors["c1.weight_scale"] = s
		}, want: `tensor "c1.weight_scale" is F32 [1 3], want F32 [3]`},
		{name: "flat 8-bit weight", file: func(t *testing.T, f *safetensors.File) {
			w := f.Tensors["head.fc.weight"]
			w.Shape = []int{36}
			f.Tensors["head.fc.weight"] = w
		}, want: `tensor "head.fc.weight" is I8 [36], want I8 [3 12]`},
		{name: "packed weight as I8", file: func(t *testing.T, f *safetensors.File) {
			w := f.Tensors["c1.weight"]
			w.DType = safetensors.I8
			f.Tensors["c1.weight"] = w
		}, want: `tensor "c1.weight" is I8 [14], want U8 [14]`},
		{name: "weight bits differ from the tensor", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 0)["weight_bits"] = 2 })
		}, want: `tensor "c1.weight" is U8 [14], want U8 [7]`},
		{name: "nonzero padding bits", file: func(t *testing.T, f *safetensors.File) {
			w := f.Tensors["c1.weight"]
			d := append([]byte(nil), w.Data...)
			d[13] |= 0x10
			w.Data = d
			f.Tensors["c1.weight"] = w
		}, want: `tensor "c1.weight": unused high bits of the last byte (0x`},
		{name: "NaN weight scale", file: func(t *testing.T, f *safetensors.File) {
			setFloat(f, "c1.weight_scale", 1, float32(math.NaN()))
		}, want: `op 0 (conv "c1"): weight_scale[1] = NaN: want a finite positive number`},
		{name: "infinite multiplier", file: func(t *testing.T, f *safetensors.File) {
			setFloat(f, "head.fc.multiplier", 2, float32(math.Inf(1)))
		}, want: `op 5 (linear "head.fc"): multiplier[2] = +Inf`},
		{name: "zero output scale", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 5)["output"].(map[string]any)["scale"] = 0 })
		}, want: `op 5 (linear "head.fc"): output: scale 0: want a finite positive number`},
		{name: "zero point outside the range", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { j["input_quant"].(map[string]any)["zero_point"] = 300 })
		}, want: "input_quant: zero_point 300: outside [qmin, qmax] = [0, 255]"},
		{name: "clamp outside the range", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 0)["clamp_max"] = 256 })
		}, want: `op 0 (conv "c1"): clamp_min 7, clamp_max 256: want qmin 0 <= clamp_min <= clamp_max <= qmax 255`},
		{name: "linear in mismatch", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 5)["in"] = 11 })
		}, want: `op 5 (linear "head.fc"): in 11, but the input has 12 features`},
		{name: "duplicate op names", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 2)["name"] = "c1" })
		}, want: `op 2 (maxpool "c1"): name "c1" is also the name of op 0`},
		{name: "classes mismatch", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { j["classes"] = 4 })
		}, want: "the last op gives shape [3] per sample, want [4] (classes)"},
		{name: "pool changes quantization", file: func(t *testing.T, f *safetensors.File) {
			editJSON(t, f, func(j map[string]any) { op(j, 3)["output"].(map[string]any)["zero_point"] = 8 })
		}, want: `op 3 (avgpool "pool2"): output (scale 0.0235, zero_point 8, qmin 0, qmax 255) differs from the input's quantization (scale 0.0235, zero_point 7`},
		{name: "bias overflow", file: func(t *testing.T, f *safetensors.File) {
			f.Tensors["c1.bias"] = safetensors.FromInt32([]int{3}, []int32{0, math.MaxInt32, 0})
		}, want: `op 0 (conv "c1"): bias[1] = 2147483647: 255*sum|weight| + |bias|`},
		{name: "fixed multiplier below 2^30", mode: RequantFixed, file: func(t *testing.T, f *safetensors.File) {
			f.Tensors["c1.fixed_multiplier"] = safetensors.FromInt32([]int{3}, []int32{1 << 30, 5, 1 << 30})
		}, want: `op 0 (conv "c1"): fixed_multiplier[1] = 5: outside [1073741824, 2147483647]`},
		{name: "shift out of range", mode: RequantFixed, file: func(t *testing.T, f *safetensors.File) {
			f.Tensors["head.fc.shift"] = safetensors.FromInt32([]int{3}, []int32{0, 63, 0})
		}, want: `op 5 (linear "head.fc"): shift[1] = 63: outside [-31, 62]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mode := c.mode
			if mode == "" {
				mode = RequantFloat
			}
			b := encode(t, testModel(mode, 4, 8))
			if c.bytes != nil {
				b = c.bytes(b)
			}
			if c.file != nil {
				f, err := safetensors.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				c.file(t, f)
				if !c.keepSum {
					f.Metadata[MetaChecksum] = Checksum(f)
				}
				var buf bytes.Buffer
				if err := f.Write(&buf); err != nil {
					t.Fatal(err)
				}
				b = buf.Bytes()
			}
			_, err := Parse(b)
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

// A version-1 file (no checksum; testdata/small-v1.qmodel is the golden
// small.qmodel as the version-1 writer wrote it) still reads, to the same
// model, with a warning that names the format; written again it becomes
// version 2.
func TestReadV1(t *testing.T) {
	m := testModel(RequantFloat, 4, 8)
	got, err := ReadFile("testdata/small-v1.qmodel")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], `"qat-int8/1" has no checksum`) {
		t.Errorf("warnings %q, want one about the missing checksum", got.Warnings)
	}
	got.Warnings = nil
	if !reflect.DeepEqual(got, m) {
		t.Error("the version-1 file does not parse to its model")
	}
	again, err := Parse(encode(t, got))
	if err != nil || again.Warnings != nil {
		t.Errorf("rewritten: %v, warnings %q", err, again.Warnings)
	}
}

// Every single-bit flip anywhere in a model file (each byte, low bit and
// high bit) is rejected, or else reads as the very same model: no flip
// gives other numbers silently.
func TestEveryBitFlip(t *testing.T) {
	for _, g := range golden {
		want := g.model()
		b := encode(t, want)
		same := 0
		for i := range b {
			for _, bit := range []byte{0x01, 0x80} {
				c := bytes.Clone(b)
				c[i] ^= bit
				m, err := Parse(c)
				if err != nil {
					continue
				}
				if !reflect.DeepEqual(m, want) {
					t.Fatalf("%s: byte %d ^ %#x reads as another model", g.path, i, bit)
				}
				same++
			}
		}
		t.Logf("%s: %d flips, %d rejected, %d read as the same model", g.path, 2*len(b), 2*len(b)-same, same)
	}
}
