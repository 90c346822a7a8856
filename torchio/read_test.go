package torchio

import (
	"archive/zip"
	"bytes"
	"hash/crc32"
	"math"
	"slices"
	"strings"
	"testing"

	"qat/safetensors"
)

// tinyShapes are the tensors of testdata/tiny.pt, the state_dict of the
// model of scripts/torch-fixtures.py (conv 3->4 k3 + BN, conv 4->6 k3
// without bias + BN, linear 24->5).
var tinyShapes = map[string][]int{
	"features.0.weight": {4, 3, 3, 3}, "features.0.bias": {4},
	"features.1.weight": {4}, "features.1.bias": {4}, "features.1.running_mean": {4}, "features.1.running_var": {4}, "features.1.num_batches_tracked": {},
	"features.4.weight": {6, 4, 3, 3},
	"features.5.weight": {6}, "features.5.bias": {6}, "features.5.running_mean": {6}, "features.5.running_var": {6}, "features.5.num_batches_tracked": {},
	"classifier.weight": {5, 24}, "classifier.bias": {5},
}

func TestReadTiny(t *testing.T) {
	sd, err := ReadStateDict("testdata/tiny.pt")
	if err != nil {
		t.Fatal(err)
	}
	if len(sd) != len(tinyShapes) {
		t.Errorf("%d tensors, want %d", len(sd), len(tinyShapes))
	}
	for name, shape := range tinyShapes {
		got, ok := sd[name]
		n := 1
		for _, d := range shape {
			n *= d
		}
		switch {
		case !ok:
			t.Errorf("%s missing", name)
		case !slices.Equal(got.Shape, shape):
			t.Errorf("%s has shape %v, want %v", name, got.Shape, shape)
		case strings.HasSuffix(name, "num_batches_tracked"):
			// The script sets every num_batches_tracked to 7.
			if got.DType != "int64" || !slices.Equal(got.Int, []int64{7}) || got.Float != nil {
				t.Errorf("%s = %+v, want int64 7", name, got)
			}
		case got.DType != "float32" || len(got.Float) != n || got.Int != nil:
			t.Errorf("%s = %s with %d floats and %d ints, want %d float32", name, got.DType, len(got.Float), len(got.Int), n)
		}
	}
	// The values themselves are checked by TestImportTinyLogits.
}

// The views of one storage in testdata/views.pt, made by
// scripts/torch-fixtures.py from torch.arange(10.).
func TestReadViews(t *testing.T) {
	sd, err := ReadStateDict("testdata/views.pt")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Tensor{
		"sliced": {Shape: []int{3}, Float: []float32{2, 3, 4}},
		"head":   {Shape: []int{2}, Float: []float32{0, 1}},
		"matrix": {Shape: []int{2, 3}, Float: []float32{0, 1, 2, 3, 4, 5}},
		"scalar": {Shape: []int{}, Float: []float32{2.5}},
		"empty":  {Shape: []int{0, 3}, Float: []float32{}},
	} {
		got := sd[name]
		if !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Float, want.Float) || got.Float == nil || got.DType != "float32" {
			t.Errorf("%s = %+v, want %+v", name, got, want)
		}
	}
}

// testdata/dtypes.pt holds the values scripts/torch-fixtures.py lists,
// each exact in its dtype but f64's 0.1 and 1e300, which round to
// float32 as Go's conversion does.
func TestReadDTypes(t *testing.T) {
	sd, err := ReadStateDict("testdata/dtypes.pt")
	if err != nil {
		t.Fatal(err)
	}
	inf := float32(math.Inf(1))
	for name, want := range map[string]Tensor{
		"f16":  {DType: "float16", Shape: []int{6}, Float: []float32{1.5, -2.25, 65504, 1.0 / (1 << 14), 1.0 / (1 << 24), inf}},
		"bf16": {DType: "bfloat16", Shape: []int{4}, Float: []float32{1.5, -3, float32(math.Pow(2, 100)), float32(math.Pow(2, -130))}},
		"f64":  {DType: "float64", Shape: []int{3}, Float: []float32{float32(0.1), -2.5, inf}},
		"i64":  {DType: "int64", Shape: []int{}, Int: []int64{7}},
	} {
		got := sd[name]
		if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Float, want.Float) || !slices.Equal(got.Int, want.Int) {
			t.Errorf("%s = %+v, want %+v", name, got, want)
		}
	}
}

