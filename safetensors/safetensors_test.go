package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.safetensors with the Go writer's output")

const goldenPath = "testdata/golden.safetensors"

// le64 is the 8-byte header size field.
func le64(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }

// raw builds a file from a header given verbatim (no padding) and a buffer.
func raw(header string, data ...byte) []byte {
	b := append(le64(uint64(len(header))), header...)
	return append(b, data...)
}

// goldenFile is the content of testdata/golden.safetensors: every dtype qat
// uses, a 0-d tensor, a tensor with a zero dimension, and metadata.
func goldenFile() *File {
	return &File{
		Metadata: map[string]string{"format": "pt"},
		Tensors: map[string]Tensor{
			"weight": FromFloat32([]int{2, 2}, []float32{1, -2, 0.5, 3}),
			"bias":   FromInt32([]int{2}, []int32{-2, 300}),
			"codes":  FromInt8([]int{3}, []int8{-128, 0, 127}),
			"mask":   FromUint8([]int{}, []uint8{255}),
			"empty":  FromFloat32([]int{2, 0}, nil),
		},
	}
}

// goldenBytes is goldenFile laid out by hand as the reference writer
// (huggingface/safetensors, safetensors/src/tensor.rs: prepare) lays it out:
// serde_json compact JSON, "__metadata__" first, tensors by descending
// Dtype enum position (F32 > I32 > I8 > U8) then name, each entry's fields
// dtype, shape, data_offsets, header padded with spaces to a multiple of 8.
// The data bytes are the IEEE 754 and two's complement little-endian
// encodings of the values.
func goldenBytes() []byte {
	header := `{"__metadata__":{"format":"pt"},` +
		`"empty":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]},` +
		`"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},` +
		`"bias":{"dtype":"I32","shape":[2],"data_offsets":[16,24]},` +
		`"codes":{"dtype":"I8","shape":[3],"data_offsets":[24,27]},` +
		`"mask":{"dtype":"U8","shape":[],"data_offsets":[27,28]}}`
	// len(header) is 324; 4 spaces pad it to 328 = 41*8.
	header += "    "
	data := []byte{
		0x00, 0x00, 0x80, 0x3f, // 1.0
		0x00, 0x00, 0x00, 0xc0, // -2.0
		0x00, 0x00, 0x00, 0x3f, // 0.5
		0x00, 0x00, 0x40, 0x40, // 3.0
		0xfe, 0xff, 0xff, 0xff, // int32 -2
		0x2c, 0x01, 0x00, 0x00, // int32 300
		0x80, 0x00, 0x7f, // int8 -128, 0, 127
		0xff, // uint8 255
	}
	return raw(header, data...)
}

func encode(t testing.TB, f *File) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

// equal reports whether two files hold the same metadata and tensors
// (nil and empty slices and maps are equal).
func equal(a, b *File) bool {
	if len(a.Metadata) != len(b.Metadata) || len(a.Tensors) != len(b.Tensors) {
		return false
	}
	for k, v := range a.Metadata {
		if w, ok := b.Metadata[k]; !ok || w != v {
			return false
		}
	}
	for name, x := range a.Tensors {
		y, ok := b.Tensors[name]
		if !ok || x.DType != y.DType || !slices.Equal(x.Shape, y.Shape) || !bytes.Equal(x.Data, y.Data) {
			return false
		}
	}
	return true
}

func TestGoldenBytes(t *testing.T) {
	want := goldenBytes()
	if len(want[8:len(want)-28])%8 != 0 {
		t.Fatalf("hand-built header is %d bytes, not a multiple of 8", len(want[8:len(want)-28]))
	}
	if got := encode(t, goldenFile()); !bytes.Equal(got, want) {
		t.Errorf("Write:\n got %q\nwant %q", got, want)
	}
	if *update {
		if err := goldenFile().WriteFile(goldenPath); err != nil {
			t.Fatal(err)
		}
	}
	file, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, want) {
		t.Errorf("%s differs from the hand-built bytes (run go test -update after checking the writer)", goldenPath)
	}
	f, err := ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(f, goldenFile()) {
		t.Errorf("ReadFile(%s) = %+v, want %+v", goldenPath, f, goldenFile())
	}
}

