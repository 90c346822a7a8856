package torchio

import (
	"os"
	"path/filepath"
	"testing"
)

// checkRead reads b and, if that succeeds, checks that every tensor holds
// as many elements as its shape.
func checkRead(t *testing.T, b []byte) {
	sd, err := readBytes(b)
	if err != nil {
		return
	}
	for name, ts := range sd {
		n := 1
		for _, d := range ts.Shape {
			n *= d
		}
		if len(ts.Float)+len(ts.Int) != n || (ts.Float == nil) == (ts.Int == nil) {
			t.Fatalf("tensor %q of shape %v has %d floats and %d ints", name, ts.Shape, len(ts.Float), len(ts.Int))
		}
	}
}

// FuzzRead reads mutated files: the fixtures (archives, a bare pickle)
// and a safetensors file.
func FuzzRead(f *testing.F) {
	files, err := filepath.Glob("testdata/*.pt")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x2e\x00\x00\x00\x00\x00\x00\x00" + `{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}` + "\x00\x3c\x00\xc0"))
	f.Fuzz(checkRead)
}

// FuzzPickle reads archives whose data.pkl is mutated and whose storage
// records are those of testdata/tiny.pt (which mutations of CRC-checked
// archives rarely reach).
func FuzzPickle(f *testing.F) {
	tiny := tinyArchive(f)
	for _, e := range tiny {
		if e.name == "tiny/data.pkl" {
			f.Add([]byte(e.data))
		}
	}
	f.Add(statePickle(fakeTensor{name: "w", class: "HalfStorage", key: "0", numel: 108, offset: 4, size: []int{2, 50}, stride: []int{50, 1}}))
	f.Add((&pickler{}).raw("\x80\x02}").str("w").global("torch._utils", "_rebuild_parameter").raw("(").
		tensor(fakeTensor{name: "w", class: "LongStorage", key: "1", numel: 4, size: []int{2}, stride: []int{1}}).raw("\x88").orderedDict().raw("tRs.").b)
	f.Fuzz(func(t *testing.T, pkl []byte) {
		es := make([]zipEntry, len(tiny))
		for i, e := range tiny {
			if e.name == "tiny/data.pkl" {
				e.data = string(pkl)
			}
			es[i] = e
		}
		checkRead(t, zipOf(t, es...))
	})
}