func TestHalfToFloat32(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0400, 1.0 / (1 << 14)}, {0x0001, 1.0 / (1 << 24)},
		{0x03ff, 1023.0 / (1 << 24)}, {0x8001, -1.0 / (1 << 24)}, {0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	} {
		if got := halfToFloat32(c.h); got != c.want {
			t.Errorf("halfToFloat32(%#04x) = %v, want %v", c.h, got, c.want)
		}
	}
	if got := halfToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("halfToFloat32(0x8000) = %v, want -0", got)
	}
	if got := halfToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("halfToFloat32(0x7e00) = %v, want NaN", got)
	}
}

// The fixtures that must fail, each for the reason
// scripts/torch-fixtures.py made it.
func TestReadFixtureErrors(t *testing.T) {
	for file, want := range map[string]string{
		"noncontig.pt":   `tensor "transposed": size [3 2] with strides [1 3] is not contiguous`,
		"int32.pt":       `tensor "idx" has dtype int32`,
		"whole-model.pt": "global torch.nn.modules.container.Sequential is not allowed",
		"evil.pt":        "evil/data.pkl: global os.system is not allowed",
		"legacy.pt":      "before PyTorch 1.6",
		"tiny.json":      "neither a torch.save zip archive nor a safetensors file",
		"missing.pt":     "no such file",
	} {
		_, err := ReadStateDict("testdata/" + file)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: error %v, want one naming the file and %q", file, err, want)
		}
	}
}

func TestReadSafetensors(t *testing.T) {
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{
		"w":   safetensors.FromFloat32([]int{2, 2}, []float32{1, -2, 0.5, 3}),
		"n":   safetensors.FromInt64([]int{}, []int64{-9}),
		"f64": {DType: safetensors.F64, Shape: []int{1}, Data: []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x3f}}, // 1.5
		"f16": {DType: safetensors.F16, Shape: []int{2}, Data: []byte{0x00, 0x3e, 0x00, 0xc0}},       // 1.5, -2
		"bf":  {DType: safetensors.BF16, Shape: []int{1}, Data: []byte{0xc0, 0x3f}},                  // 1.5
	}}
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	sd, err := ReadStateDict(writeTemp(t, "sd.pth", buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Tensor{
		"w":   {DType: "float32", Shape: []int{2, 2}, Float: []float32{1, -2, 0.5, 3}},
		"n":   {DType: "int64", Shape: []int{}, Int: []int64{-9}},
		"f64": {DType: "float64", Shape: []int{1}, Float: []float32{1.5}},
		"f16": {DType: "float16", Shape: []int{2}, Float: []float32{1.5, -2}},
		"bf":  {DType: "bfloat16", Shape: []int{1}, Float: []float32{1.5}},
	} {
		got := sd[name]
		if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Float, want.Float) || !slices.Equal(got.Int, want.Int) {
			t.Errorf("%s = %+v, want %+v", name, got, want)
		}
	}

	f.Tensors["mask"] = safetensors.FromUint8([]int{1}, []uint8{1})
	buf.Reset()
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := readBytes(buf.Bytes()); err == nil || !strings.Contains(err.Error(), `tensor "mask" has dtype U8`) {
		t.Errorf("U8 tensor: error %v", err)
	}
	setLimit(t, &MaxBytes, int64(buf.Len()-1))
	if _, err := readBytes(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "torchio.MaxBytes") {
		t.Errorf("file above MaxBytes: error %v", err)
	}
	if _, err := readBytes(append(buf.Bytes()[:8:8], "{..."...)); err == nil || !strings.Contains(err.Error(), "malformed safetensors") {
		t.Errorf("damaged file: error %v", err)
	}
}

// tinyArchive returns the entries of testdata/tiny.pt.
func tinyArchive(t testing.TB) []zipEntry {
	t.Helper()
	zr, err := zip.OpenReader("testdata/tiny.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var es []zipEntry
	for _, f := range zr.File {
		b, err := readFile(f, 1<<20, "")
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, zipEntry{f.Name, string(b)})
	}
	return es
}

