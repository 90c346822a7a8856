package data

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveSource(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("QAT_DATA", cache)
	for _, c := range []struct {
		spec, dir string
	}{
		{"mnist", filepath.Join(cache, "mnist")},
		{"fashion-mnist", filepath.Join(cache, "fashion-mnist")},
		{"embedded", ""},
		{"./mnist", "./mnist"},
		{"/some/dir", "/some/dir"},
	} {
		s, err := ResolveSource(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		if s.Spec != c.spec || s.Dir != c.dir || s.Embedded() != (c.dir == "") {
			t.Errorf("ResolveSource(%q) = %+v, want dir %q", c.spec, s, c.dir)
		}
	}
	if _, err := ResolveSource(""); err == nil {
		t.Error(`ResolveSource(""): no error`)
	}

	t.Setenv("QAT_DATA", "")
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory:", err)
	}
	s, err := ResolveSource("mnist")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".cache", "qat", "mnist"); s.Dir != want {
		t.Errorf("default mnist dir %q, want %q", s.Dir, want)
	}
}

func TestSourceLoad(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("QAT_DATA", cache)

	// A named source whose directory is missing tells the user what to run.
	s, _ := ResolveSource("fashion-mnist")
	_, err := s.Load(Train)
	if err == nil || !errors.Is(err, fs.ErrNotExist) ||
		!strings.Contains(err.Error(), filepath.Join(cache, "fashion-mnist")+" does not exist") ||
		!strings.Contains(err.Error(), "scripts/fetch-data.sh") {
		t.Errorf("missing fashion-mnist: error %v", err)
	}
	// A directory present but incomplete: the error names the file and
	// still gives the hint.
	dir := filepath.Join(cache, "mnist")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSplit(t, dir, Train, 4, 2, 2)
	s, _ = ResolveSource("mnist")
	_, err = s.Load(Test)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "t10k-images-idx3-ubyte.gz") ||
		!strings.Contains(err.Error(), "scripts/fetch-data.sh") {
		t.Errorf("incomplete mnist: error %v", err)
	}
	d, err := s.Load(Train)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 4 || d.Name != "mnist train" {
		t.Errorf("mnist train: %d images named %q", d.N, d.Name)
	}
	// A plain directory.
	s, _ = ResolveSource(dir)
	if d, err := s.Load(Train); err != nil || d.N != 4 {
		t.Errorf("directory source: %v", err)
	}
	s, _ = ResolveSource(filepath.Join(cache, "nowhere"))
	if _, err := s.Load(Train); err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("missing directory: error %v", err)
	}
	// The embedded sample needs no files.
	s, _ = ResolveSource("embedded")
	if d, err := s.Load(Test); err != nil || d.N != EmbeddedTestLen || d.Name != "embedded test" {
		t.Errorf("embedded: %v", err)
	}
}

func TestResolveSourceFormats(t *testing.T) {
	for _, c := range []struct {
		spec string
		want Source
	}{
		{"cifar10:/d/cifar-10-batches-bin", Source{Dir: "/d/cifar-10-batches-bin", Format: FormatCIFAR10}},
		{"imagefolder:/d", Source{Dir: "/d", Format: FormatImageFolder, Size: DefaultFolderSize}},
		{"imagefolder:rel/d:64", Source{Dir: "rel/d", Format: FormatImageFolder, Size: 64}},
		{"imagefolder:a:b:8", Source{Dir: "a:b", Format: FormatImageFolder, Size: 8}},
		{"./cifar10", Source{Dir: "./cifar10", Format: FormatIDX}},
		{"embedded", Source{Format: FormatIDX}},
	} {
		c.want.Spec = c.spec
		if s, err := ResolveSource(c.spec); err != nil || s != c.want {
			t.Errorf("ResolveSource(%q) = %+v, %v; want %+v", c.spec, s, err, c.want)
		}
	}
	for _, c := range []struct{ spec, want string }{
		{"cifar10:", `data source "cifar10:" names no directory`},
		{"imagefolder:", `data source "imagefolder:" names no directory`},
		{"imagefolder::16", `data source "imagefolder::16" names no directory`},
		{"imagefolder:/d:0", `data source "imagefolder:/d:0": image size "0" is not a whole number from 1 to 1024 (a directory whose name holds a colon needs an explicit :SIZE)`},
		{"imagefolder:/d:2048", `data source "imagefolder:/d:2048": image size "2048" is not a whole number from 1 to 1024 (a directory whose name holds a colon needs an explicit :SIZE)`},
		{"imagefolder:a:b", `data source "imagefolder:a:b": image size "b" is not a whole number from 1 to 1024 (a directory whose name holds a colon needs an explicit :SIZE)`},
	} {
		if _, err := ResolveSource(c.spec); err == nil || err.Error() != c.want {
			t.Errorf("ResolveSource(%q): error %v, want %q", c.spec, err, c.want)
		}
	}
}
