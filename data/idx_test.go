package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// rawIDX encodes an idx header with the given type code and dimensions,
// followed by body, without any validation: the tests build broken files
// with it.
func rawIDX(typ byte, dims []uint32, body []byte) []byte {
	b := []byte{0, 0, typ, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, body...)
}

// gz returns b gzip-compressed.
func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

// seq returns n bytes 0, 1, 2, ... (mod 256).
func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestIDXRoundTrip(t *testing.T) {
	for _, dims := range [][]int{{1}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 2}, {300, 28, 28}} {
		n := 1
		for _, d := range dims {
			n *= d
		}
		a := IDX{Dims: dims, Data: seq(n)}
		var raw bytes.Buffer
		if err := WriteIDX(&raw, a); err != nil {
			t.Fatalf("WriteIDX %v: %v", dims, err)
		}
		// The header is the documented format: 00 00 08 ndims, big-endian dims.
		want := rawIDX(0x08, u32s(dims), a.Data)
		if !bytes.Equal(raw.Bytes(), want) {
			t.Fatalf("WriteIDX %v: header % x, want % x", dims, raw.Bytes()[:4+4*len(dims)], want[:4+4*len(dims)])
		}
		for _, in := range []struct {
			kind string
			b    []byte
		}{{"raw", raw.Bytes()}, {"gzip", gz(t, raw.Bytes())}} {
			got, err := ReadIDX(bytes.NewReader(in.b), "x")
			if err != nil {
				t.Fatalf("ReadIDX %s %v: %v", in.kind, dims, err)
			}
			if !reflect.DeepEqual(got, a) {
				t.Fatalf("ReadIDX %s %v: got dims %v, %d bytes; want %v, %d", in.kind, dims, got.Dims, len(got.Data), dims, n)
			}
			if len(got.Data) != cap(got.Data) {
				t.Errorf("ReadIDX %s %v: data capacity %d for %d bytes", in.kind, dims, cap(got.Data), len(got.Data))
			}
		}
	}
}

// TestIDXLarge reads data bigger than the initial 1 MiB read buffer, raw
// and gzipped, so that the buffer grows.
func TestIDXLarge(t *testing.T) {
	a := IDX{Dims: []int{3000, 28, 28}, Data: seq(3000 * 28 * 28)}
	raw := rawIDX(0x08, u32s(a.Dims), a.Data)
	for _, b := range [][]byte{raw, gz(t, raw)} {
		got, err := ReadIDX(bytes.NewReader(b), "large")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Fatal("large array read back differently")
		}
	}
}

func u32s(dims []int) []uint32 {
	u := make([]uint32, len(dims))
	for i, d := range dims {
		u[i] = uint32(d)
	}
	return u
}

func TestReadIDXFile(t *testing.T) {
	dir := t.TempDir()
	raw := rawIDX(0x08, []uint32{2, 2}, []byte{1, 2, 3, 4})
	// The name says nothing about compression: detection is by content.
	for name, b := range map[string][]byte{"plain.gz": raw, "packed": gz(t, raw)} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := ReadIDXFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, IDX{Dims: []int{2, 2}, Data: []byte{1, 2, 3, 4}}) {
			t.Errorf("%s: read %+v", name, a)
		}
	}
	p := filepath.Join(dir, "bad")
	if err := os.WriteFile(p, raw[:len(raw)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadIDXFile(p); err == nil || !strings.HasPrefix(err.Error(), p+": truncated data") {
		t.Errorf("truncated file: error %v, want one starting with %q", err, p+": truncated data")
	}
	if _, err := ReadIDXFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: error %v, want one naming it", err)
	}
}

