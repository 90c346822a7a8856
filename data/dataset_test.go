package data

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeSplit writes an MNIST-format split of n images of h x w pixels
// (pixel k of image i is i+k mod 256, label i mod 10) into dir, gzipping
// the files named in gzipped.
func writeSplit(t *testing.T, dir, split string, n, h, w int, gzipped ...string) {
	t.Helper()
	imgBase, lblBase, err := splitFiles(split)
	if err != nil {
		t.Fatal(err)
	}
	px := make([]byte, n*h*w)
	lb := make([]byte, n)
	for i := range n {
		for k := range h * w {
			px[i*h*w+k] = byte(i + k)
		}
		lb[i] = byte(i % 10)
	}
	files := map[string][]byte{
		imgBase: rawIDX(0x08, []uint32{uint32(n), uint32(h), uint32(w)}, px),
		lblBase: rawIDX(0x08, []uint32{uint32(n)}, lb),
	}
	for base, b := range files {
		name := base
		if contains(gzipped, base) {
			b, name = gz(t, b), base+".gz"
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestLoadSplit(t *testing.T) {
	dir := t.TempDir()
	writeSplit(t, dir, Train, 12, 3, 2)
	writeSplit(t, dir, Test, 5, 3, 2, "t10k-images-idx3-ubyte") // gzipped images, raw labels
	d, err := LoadSplit(dir, Train)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 12 || d.H != 3 || d.W != 2 || d.Classes != 10 || d.Len() != 12 {
		t.Fatalf("train: %d images of %dx%d, %d classes", d.N, d.H, d.W, d.Classes)
	}
	if want := filepath.Join(dir, "train-images-idx3-ubyte"); d.Name != want {
		t.Errorf("name %q, want %q", d.Name, want)
	}
	if got, want := d.Image(11), []byte{11, 12, 13, 14, 15, 16}; !reflect.DeepEqual(got, want) {
		t.Errorf("image 11 = %v, want %v", got, want)
	}
	if d.Labels[11] != 1 {
		t.Errorf("label 11 = %d, want 1", d.Labels[11])
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
	e, err := LoadSplit(dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	if e.N != 5 || !strings.HasSuffix(e.Name, "t10k-images-idx3-ubyte.gz") {
		t.Errorf("test: %d images named %q, want 5 from the .gz file", e.N, e.Name)
	}
	if got := e.ClassCounts(); !reflect.DeepEqual(got, []int{1, 1, 1, 1, 1, 0, 0, 0, 0, 0}) {
		t.Errorf("class counts %v", got)
	}
}

func TestLoadSplitErrors(t *testing.T) {
	put := func(dir, name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	imgs := func(dims ...uint32) []byte {
		n := 1
		for _, d := range dims {
			n *= int(d)
		}
		return rawIDX(0x08, dims, make([]byte, n))
	}
	for _, c := range []struct {
		name  string
		files map[string][]byte
		want  string // substring; the file it names is checked too
		file  string
	}{
		{"no files", nil, "neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz found", ""},
		{"no labels", map[string][]byte{"train-images-idx3-ubyte": imgs(2, 2, 2)},
			"neither train-labels-idx1-ubyte nor train-labels-idx1-ubyte.gz found", ""},
		{"count mismatch", map[string][]byte{
			"train-images-idx3-ubyte": imgs(2, 2, 2),
			"train-labels-idx1-ubyte": rawIDX(0x08, []uint32{3}, []byte{1, 2, 3}),
		}, "has 2 images but", "train-labels-idx1-ubyte"},
		{"label 10", map[string][]byte{
			"train-images-idx3-ubyte": imgs(2, 2, 2),
			"train-labels-idx1-ubyte": rawIDX(0x08, []uint32{2}, []byte{9, 10}),
		}, "label 10 of sample 1 is not below 10", "train-labels-idx1-ubyte"},
		{"2-D images", map[string][]byte{
			"train-images-idx3-ubyte": imgs(2, 4),
			"train-labels-idx1-ubyte": rawIDX(0x08, []uint32{2}, []byte{0, 1}),
		}, "images have shape [2 4], want 3 dimensions", "train-images-idx3-ubyte"},
		{"2-D labels", map[string][]byte{
			"train-images-idx3-ubyte": imgs(2, 2, 2),
			"train-labels-idx1-ubyte": rawIDX(0x08, []uint32{2, 1}, []byte{0, 1}),
		}, "labels have shape [2 1], want 1 dimension", "train-labels-idx1-ubyte"},
		{"corrupt gz labels", map[string][]byte{
			"train-images-idx3-ubyte":    imgs(2, 2, 2),
			"train-labels-idx1-ubyte.gz": gz(t, rawIDX(0x08, []uint32{2}, []byte{0, 1}))[:20],
		}, "corrupt or truncated gzip stream", "train-labels-idx1-ubyte.gz"},
	} {
		dir := t.TempDir()
		for name, b := range c.files {
			put(dir, name, b)
		}
		_, err := LoadSplit(dir, Train)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || !strings.Contains(msg, filepath.Join(dir, c.file)) {
			t.Errorf("%s: error %q, want %q naming %s", c.name, msg, c.want, filepath.Join(dir, c.file))
		}
		if c.files == nil || c.name == "no labels" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: error %v does not wrap fs.ErrNotExist", c.name, err)
			}
		}
	}
	if _, err := LoadSplit(t.TempDir(), "validation"); err == nil || !strings.Contains(err.Error(), `unknown split "validation"`) {
		t.Errorf("unknown split: error %v", err)
	}
}

func TestLimit(t *testing.T) {
	dir := t.TempDir()
	writeSplit(t, dir, Train, 10, 2, 2)
	d, err := LoadSplit(dir, Train)
	if err != nil {
		t.Fatal(err)
	}
	l := d.Limit(3)
	if l.N != 3 || len(l.Images) != 12 || len(l.Labels) != 3 || l.Validate() != nil {
		t.Fatalf("Limit(3): N=%d, %d pixels, %d labels", l.N, len(l.Images), len(l.Labels))
	}
	if &l.Images[0] != &d.Images[0] {
		t.Error("Limit copied the pixels, want a view")
	}
	if d.N != 10 {
		t.Errorf("Limit changed the original: N=%d", d.N)
	}
	if d.Limit(0) != d || d.Limit(10) != d || d.Limit(1000) != d {
		t.Error("Limit(0), Limit(N) and Limit(>N) should return d itself")
	}
	mustPanic(t, "Limit(-1)", func() { d.Limit(-1) })
	mustPanic(t, "Image(3) of Limit(3)", func() { l.Image(3) })
}

func TestMeanStd(t *testing.T) {
	// Pixels 0 and 255 in equal numbers scale to 0 and 1: mean 1/2 and
	// population standard deviation 1/2.
	d := &Dataset{N: 2, C: 1, H: 1, W: 2, Images: []byte{0, 255, 255, 0}, Labels: []byte{0, 1}, Classes: 10}
	if m, s := d.MeanStd(); m != 0.5 || s != 0.5 {
		t.Errorf("MeanStd = %g, %g, want 0.5, 0.5", m, s)
	}
	// One pixel of 51 = 0.2*255: mean 0.2, std 0.
	d = &Dataset{N: 1, C: 1, H: 1, W: 1, Images: []byte{51}, Labels: []byte{0}, Classes: 10}
	if m, s := d.MeanStd(); math.Abs(m-0.2) > 1e-15 || s > 1e-15 {
		t.Errorf("MeanStd = %g, %g, want 0.2, 0", m, s)
	}
	if m, s := (&Dataset{C: 1, H: 1, W: 1, Classes: 10}).MeanStd(); m != 0 || s != 0 {
		t.Errorf("empty MeanStd = %g, %g", m, s)
	}
}

func TestValidate(t *testing.T) {
	good := Dataset{Name: "d", N: 1, C: 1, H: 1, W: 2, Images: []byte{1, 2}, Labels: []byte{3}, Classes: 10}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mod  func(*Dataset)
		want string
	}{
		{func(d *Dataset) { d.Labels[0] = 10 }, "d: label 10 of sample 0 is not below 10"},
		{func(d *Dataset) { d.Images = d.Images[:1] }, "d: 1 pixels for 1 images of 1x1x2"},
		{func(d *Dataset) { d.C = 3 }, "d: 2 pixels for 1 images of 3x1x2"},
		{func(d *Dataset) { d.C = 0 }, "d: invalid size 1 images of 0x1x2 (channels x height x width)"},
		{func(d *Dataset) { d.Labels = nil }, "d: 0 labels for 1 images"},
		{func(d *Dataset) { d.H = 0 }, "d: invalid size"},
		{func(d *Dataset) { d.Classes = 0 }, "d: invalid class count 0"},
	} {
		d := good
		d.Labels = []byte{3}
		c.mod(&d)
		if err := d.Validate(); err == nil || err.Error() != c.want && !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestNewDataset(t *testing.T) {
	d, err := NewDataset("toy", IDX{Dims: []int{1, 1, 2}, Data: []byte{7, 8}}, IDX{Dims: []int{1}, Data: []byte{4}})
	if err != nil || d.Name != "toy" || d.N != 1 || d.Labels[0] != 4 {
		t.Fatalf("NewDataset: %+v, %v", d, err)
	}
	_, err = NewDataset("toy", IDX{Dims: []int{1, 1, 2}, Data: []byte{7}}, IDX{Dims: []int{1}, Data: []byte{4}})
	if err == nil || !strings.HasPrefix(err.Error(), "toy images: shape [1 1 2] has 2 elements but data has 1") {
		t.Errorf("inconsistent IDX: error %v", err)
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}
