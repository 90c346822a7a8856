package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"qat/internal/atomicfile"
)

// pathFlag is a file a command reads or writes, by the flag that names it.
type pathFlag struct{ flag, path string }

// distinct refuses, as a usage error, an output that names an input or
// another output of the same command: the same path once resolved
// (absolute, cleaned, symbolic links followed) or the same file (a hard
// link, another bind mount). Empty paths are skipped.
func distinct(inputs, outputs []pathFlag) error {
	for i, o := range outputs {
		if o.path == "" {
			continue
		}
		for _, in := range inputs {
			if in.path != "" && sameFile(in.path, o.path) {
				return usagef("%s %s is the same file as %s %s: writing it would destroy the input", o.flag, o.path, in.flag, in.path)
			}
		}
		for _, p := range outputs[:i] {
			if p.path != "" && sameFile(p.path, o.path) {
				return usagef("%s %s is the same file as %s %s", o.flag, o.path, p.flag, p.path)
			}
		}
	}
	return nil
}

// sameFile reports whether paths a and b name the same file.
func sameFile(a, b string) bool {
	ra, rb := resolve(a), resolve(b)
	if ra == rb {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// resolve returns p absolute and cleaned, with symbolic links followed as
// far as the path exists (a file to be created resolves through its
// directory).
func resolve(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	dir, base := filepath.Split(abs)
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return filepath.Join(r, base)
	}
	return abs
}

// lazyFile is a file opened with flags (truncating or appending) on its
// first Write, so that a run that fails before writing anything leaves
// an existing file as it was. It is for one writer.
type lazyFile struct {
	path  string
	flags int
	f     *os.File
}

func (l *lazyFile) Write(b []byte) (int, error) {
	if l.f == nil {
		f, err := os.OpenFile(l.path, l.flags, 0o644)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	return l.f.Write(b)
}

// Close closes the file if it was opened; a second Close does nothing.
func (l *lazyFile) Close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// trimMetrics drops from the metrics file at path the records of steps
// after step, those a resumed run is about to write again (the steps its
// interrupted predecessor ran after its last checkpoint), rewriting the
// file atomically. A missing file is left missing; a line without a step
// is an error, and the file is then left as it was.
func trimMetrics(path string, step int64) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []byte
	dropped := 0
	for i, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r struct {
			Step *int64 `json:"step"`
		}
		if err := json.Unmarshal(line, &r); err != nil || r.Step == nil {
			return fmt.Errorf("metrics %s: line %d is not a record with a step: %v", path, i+1, err)
		}
		if *r.Step > step {
			dropped++
			continue
		}
		keep = append(keep, line...)
	}
	if dropped == 0 {
		return nil
	}
	return atomicfile.WriteBytes(path, keep)
}
