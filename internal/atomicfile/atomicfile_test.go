package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.bin")
	if err := WriteBytes(path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	// A failing writer, after writing part of the new content, leaves the
	// old file as it was and no temporary file behind.
	boom := errors.New("disk full")
	err := Write(path, func(w io.Writer) error {
		w.Write([]byte("sec"))
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v: want the writer's, naming the path", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first" {
		t.Errorf("after a failed write the file holds %q", b)
	}
	if err := WriteBytes(path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "second" {
		t.Errorf("the file holds %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only out.bin", entries)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("permissions %v", st.Mode().Perm())
	}
	// A directory that does not exist: an error naming the path.
	if err := WriteBytes(filepath.Join(dir, "no", "x"), nil); err == nil || !strings.Contains(err.Error(), "no") {
		t.Errorf("missing directory: %v", err)
	}
}

// A failure in any file of a Files leaves no new file and every old one.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := WriteBytes(a, []byte("old a")); err != nil {
		t.Fatal(err)
	}
	var fs Files
	fs.Add(a, func(w io.Writer) error { _, err := w.Write([]byte("new a")); return err })
	fs.Add(b, func(w io.Writer) error { return errors.New("no space") })
	if err := fs.Commit(); err == nil || !strings.Contains(err.Error(), b) {
		t.Errorf("Commit: %v, want an error naming %s", err, b)
	}
	if got, _ := os.ReadFile(a); string(got) != "old a" {
		t.Errorf("a holds %q after the failed commit", got)
	}
	if _, err := os.Stat(b); !os.IsNotExist(err) {
		t.Errorf("b exists after the failed commit: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %v, want only a", entries)
	}
	fs = Files{}
	fs.Add(a, func(w io.Writer) error { _, err := w.Write([]byte("new a")); return err })
	fs.Add(b, func(w io.Writer) error { _, err := w.Write([]byte("new b")); return err })
	if err := fs.Commit(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{a: "new a", b: "new b"} {
		if got, _ := os.ReadFile(p); string(got) != want {
			t.Errorf("%s holds %q", p, got)
		}
	}
}

// Write removes what a killed writer of the same file left behind once it
// is stale, and leaves young temporary files and other files alone.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.safetensors")
	old, young, other := filepath.Join(dir, ".ck.safetensors.tmp-123"), filepath.Join(dir, ".ck.safetensors.tmp-456"),
		filepath.Join(dir, ".other.tmp-1")
	for _, p := range []string{old, young, other} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * StaleAfter)
	for _, p := range []string{old, other} {
		if err := os.Chtimes(p, long, long); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteBytes(path, []byte("x")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{old: false, young: true, other: true, path: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", p, err == nil, want)
		}
	}
}