// Archives that are not torch.save's, or damaged.
func TestReadArchiveErrors(t *testing.T) {
	tiny := tinyArchive(t)
	without := func(name string) []zipEntry {
		return slices.DeleteFunc(slices.Clone(tiny), func(e zipEntry) bool { return e.name == name })
	}
	with := func(es ...zipEntry) []zipEntry { return append(slices.Clone(tiny), es...) }
	for _, c := range []struct {
		name    string
		entries []zipEntry
		want    string
	}{
		{"no data.pkl", without("tiny/data.pkl"), "no PREFIX/data.pkl"},
		{"two data.pkl", with(zipEntry{"other/data.pkl", "."}), "both tiny/data.pkl and other/data.pkl"},
		{"entry twice", with(zipEntry{"tiny/version", "3\n"}), "holds tiny/version twice"},
		{"no version", without("tiny/version"), "no tiny/version"},
		{"bad version", append(without("tiny/version"), zipEntry{"tiny/version", "three"}), `tiny/version "three" is not a format version`},
		{"big endian", with(zipEntry{"tiny/byteorder", "big"}), `byteorder is "big"`},
		{"long byteorder", with(zipEntry{"tiny/byteorder", strings.Repeat(" ", 65)}), "tiny/byteorder is 65 bytes, above the limit of 64 (that of a short record)"},
		{"missing storage", without("tiny/data/3"), "storage 3: the archive holds no tiny/data/3"},
		{"short storage", append(without("tiny/data/0"), zipEntry{"tiny/data/0", "abc"}), "needs 432 bytes, but tiny/data/0 holds 3"},
	} {
		_, err := readBytes(zipOf(t, c.entries...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}

	// A record whose CRC-32 does not match its bytes.
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range tiny {
		h := &zip.FileHeader{Name: e.name, Method: zip.Store, CRC32: crc32.ChecksumIEEE([]byte(e.data)),
			CompressedSize64: uint64(len(e.data)), UncompressedSize64: uint64(len(e.data))}
		if e.name == "tiny/data/0" {
			h.CRC32++
		}
		f, err := w.CreateRaw(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := readBytes(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "tiny/data/0: zip: checksum error") {
		t.Errorf("bad CRC: error %v", err)
	}
}

// Pickles that break the rules, each in an archive whose other entries
// are fine.
func TestReadHostilePickles(t *testing.T) {
	good := fakeTensor{name: "w", class: "FloatStorage", key: "0", numel: 4, size: []int{2, 2}, stride: []int{2, 1}}
	tensor := func(edit func(*fakeTensor)) []byte {
		ft := good
		edit(&ft)
		return statePickle(ft)
	}
	rebuild := func(args string) []byte {
		p := (&pickler{}).raw("\x80\x02").orderedDict().str("w").global("torch._utils", "_rebuild_tensor_v2").raw("(")
		return p.raw(args + "tRs.").b
	}
	for _, c := range []struct {
		name string
		pkl  []byte
		want string
	}{
		{"os.system", (&pickler{}).raw("\x80\x02").orderedDict().str("w").global("os", "system").str("true").raw("\x85Rs.").b,
			"global os.system is not allowed"},
		// gopickle resolves these two itself, without asking FindClass.
		{"builtin object", (&pickler{}).raw("\x80\x02").global("__builtin__", "object").raw(".").b, "global __builtin__.object is not allowed"},
		{"reconstructor", (&pickler{}).raw("\x80\x02").global("copy_reg", "_reconstructor").raw(".").b, "global copy_reg._reconstructor is not allowed"},
		{"module class", (&pickler{}).raw("\x80\x02").global("__main__", "Net").raw(")\x81.").b, "global __main__.Net is not allowed"},
		{"STACK_GLOBAL", []byte("\x80\x04\x8c\x02os\x8c\x06system\x93."), "opcode 0x8c at offset 2 is not one torch.load(weights_only=True) accepts"},
		{"NEWOBJ", []byte("\x80\x02)\x81."), "opcode 0x81 at offset 3"},
		{"BINBYTES", []byte("\x80\x02B\x01\x00\x00\x00x."), "opcode 0x42"},
		{"huge BINUNICODE", []byte("\x80\x02X\xff\xff\xff\xff."), "opcode 0x58 at offset 2 is truncated"},
		{"short BINUNICODE", []byte("\x80\x02X\x01"), "opcode 0x58 at offset 2 is truncated"},
		{"short SHORT_BINSTRING", []byte("\x80\x02U\x05ab"), "opcode 0x55 at offset 2 is truncated"},
		{"short GLOBAL", []byte("\x80\x02ccollections\nOrd"), "GLOBAL at offset 2 is truncated"},
		{"short BININT", []byte("\x80\x02J\x01"), "opcode 0x4a at offset 2 is truncated"},
		{"no STOP", []byte("\x80\x02}"), "no STOP"},
		{"empty stack", []byte("\x80\x02s."), "stack is empty"},
		{"odd SETITEMS", []byte("\x80\x02}(X\x01\x00\x00\x00au."), "malformed pickle"},
		{"LONG1 of no bytes", []byte("\x80\x02\x8a\x00."), "malformed pickle"},
		{"list", []byte("\x80\x02]."), "the pickle holds a *types.List, not a state_dict"},
		{"int key", []byte("\x80\x02}K\x01K\x02s."), "state_dict key 1 is a int, not a string"},
		{"int value", []byte("\x80\x02}X\x01\x00\x00\x00aK\x02s."), `tensor "a": a value of type int, not a tensor`},
		{"nested dict", (&pickler{}).raw("\x80\x02}").str("model").orderedDict().raw("s.").b, `tensor "model": a dict, not a tensor`},
		{"nested plain dict", []byte("\x80\x02}X\x01\x00\x00\x00a}s."), `tensor "a": a dict, not a tensor`},
		{"key twice", (&pickler{}).raw("\x80\x02}(").str("w").tensor(good).str("w").tensor(good).raw("u.").b, `holds tensor "w" twice`},
		{"not a storage", rebuild("X\x01\x00\x00\x00sJ\x00\x00\x00\x00))\x89N"), "argument storage is a string, not a storage"},
		{"5 arguments", rebuild("K\x00K\x00))\x89"), "takes 6 arguments, not 5"},
		{"metadata", rebuild("K\x00K\x00))\x89N}"), "takes 6 arguments, not 7"},
		{"module pid", (&pickler{}).raw("\x80\x02").orderedDict().str("w").global("torch._utils", "_rebuild_tensor_v2").
			raw("((").str("module").raw("tQK\x00))\x89NtRs.").b, `persistent id &[module] is not ("storage", class, key, location, elements)`},
		{"negative numel", tensor(func(f *fakeTensor) { f.numel = -1 }), "persistent id"},
		{"float offset", rebuild("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQN(K\x02t(K\x01t\x89N"),
			"arguments offset <nil>, size &[2], stride &[1]: want an int and two tuples of ints of one length"},
		{"int size", rebuild("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00K\x04(K\x01t\x89N"),
			"size 4, stride &[1]: want"},
		{"None in size", rebuild("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00(Nt(K\x01t\x89N"),
			"size &[<nil>], stride &[1]: want"},
		{"rank mismatch", tensor(func(f *fakeTensor) { f.stride = []int{1} }), "want an int and two tuples"},
		{"negative dimension", tensor(func(f *fakeTensor) { f.size = []int{-2, -2} }), "size [-2 -2] has a negative dimension"},
		{"overflow", tensor(func(f *fakeTensor) { f.size, f.stride = []int{1 << 40, 1 << 40}, []int{1 << 40, 1} }), "holds too many elements"},
		{"past the storage", tensor(func(f *fakeTensor) { f.offset = 1 }), "elements 1 to 5 (offset 1, size [2 2]) lie outside storage 0 of 4 elements"},
		{"negative offset", tensor(func(f *fakeTensor) { f.offset = -1 }), "lie outside storage"},
		{"too big", tensor(func(f *fakeTensor) { f.size, f.stride = []int{5}, []int{1} }), "elements 0 to 5"},
		{"expanded", tensor(func(f *fakeTensor) { f.stride = []int{0, 1} }), "size [2 2] with strides [0 1] is not contiguous"},
		{"transposed", tensor(func(f *fakeTensor) { f.stride = []int{1, 2} }), "is not contiguous"},
		{"class mismatch", statePickle(good, fakeTensor{name: "v", class: "HalfStorage", key: "0", numel: 8, size: []int{1}, stride: []int{1}}),
			`tensor "v": storage 0 is 8 float16 elements here and 4 float32 elements elsewhere`},
		{"huge storage", tensor(func(f *fakeTensor) { f.numel = 1 << 60 }), "storage 0 of 1152921504606846976 float32 elements is above the limit"},
		{"unknown storage class", tensor(func(f *fakeTensor) { f.class = "QInt8Storage" }), "global torch.QInt8Storage is not allowed"},
	} {
		_, err := readBytes(archiveOf(t, c.pkl, zipEntry{"0", f32(1, 2, 3, 4)}))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

// The test pickles as torch.save writes them are read, and a dict works
// as well as an OrderedDict, and _rebuild_parameter as well.
func TestReadPickleForms(t *testing.T) {
	ft := fakeTensor{name: "w", class: "FloatStorage", key: "0", numel: 4, offset: 1, size: []int{1, 3}, stride: []int{7, 1}}
	param := (&pickler{}).raw("\x80\x02}").str("w").global("torch._utils", "_rebuild_parameter").raw("(").tensor(ft).raw("\x88").orderedDict().raw("tRs.").b
	for name, pkl := range map[string][]byte{"state_dict": statePickle(ft), "parameter": param} {
		sd, err := readBytes(archiveOf(t, pkl, zipEntry{"0", f32(1, 2, 3, 4)}))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := sd["w"]; len(sd) != 1 || !slices.Equal(got.Shape, []int{1, 3}) || !slices.Equal(got.Float, []float32{2, 3, 4}) {
			t.Errorf("%s: read %+v", name, sd)
		}
	}
	for _, args := range []string{"(", "(K\x01\x88N"} {
		bad := (&pickler{}).raw("\x80\x02}").str("w").global("torch._utils", "_rebuild_parameter").raw(args).raw("tRs.").b
		if _, err := readBytes(archiveOf(t, bad, zipEntry{"0", f32(1, 2, 3, 4)})); err == nil || !strings.Contains(err.Error(), "_rebuild_parameter takes (tensor, requires_grad, hooks), not") {
			t.Errorf("_rebuild_parameter%s): error %v", args, err)
		}
	}
}

func TestReadLimits(t *testing.T) {
	tiny := zipOf(t, tinyArchive(t)...)
	t.Run("entries", func(t *testing.T) {
		setLimit(t, &MaxEntries, 15) // tiny.pt holds 16 entries
		if _, err := readBytes(tiny); err == nil || !strings.Contains(err.Error(), "more than 15 entries (torchio.MaxEntries)") {
			t.Errorf("error %v", err)
		}
		// A directory beyond the budget fails before it is read whole.
		setLimit(t, &MaxEntries, 1)
		var many []zipEntry
		for i := range 600 {
			many = append(many, zipEntry{strings.Repeat("x", 250) + string(rune('a'+i%26)) + strings.Repeat("y", i/26), ""})
		}
		if _, err := readBytes(zipOf(t, many...)); err == nil || !strings.Contains(err.Error(), "more than 1 entries (torchio.MaxEntries)") {
			t.Errorf("large directory: error %v", err)
		}
	})
	t.Run("pickle", func(t *testing.T) {
		setLimit(t, &MaxPickleBytes, 100)
		if _, err := readBytes(tiny); err == nil || !strings.Contains(err.Error(), "tiny/data.pkl is 1585 bytes, above the limit of 100 (torchio.MaxPickleBytes)") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("storages", func(t *testing.T) {
		// 4 float32 elements in each of two storages: 16 bytes each.
		pkl := statePickle(fakeTensor{name: "a", class: "FloatStorage", key: "0", numel: 4, size: []int{4}, stride: []int{1}},
			fakeTensor{name: "b", class: "FloatStorage", key: "1", numel: 4, size: []int{4}, stride: []int{1}})
		file := archiveOf(t, pkl, zipEntry{"0", f32(1, 2, 3, 4)}, zipEntry{"1", f32(1, 2, 3, 4)})
		setLimit(t, &MaxBytes, 31)
		if _, err := readBytes(file); err == nil || !strings.Contains(err.Error(), "the storages reach 32 bytes, above the limit of 31 (torchio.MaxBytes)") {
			t.Errorf("error %v", err)
		}
		setLimit(t, &MaxBytes, 15)
		if _, err := readBytes(file); err == nil || !strings.Contains(err.Error(), "storage 0 of 4 float32 elements is above the limit of 15 bytes") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("converted", func(t *testing.T) {
		// 4 float16 elements: 8 bytes of storage, 16 as float32.
		pkl := statePickle(fakeTensor{name: "h", class: "HalfStorage", key: "0", numel: 4, size: []int{4}, stride: []int{1}})
		setLimit(t, &MaxBytes, 15)
		if _, err := readBytes(archiveOf(t, pkl, zipEntry{"0", "\x00\x3c\x00\x3c\x00\x3c\x00\x3c"})); err == nil ||
			!strings.Contains(err.Error(), `tensor "h": the tensors reach more than 15 bytes as float32 and int64`) {
			t.Errorf("error %v", err)
		}
	})
}