// TestReferenceBytes checks the writer and reader against byte vectors of
// the reference implementation's own tests (huggingface/safetensors,
// safetensors/src/tensor.rs: test_serialization_forced_alignement and
// test_empty), spelt here as text.
func TestReferenceBytes(t *testing.T) {
	f32 := func(v ...float32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		return b
	}
	tests := []struct {
		name string
		file *File
		want []byte
	}{{
		name: "attn0",
		file: &File{Tensors: map[string]Tensor{"attn0": FromFloat32([]int{1, 1, 2, 3}, []float32{0, 1, 2, 3, 4, 5})}},
		want: raw(`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}`+strings.Repeat(" ", 7), f32(0, 1, 2, 3, 4, 5)...),
	}, {
		name: "empty",
		file: &File{},
		want: raw(`{}` + strings.Repeat(" ", 6)),
	}, {
		name: "metadata only",
		file: &File{Metadata: map[string]string{"framework": "pt"}},
		want: raw(`{"__metadata__":{"framework":"pt"}}` + strings.Repeat(" ", 5)),
	}}
	for _, tt := range tests {
		if got := encode(t, tt.file); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: Write:\n got %q\nwant %q", tt.name, got, tt.want)
		}
		f, err := Parse(tt.want)
		if err != nil {
			t.Errorf("%s: Parse: %v", tt.name, err)
		} else if !equal(f, tt.file) {
			t.Errorf("%s: Parse = %+v, want %+v", tt.name, f, tt.file)
		}
	}
	// test_serialization: a 64-byte header, aligned without padding.
	ref := raw(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`, f32(0, 1, 2, 3, 4, 5)...)
	if got := encode(t, &File{Tensors: map[string]Tensor{"attn.0": FromFloat32([]int{1, 2, 3}, []float32{0, 1, 2, 3, 4, 5})}}); !bytes.Equal(got, ref) {
		t.Errorf("attn.0: Write:\n got %q\nwant %q", got, ref)
	}
	if _, err := Parse(ref); err != nil {
		t.Errorf("attn.0: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	bf16 := []byte{0x80, 0x3f, 0x00, 0xc0} // bfloat16 1, -2
	f := &File{
		Metadata: map[string]string{
			"arch":        "resnet8",
			"quant":       `{"bits":8,"symmetric":true}`,
			"step":        "1200",
			"odd \"key\"": "line\nbreak\ttab\x01 \\ é ∑ 😀 </script>",
			"":            "",
		},
		Tensors: map[string]Tensor{
			"conv1.weight":  FromFloat32([]int{2, 1, 3, 3}, make([]float32, 18)),
			"scalar":        FromFloat32([]int{}, []float32{float32(math.NaN())}),
			"neg_zero":      FromFloat32([]int{2}, []float32{float32(math.Copysign(0, -1)), float32(math.Inf(-1))}),
			"codes":         FromInt8([]int{5}, []int8{-128, -1, 0, 1, 127}),
			"u":             FromUint8([]int{1, 3}, []uint8{0, 128, 255}),
			"acc":           FromInt32([]int{3}, []int32{math.MinInt32, 0, math.MaxInt32}),
			"empty":         FromInt32([]int{0}, nil),
			"empty2":        FromInt8([]int{3, 0, 2}, nil),
			"f64":           {DType: F64, Shape: []int{1}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Pi))},
			"bf16":          {DType: BF16, Shape: []int{2}, Data: bf16},
			"flags":         {DType: Bool, Shape: []int{2}, Data: []byte{0, 1}},
			"i64":           {DType: I64, Shape: []int{}, Data: make([]byte, 8)},
			"name/with.💡 ∑": FromUint8([]int{1}, []uint8{7}),
		},
	}
	b := encode(t, f)
	if b2 := encode(t, f); !bytes.Equal(b, b2) {
		t.Fatal("writing the same File twice gave different bytes")
	}
	n := binary.LittleEndian.Uint64(b)
	if (8+n)%8 != 0 {
		t.Errorf("data buffer starts at %d, not 8-byte aligned", 8+n)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(f, g) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", g, f)
	}
	// Every tensor's data is aligned to its element size within the file.
	for name, tt := range g.Tensors {
		if len(tt.Data) == 0 {
			continue
		}
		off := -1 // index of Data in b: Parse aliases its input
		for i := range b {
			if &b[i] == &tt.Data[0] {
				off = i
				break
			}
		}
		if off < 0 {
			t.Fatalf("%s: Data does not alias the parsed buffer", name)
		}
		if off%tt.DType.Size() != 0 {
			t.Errorf("%s: %s data at file offset %d, not aligned", name, tt.DType, off)
		}
	}
	// Parse aliases its input, with capacity clipped to the tensor.
	c := g.Tensors["codes"]
	if cap(c.Data) != len(c.Data) {
		t.Errorf("codes: cap %d, want %d", cap(c.Data), len(c.Data))
	}
	// A nil map and an empty one write the same bytes.
	if !bytes.Equal(encode(t, &File{}), encode(t, &File{Metadata: map[string]string{}, Tensors: map[string]Tensor{}})) {
		t.Error("nil and empty maps write different bytes")
	}
	// Read agrees with Parse.
	h, err := Read(bytes.NewReader(b))
	if err != nil || !equal(h, f) {
		t.Errorf("Read: %v", err)
	}
}

func TestGetters(t *testing.T) {
	nan := math.Float32frombits(0x7fc00123) // a NaN with a payload
	fv := []float32{nan, float32(math.Copysign(0, -1)), float32(math.Inf(1)), -1.5}
	ft := FromFloat32([]int{2, 2}, fv)
	got, err := ft.Float32()
	if err != nil {
		t.Fatal(err)
	}
	for i := range fv {
		if math.Float32bits(got[i]) != math.Float32bits(fv[i]) {
			t.Errorf("Float32()[%d] = %#x, want %#x", i, math.Float32bits(got[i]), math.Float32bits(fv[i]))
		}
	}
	got[0] = 7
	if again, _ := ft.Float32(); again[0] == 7 {
		t.Error("Float32 returned the tensor's storage, want a copy")
	}
	if i8, err := FromInt8([]int{3}, []int8{-128, 0, 127}).Int8(); err != nil || !slices.Equal(i8, []int8{-128, 0, 127}) {
		t.Errorf("Int8 = %v, %v", i8, err)
	}
	if u8, err := FromUint8([]int{3}, []uint8{0, 1, 255}).Uint8(); err != nil || !slices.Equal(u8, []uint8{0, 1, 255}) {
		t.Errorf("Uint8 = %v, %v", u8, err)
	}
	i32 := FromInt32([]int{2}, []int32{-2, 300})
	// Two's complement little endian, by hand.
	if want := []byte{0xfe, 0xff, 0xff, 0xff, 0x2c, 0x01, 0, 0}; !bytes.Equal(i32.Data, want) {
		t.Errorf("FromInt32 data = % x, want % x", i32.Data, want)
	}
	if v, err := i32.Int32(); err != nil || !slices.Equal(v, []int32{-2, 300}) {
		t.Errorf("Int32 = %v, %v", v, err)
	}
	i64 := FromInt64([]int{}, []int64{-2})
	if want := []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}; !bytes.Equal(i64.Data, want) {
		t.Errorf("FromInt64 data = % x, want % x", i64.Data, want)
	}
	if v, err := i64.Int64(); err != nil || !slices.Equal(v, []int64{-2}) {
		t.Errorf("Int64 = %v, %v", v, err)
	}
	if _, err := i64.Int32(); err == nil {
		t.Error("Int32 of an I64 tensor succeeded")
	}
	// Constructors copy the shape.
	shape := []int{2}
	st := FromInt32(shape, []int32{1, 2})
	shape[0] = 9
	if st.Shape[0] != 2 {
		t.Error("FromInt32 kept the caller's shape slice")
	}
	if v, err := FromFloat32([]int{}, []float32{4}).Float32(); err != nil || !slices.Equal(v, []float32{4}) {
		t.Errorf("0-d Float32 = %v, %v", v, err)
	}

	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"wrong dtype", func() error { _, err := i32.Float32(); return err }(), "tensor is I32, want F32"},
		{"wrong dtype int8", func() error { _, err := ft.Int8(); return err }(), "tensor is F32, want I8"},
		{"short data", func() error {
			_, err := Tensor{DType: U8, Shape: []int{4}, Data: []byte{1}}.Uint8()
			return err
		}(), "1 data bytes, want 4"},
		{"bad shape", func() error {
			_, err := Tensor{DType: I32, Shape: []int{-1}, Data: nil}.Int32()
			return err
		}(), "negative"},
	} {
		if !errors.Is(tt.err, ErrInvalid) || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrInvalid mentioning %q", tt.name, tt.err, tt.want)
		}
	}

	for name, f := range map[string]func(){
		"count":    func() { FromFloat32([]int{2, 2}, make([]float32, 3)) },
		"negative": func() { FromInt8([]int{-1}, nil) },
		"scalar":   func() { FromUint8([]int{}, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestWriteErrors(t *testing.T) {
	ok := FromFloat32([]int{1}, []float32{1})
	tests := []struct {
		name string
		file *File
		want string
	}{
		{"empty name", &File{Tensors: map[string]Tensor{"": ok}}, "empty tensor name"},
		{"reserved name", &File{Tensors: map[string]Tensor{"__metadata__": ok}}, "reserved for metadata"},
		{"bad utf8 name", &File{Tensors: map[string]Tensor{"a\xff": ok}}, "not valid UTF-8"},
		{"bad utf8 metadata", &File{Metadata: map[string]string{"k": "\xfe"}}, "not valid UTF-8"},
		{"bad utf8 metadata key", &File{Metadata: map[string]string{"\xfe": ""}}, "not valid UTF-8"},
		{"short data", &File{Tensors: map[string]Tensor{"w": {DType: F32, Shape: []int{2}, Data: make([]byte, 4)}}}, "4 data bytes, want 8"},
		{"long data", &File{Tensors: map[string]Tensor{"w": {DType: I8, Shape: []int{}, Data: make([]byte, 2)}}}, "2 data bytes, want 1"},
		{"unknown dtype", &File{Tensors: map[string]Tensor{"w": {DType: "F4", Shape: []int{2}, Data: make([]byte, 1)}}}, `unknown dtype "F4"`},
		{"negative dim", &File{Tensors: map[string]Tensor{"w": {DType: U8, Shape: []int{-1}}}}, "negative"},
		{"overflow", &File{Tensors: map[string]Tensor{"w": {DType: U8, Shape: []int{math.MaxInt, 2}}}}, "overflows"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		err := tt.file.Write(&buf)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrInvalid mentioning %q", tt.name, err, tt.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes before failing", tt.name, buf.Len())
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteIOError(t *testing.T) {
	err := goldenFile().Write(failWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Write to a failing writer: %v", err)
	}
}

// corrupt lists malformed files and a phrase each error must contain.
var corrupt = []struct {
	name string
	file []byte
	want string
}{
	{"empty file", nil, "shorter than the 8-byte header size"},
	{"7 bytes", []byte{2, 0, 0, 0, 0, 0, 0}, "shorter than the 8-byte header size"},
	{"header over limit", append(le64(MaxHeaderSize+1), "{}"...), "exceeds the limit"},
	{"header size 2^64-1", append(le64(math.MaxUint64), "{}"...), "exceeds the limit"},
	{"header beyond file", append(le64(100), "{}"...), "exceeds the 2 bytes that follow"},
	{"zero header", le64(0), "does not start with '{'"},
	{"not utf8", raw("{\"\xff\":{}}"), "not valid UTF-8"},
	{"array header", raw(`[]`), "does not start with '{'"},
	{"leading space", raw(` {}`), "does not start with '{'"},
	{"invalid json", raw(`{"a":`), "not valid JSON"},
	{"invalid json 2", raw(`{"a" 1}`), "not valid JSON"},
	{"unterminated", raw(`{`), "not valid JSON"},
	{"two objects", raw(`{} {}`), "data after its JSON object"},
	{"junk after", raw(`{}x`), "data after its JSON object"},
	{"entry not object", raw(`{"a":1}`), `tensor "a": got the number 1, want a JSON object`},
	{"entry null", raw(`{"a":null}`), "got null, want a JSON object"},
	{"missing dtype", raw(`{"a":{"shape":[],"data_offsets":[0,0]}}`), `missing field "dtype"`},
	{"missing shape", raw(`{"a":{"dtype":"U8","data_offsets":[0,1]}}`, 0), `missing field "shape"`},
	{"missing offsets", raw(`{"a":{"dtype":"U8","shape":[]}}`, 0), `missing field "data_offsets"`},
	{"unknown field", raw(`{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1],"x":1}}`, 0), `unknown field "x"`},
	{"duplicate field", raw(`{"a":{"dtype":"U8","dtype":"U8","shape":[],"data_offsets":[0,1]}}`, 0), `duplicate key "dtype"`},
	{"duplicate shape", raw(`{"a":{"dtype":"U8","shape":[],"shape":[],"data_offsets":[0,1]}}`, 0), `duplicate key "shape"`},
	{"duplicate offsets", raw(`{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1],"data_offsets":[0,1]}}`, 0), `duplicate key "data_offsets"`},
	{"unknown dtype", raw(`{"a":{"dtype":"F4","shape":[],"data_offsets":[0,1]}}`, 0), `unknown dtype "F4"`},
	{"lowercase dtype", raw(`{"a":{"dtype":"f32","shape":[],"data_offsets":[0,4]}}`, 0, 0, 0, 0), `unknown dtype "f32"`},
	{"dtype not string", raw(`{"a":{"dtype":4,"shape":[],"data_offsets":[0,4]}}`, 0, 0, 0, 0), "dtype: got the number 4, want a string"},
	{"shape not array", raw(`{"a":{"dtype":"U8","shape":1,"data_offsets":[0,1]}}`, 0), "shape: got the number 1, want an array"},
	{"shape of strings", raw(`{"a":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}}`, 0), "shape: got a string, want an integer"},
	{"negative dim", raw(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`), "dimension -1 is negative"},
	{"fractional dim", raw(`{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, 0), "dimension 1.5 is not an integer"},
	{"exponent dim", raw(`{"a":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}`, 0), "dimension 1e0 is not an integer"},
	{"huge dim", raw(`{"a":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,1]}}`, 0), "is too large"},
	{"dim over MaxInt", raw(`{"a":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,1]}}`, 0), "is too large"},
	{"count overflow", raw(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,1]}}`, 0), "element count overflows"},
	{"byte overflow", raw(`{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,1]}}`, 0), "byte size overflows"},
	{"offsets count", raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 0), "data_offsets has 3 values"},
	{"offsets reversed", raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}`, 0), "begins after it ends"},
	{"negative offset", raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, 0), "offset -1 is negative"},
	{"end beyond buffer", raw(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 0), "end beyond the 1-byte data buffer"},
	{"size mismatch", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 0, 0, 0, 0), "span 4 bytes, but F32 [2] takes 8"},
	{"hole at start", raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 0, 0), "hole in the data buffer: bytes [0, 1)"},
	{"hole between", raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}`, 0, 0, 0), "hole in the data buffer: bytes [1, 2)"},
	{"overlap", raw(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 0, 0), `tensor "b" at [1, 2] overlaps tensor "a"`},
	{"same range", raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 0), "overlaps"},
	{"empty inside tensor", raw(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"z":{"dtype":"U8","shape":[0],"data_offsets":[1,1]}}`, 0, 0), "overlaps"},
	{"trailing byte", raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 0, 0), "1 trailing bytes after the last tensor"},
	{"data without tensors", raw(`{}`, 0), "1 trailing bytes"},
	{"metadata not object", raw(`{"__metadata__":"x"}`), "__metadata__: got a string, want a JSON object"},
	{"metadata number value", raw(`{"__metadata__":{"step":3}}`), `__metadata__: key "step": got the number 3, want a string`},
	{"metadata nested", raw(`{"__metadata__":{"q":{}}}`), `key "q": got an object, want a string`},
	{"metadata null", raw(`{"__metadata__":null}`), "got null, want a JSON object"},
	{"metadata duplicate key", raw(`{"__metadata__":{"k":"a","k":"b"}}`), `__metadata__: duplicate key "k"`},
	{"duplicate metadata", raw(`{"__metadata__":{},"__metadata__":{}}`), `duplicate key "__metadata__"`},
	{"duplicate tensor", raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 0, 0), `duplicate key "a"`},
	{"empty name", raw(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 0), "empty tensor name"},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range corrupt {
		_, err := Parse(tt.file)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrFormat mentioning %q", tt.name, err, tt.want)
		}
	}
	// Accepted edge cases: zero-sized tensors sharing an offset, at the end
	// of the buffer, and JSON whitespace other than padding.
	for name, b := range map[string][]byte{
		"zero-sized":                  raw(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F64","shape":[2,0],"data_offsets":[0,0]}}`),
		"zero at end":                 raw(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"z":{"dtype":"I32","shape":[0,5],"data_offsets":[1,1]}}`, 9),
		"huge but 0":                  raw(`{"a":{"dtype":"U8","shape":[0,9223372036854775807],"data_offsets":[0,0]}}`),
		"whitespace":                  raw("{ \"a\" :\n{\"shape\": [ ], \"data_offsets\":[0,1],\t\"dtype\":\"I8\"}}\n\t  ", 3),
		"null metadata value escapes": raw(`{"__metadata__":{"k\u00e9":"\n\"\\"}}`),
	} {
		if _, err := Parse(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestTruncation checks that every proper prefix of a valid file, and the
// file with a byte appended, is rejected without a panic.
func TestTruncation(t *testing.T) {
	b := goldenBytes()
	for i := range b {
		if _, err := Parse(b[:i:i]); err == nil {
			t.Errorf("prefix of %d of %d bytes accepted", i, len(b))
		}
	}
	if _, err := Parse(append(b[:len(b):len(b)], 0)); err == nil {
		t.Error("file with a trailing byte accepted")
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(path, goldenBytes()[:20], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadFile of a truncated file: %v, want ErrFormat naming %s", err, path)
	}
	missing := filepath.Join(dir, "missing.safetensors")
	if _, err := ReadFile(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	small := &File{Metadata: map[string]string{"step": "1"}, Tensors: map[string]Tensor{"w": FromFloat32([]int{1}, []float32{1})}}
	if err := small.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if err := goldenFile().WriteFile(path); err != nil { // replaces the file
		t.Fatal(err)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"ckpt.safetensors"}) {
		t.Errorf("directory holds %v, want only ckpt.safetensors", got)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, goldenBytes()) {
		t.Fatalf("file content differs from golden (err %v)", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}

	// An invalid File leaves the existing file as it was, and no temp file.
	bad := &File{Tensors: map[string]Tensor{"w": {DType: F32, Shape: []int{2}}}}
	if err := bad.WriteFile(path); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), path) {
		t.Errorf("WriteFile of an invalid File: %v, want ErrInvalid naming the path", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, goldenBytes()) {
		t.Error("failed WriteFile modified the existing file")
	}

	// A rename that fails (the destination is a non-empty directory) leaves
	// no temp file behind.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := small.WriteFile(sub); err == nil || !strings.Contains(err.Error(), sub) {
		t.Errorf("WriteFile over a directory: %v, want an error naming it", err)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{"ckpt.safetensors", "sub"}) {
		t.Errorf("after failed rename directory holds %v", got)
	}

	// A path whose parent is a regular file cannot be written.
	if err := small.WriteFile(filepath.Join(path, "x.safetensors")); err == nil {
		t.Error("WriteFile under a regular file succeeded")
	}

	// A read-only directory: the existing file is untouched. Skipped where
	// permissions are not enforced (root).
	t.Run("read-only dir", func(t *testing.T) {
		ro := filepath.Join(dir, "ro")
		roPath := filepath.Join(ro, "ckpt.safetensors")
		if err := os.Mkdir(ro, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := goldenFile().WriteFile(roPath); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(ro, 0o755)
		if probe, err := os.CreateTemp(ro, "probe"); err == nil {
			probe.Close()
			os.Remove(probe.Name())
			t.Skip("permissions not enforced (running as root?)")
		}
		if err := small.WriteFile(roPath); err == nil || !strings.Contains(err.Error(), roPath) {
			t.Errorf("WriteFile into a read-only directory: %v, want an error naming the path", err)
		}
		if b, _ := os.ReadFile(roPath); !bytes.Equal(b, goldenBytes()) {
			t.Error("failed WriteFile modified the existing file")
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add(goldenBytes())
	f.Add(raw(`{"__metadata__":{"framework":"pt"}}` + strings.Repeat(" ", 5)))
	f.Add(raw(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}`, 1, 2))
	for _, c := range corrupt {
		f.Add(c.file)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := file.Write(&buf); err != nil {
			t.Fatalf("accepted file does not re-encode: %v", err)
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v\n%q", err, buf.Bytes())
		}
		if !equal(file, again) {
			t.Fatalf("re-parse differs:\n got %+v\nwant %+v", again, file)
		}
		if !bytes.Equal(encode(t, again), buf.Bytes()) {
			t.Fatal("re-encoding is not stable")
		}
	})
}
