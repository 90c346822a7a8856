package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Named sources accepted by ResolveSource; anything else is a directory.
const (
	SourceMNIST        = "mnist"
	SourceFashionMNIST = "fashion-mnist"
	SourceEmbedded     = "embedded"
)

// fetchHint is appended to errors about missing downloaded data.
const fetchHint = "run scripts/fetch-data.sh to download it (QAT_DATA sets the cache directory)"

// A Source is where a --data flag says the data is: a directory of
// MNIST-format files, or the sample embedded in the binary.
type Source struct {
	// Spec is the flag value the source was resolved from.
	Spec string
	// Dir is the directory of the files, "" for the embedded sample.
	Dir string
}

// Embedded reports whether s is the sample embedded in the binary.
func (s Source) Embedded() bool { return s.Dir == "" }

// CacheDir returns the directory scripts/fetch-data.sh installs data
// into: $QAT_DATA if set and not empty, else ~/.cache/qat.
func CacheDir() (string, error) {
	if d := os.Getenv("QAT_DATA"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("data cache directory: set QAT_DATA: %w", err)
	}
	return filepath.Join(home, ".cache", "qat"), nil
}

// ResolveSource interprets the value of a --data flag: "mnist" and
// "fashion-mnist" are those subdirectories of CacheDir, "embedded" is the
// sample built into the binary, and anything else is a directory path
// (write ./mnist for a directory called mnist). It does not look at the
// file system; Load reports missing data.
func ResolveSource(spec string) (Source, error) {
	switch spec {
	case "":
		return Source{}, errors.New("empty data source: want mnist, fashion-mnist, embedded or a directory")
	case SourceEmbedded:
		return Source{Spec: spec}, nil
	case SourceMNIST, SourceFashionMNIST:
		cache, err := CacheDir()
		if err != nil {
			return Source{}, err
		}
		return Source{Spec: spec, Dir: filepath.Join(cache, spec)}, nil
	}
	return Source{Spec: spec, Dir: spec}, nil
}

// Load loads split Train or Test of the source, as LoadEmbedded or
// LoadSplit, and names the Dataset after the spec and the split, e.g.
// "mnist train". Missing data is an error wrapping fs.ErrNotExist that
// says which directory or file is missing and, for the named sources, to
// run scripts/fetch-data.sh.
func (s Source) Load(split string) (*Dataset, error) {
	var (
		d   *Dataset
		err error
	)
	if s.Embedded() {
		d, err = LoadEmbedded(split)
	} else {
		d, err = s.loadDir(split)
	}
	if err != nil {
		return nil, err
	}
	d.Name = s.Spec + " " + split
	return d, nil
}

func (s Source) loadDir(split string) (*Dataset, error) {
	named := s.Spec == SourceMNIST || s.Spec == SourceFashionMNIST
	if _, err := os.Stat(s.Dir); err != nil {
		if named && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s data not found: %s does not exist; %s: %w", s.Spec, s.Dir, fetchHint, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("data directory: %w", err)
	}
	d, err := LoadSplit(s.Dir, split)
	if err != nil && named && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w; %s", err, fetchHint)
	}
	return d, err
}