func TestReadIDXErrors(t *testing.T) {
	valid := rawIDX(0x08, []uint32{2, 3}, seq(6))
	validGz := gz(t, valid)
	corruptGz := bytes.Clone(validGz)
	corruptGz[12] ^= 0xff // inside the deflate data
	badCRC := bytes.Clone(validGz)
	badCRC[len(badCRC)-8] ^= 0x01 // the CRC-32 of the trailer
	for _, c := range []struct {
		name string
		in   []byte
		want string // a substring of the error after "test.idx: "
	}{
		{"empty", nil, "truncated header: want 4 bytes of magic, got 0"},
		{"short magic", []byte{0, 0, 8}, "truncated header: want 4 bytes of magic, got 3"},
		{"bad magic", append([]byte{1, 0}, valid[2:]...), "bad magic 01 00 08 02"},
		{"text", []byte("hello, world"), "bad magic 68 65 6c 6c"},
		{"float32 type", rawIDX(0x0D, []uint32{1}, []byte{0, 0, 0, 0}), "unsupported element type 0x0d (float32)"},
		{"int32 type", rawIDX(0x0C, []uint32{1}, []byte{0, 0, 0, 0}), "unsupported element type 0x0c (int32)"},
		{"unknown type", rawIDX(0x42, []uint32{1}, []byte{0}), "unsupported element type 0x42 (unknown)"},
		{"no dims", rawIDX(0x08, nil, nil), "unsupported number of dimensions 0"},
		{"5 dims", rawIDX(0x08, []uint32{1, 1, 1, 1, 1}, []byte{0}), "unsupported number of dimensions 5"},
		{"short dims", valid[:9], "truncated header: want 8 bytes of dimensions, got 5"},
		{"zero dim", rawIDX(0x08, []uint32{2, 0, 3}, nil), "dimension 1 is zero"},
		{"huge", rawIDX(0x08, []uint32{1 << 16, 1 << 16}, nil), "exceeds the limit of 2147483648 elements"},
		{"huge dim", rawIDX(0x08, []uint32{1<<32 - 1, 1}, nil), "exceeds the limit"},
		{"truncated data", valid[:len(valid)-2], "truncated data: shape [2 3] needs 6 bytes, got 4"},
		{"no data", valid[:12], "truncated data: shape [2 3] needs 6 bytes, got 0"},
		{"trailing bytes", append(bytes.Clone(valid), 9, 9), "2 trailing bytes after the 6 bytes of data"},
		{"gzip truncated data", gz(t, valid[:len(valid)-1]), "truncated data: shape [2 3] needs 6 bytes, got 5"},
		{"gzip trailing bytes", gz(t, append(bytes.Clone(valid), 1)), "1 trailing bytes"},
		{"gzip bad header", []byte{0x1f, 0x8b, 0, 0, 0, 0}, "corrupt gzip header"},
		{"gzip corrupt", corruptGz, "corrupt or truncated gzip stream"},
		{"gzip bad checksum", badCRC, "corrupt or truncated gzip stream while reading data: gzip: invalid checksum"},
		{"gzip truncated stream", validGz[:len(validGz)-10], "corrupt or truncated gzip stream"},
		{"gzip missing trailer", validGz[:len(validGz)-8], "corrupt or truncated gzip stream while reading data: unexpected EOF"},
		{"gzip then junk", append(bytes.Clone(validGz), 'x'), "corrupt or truncated gzip stream"},
	} {
		_, err := ReadIDX(bytes.NewReader(c.in), "test.idx")
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "test.idx: ") || !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q, want %q naming test.idx", c.name, msg, c.want)
		}
	}
}

// errReader fails after its data.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestReadIDXReadError(t *testing.T) {
	boom := io.ErrClosedPipe
	valid := rawIDX(0x08, []uint32{4}, seq(4))
	_, err := ReadIDX(&errReader{bytes.NewReader(valid[:10]), boom}, "pipe")
	if err == nil || err.Error() != "pipe: reading data: io: read/write on closed pipe" {
		t.Errorf("error %v, want the read error wrapped with the name", err)
	}
}

func TestWriteIDXInvalid(t *testing.T) {
	for _, a := range []IDX{
		{},
		{Dims: []int{1, 1, 1, 1, 1}, Data: []byte{0}},
		{Dims: []int{0}},
		{Dims: []int{-1}},
		{Dims: []int{2}, Data: []byte{1}},
		{Dims: []int{1 << 16, 1 << 16}},
	} {
		var b bytes.Buffer
		if err := WriteIDX(&b, a); err == nil || b.Len() != 0 {
			t.Errorf("WriteIDX(%v, %d bytes): error %v, wrote %d bytes; want an error and nothing written", a.Dims, len(a.Data), err, b.Len())
		}
	}
}

// FuzzReadIDX: ReadIDX never panics, and an accepted input is exactly the
// encoding WriteIDX gives its result (after decompression for gzip input).
func FuzzReadIDX(f *testing.F) {
	valid := rawIDX(0x08, []uint32{2, 3}, seq(6))
	f.Add(valid)
	f.Add(gz(f, valid))
	f.Add(rawIDX(0x08, []uint32{1, 1, 2, 2}, seq(4)))
	f.Add(valid[:9])
	f.Add(rawIDX(0x0D, []uint32{1}, seq(4)))
	f.Add(rawIDX(0x08, []uint32{1 << 16, 1 << 15}, nil))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := ReadIDX(bytes.NewReader(in), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz: ") {
				t.Fatalf("error %q does not start with the name", err)
			}
			return
		}
		want := in
		if len(in) >= 2 && in[0] == 0x1f && in[1] == 0x8b {
			zr, err := gzip.NewReader(bytes.NewReader(in))
			if err != nil {
				t.Fatalf("accepted gzip input that gzip rejects: %v", err)
			}
			if want, err = io.ReadAll(zr); err != nil {
				t.Fatalf("accepted gzip input that gzip rejects: %v", err)
			}
		}
		var out bytes.Buffer
		if err := WriteIDX(&out, a); err != nil {
			t.Fatalf("accepted %v but WriteIDX rejects it: %v", a.Dims, err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("re-encoding of %v differs from the input", a.Dims)
		}
	})
}
