package torchio

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// pickler writes a pickle opcode by opcode, as protocol 2 spells them.
type pickler struct{ b []byte }

func (p *pickler) raw(s string) *pickler { p.b = append(p.b, s...); return p }

func (p *pickler) global(module, name string) *pickler {
	return p.raw("c" + module + "\n" + name + "\n")
}

func (p *pickler) str(s string) *pickler {
	p.b = append(binary.LittleEndian.AppendUint32(append(p.b, 'X'), uint32(len(s))), s...)
	return p
}

// int writes n as BININT, or as an 8-byte LONG1 beyond 32 bits.
func (p *pickler) int(n int) *pickler {
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		p.b = binary.LittleEndian.AppendUint32(append(p.b, 'J'), uint32(n))
	} else {
		p.b = binary.LittleEndian.AppendUint64(append(p.b, 0x8a, 8), uint64(n))
	}
	return p
}

func (p *pickler) tuple(ns []int) *pickler {
	p.raw("(")
	for _, n := range ns {
		p.int(n)
	}
	return p.raw("t")
}

// orderedDict writes collections.OrderedDict().
func (p *pickler) orderedDict() *pickler { return p.global("collections", "OrderedDict").raw(")R") }

// fakeTensor is a tensor entry of a test pickle: name = rebuild_tensor_v2
// of storage key (numel elements of torch.<class>) at offset with size
// and stride.
type fakeTensor struct {
	name, class, key string
	numel, offset    int
	size, stride     []int
}

// tensor writes t's _rebuild_tensor_v2 call as torch.save does.
func (p *pickler) tensor(t fakeTensor) *pickler {
	p.global("torch._utils", "_rebuild_tensor_v2").raw("((").str("storage").global("torch", t.class).
		str(t.key).str("cpu").int(t.numel).raw("tQ").int(t.offset).tuple(t.size).tuple(t.stride).raw("\x89")
	return p.orderedDict().raw("tR")
}

// statePickle is the pickle of an OrderedDict of the tensors, as
// torch.save writes a state_dict.
func statePickle(ts ...fakeTensor) []byte {
	p := (&pickler{}).raw("\x80\x02").orderedDict().raw("(")
	for _, t := range ts {
		p.str(t.name).tensor(t)
	}
	return p.raw("u.").b
}

// entry is a file of a test archive.
type zipEntry struct{ name, data string }

// zipOf returns a zip archive of the entries, stored, in order.
func zipOf(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range entries {
		f, err := w.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Store})
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
	return buf.Bytes()
}

// archiveOf is a torch.save archive "a" of the pickle and storage
// records (data/KEY: bytes), with its version.
func archiveOf(t testing.TB, pkl []byte, records ...zipEntry) []byte {
	t.Helper()
	entries := []zipEntry{{"a/data.pkl", string(pkl)}}
	for _, r := range records {
		entries = append(entries, zipEntry{"a/data/" + r.name, r.data})
	}
	return zipOf(t, append(entries, zipEntry{"a/version", "3\n"})...)
}

// f32 returns the little-endian bytes of v.
func f32(v ...float32) string {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return string(b)
}

// readBytes reads a state_dict file held in b.
func readBytes(b []byte) (StateDict, error) { return read(bytes.NewReader(b), int64(len(b))) }

// writeTemp writes b to a file in a temporary directory and returns its
// path.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// setLimit sets *v to n for the test.
func setLimit[T int | int64](t *testing.T, v *T, n T) {
	old := *v
	*v = n
	t.Cleanup(func() { *v = old })
}
