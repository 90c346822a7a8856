// Package atomicfile writes files so that a reader, or a crash, sees either
// the old content or the whole new one, never a mix or a truncated file.
//
// Write writes to a temporary file in the destination's directory (named
// ".NAME.tmp-*", so that it is hidden and recognisable), syncs it, gives
// it permissions 0644 and renames it over the destination; the directory
// is then synced on a best-effort basis (some systems cannot sync a
// directory; that is not reported). On any error, the temporary file is
// removed and the destination is left as it was: a full disk or a failing
// writer never destroys the previous file.
//
// A process killed while writing leaves its temporary file behind. Write
// removes such leftovers of the same destination (".NAME.tmp-*" and
// Files' ".NAME.pending") once they are older than StaleAfter, so that
// repeated crashes do not fill the disk; younger ones may belong to a
// write still running in another process and are left alone.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Write calls write with a buffered writer on a temporary file and, if it
// and every step after it succeed, renames the file to path. Errors name
// path.
func Write(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	removeStale(dir, base)
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<16)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// StaleAfter is the age after which Write removes a temporary file that
// a killed writer of the same destination left behind.
const StaleAfter = time.Hour

// removeStale removes the temporary files of destination base in dir
// older than StaleAfter, ignoring errors (another process may remove them
// first).
func removeStale(dir, base string) {
	for _, pattern := range []string{"." + base + ".tmp-*", "." + base + ".pending"} {
		names, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, n := range names {
			if st, err := os.Lstat(n); err == nil && st.Mode().IsRegular() && time.Since(st.ModTime()) > StaleAfter {
				os.Remove(n)
			}
		}
	}
}

// WriteBytes writes b to path atomically (see Write).
func WriteBytes(path string, b []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// Files writes several files as one: each is written to its temporary
// file first, and only when all of them are complete are they renamed to
// their destinations, so that a failure leaves none of the new files and
// every old one as it was (but for a rename failing midway, which leaves
// the earlier ones renamed).
type Files struct {
	entries []entry
}

type entry struct {
	path  string
	write func(io.Writer) error
}

// Add schedules write for path.
func (fs *Files) Add(path string, write func(io.Writer) error) {
	fs.entries = append(fs.entries, entry{path, write})
}

// Commit writes every file added, as described above. Errors name the
// file.
func (fs *Files) Commit() (err error) {
	tmps := make([]string, 0, len(fs.entries))
	defer func() {
		if err != nil {
			for _, t := range tmps {
				os.Remove(t)
			}
		}
	}()
	for _, e := range fs.entries {
		dir, base := filepath.Split(e.path)
		t := filepath.Join(dir, "."+base+".pending")
		// Write each one atomically under a hidden name first: a crash
		// leaves at most hidden files, never a destination half made.
		if err := Write(t, e.write); err != nil {
			return fmt.Errorf("write %s: %w", e.path, err)
		}
		tmps = append(tmps, t)
	}
	for i, e := range fs.entries {
		if err := os.Rename(tmps[i], e.path); err != nil {
			tmps = tmps[i:]
			return fmt.Errorf("write %s: %w", e.path, err)
		}
	}
	return nil
}
