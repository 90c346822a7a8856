package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Named sources accepted by ResolveSource; anything else is a directory
// (see ResolveSource).
const (
	SourceMNIST        = "mnist"
	SourceFashionMNIST = "fashion-mnist"
	SourceEmbedded     = "embedded"
)

// Formats of the files of a Source. A spec "cifar10:DIR" is a directory
// of FormatCIFAR10, "imagefolder:DIR[:SIZE]" one of FormatImageFolder.
const (
	// FormatIDX is MNIST's idx files, as LoadSplit reads them (and the
	// embedded sample).
	FormatIDX = "idx"
	// FormatCIFAR10 is CIFAR-10's binary version, as LoadCIFAR10 reads it.
	FormatCIFAR10 = "cifar10"
	// FormatImageFolder is a folder of class folders of images, as
	// LoadImageFolder reads it.
	FormatImageFolder = "imagefolder"
)

// fetchHint is appended to errors about missing downloaded data.
const fetchHint = "run scripts/fetch-data.sh to download it (QAT_DATA sets the cache directory)"

// A Source is where a --data flag says the data is: a directory of
// MNIST-format files, of CIFAR-10 files or of class folders of images, or
// the sample embedded in the binary.
type Source struct {
	// Spec is the flag value the source was resolved from.
	Spec string
	// Dir is the directory of the files, "" for the embedded sample.
	Dir string
	// Format is the format of the files: FormatIDX, FormatCIFAR10 or
	// FormatImageFolder; "" means FormatIDX.
	Format string
	// Size is the side of the images of FormatImageFolder, 0 for the
	// other formats.
	Size int
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
// sample built into the binary, "cifar10:DIR" is the directory DIR of
// CIFAR-10 files, "imagefolder:DIR" and "imagefolder:DIR:SIZE" are the
// image folder DIR with images of SIZE x SIZE pixels (DefaultFolderSize
// if not given; a DIR holding a colon needs the SIZE), and anything else
// is a directory path of MNIST-format files (write ./mnist for a
// directory called mnist). It does not look at the file system; Load
// reports missing data.
func ResolveSource(spec string) (Source, error) {
	switch spec {
	case "":
		return Source{}, errors.New("empty data source: want mnist, fashion-mnist, embedded, cifar10:DIR, imagefolder:DIR[:SIZE] or a directory")
	case SourceEmbedded:
		return Source{Spec: spec, Format: FormatIDX}, nil
	case SourceMNIST, SourceFashionMNIST:
		cache, err := CacheDir()
		if err != nil {
			return Source{}, err
		}
		return Source{Spec: spec, Dir: filepath.Join(cache, spec), Format: FormatIDX}, nil
	}
	if dir, ok := strings.CutPrefix(spec, FormatCIFAR10+":"); ok {
		if dir == "" {
			return Source{}, fmt.Errorf("data source %q names no directory", spec)
		}
		return Source{Spec: spec, Dir: dir, Format: FormatCIFAR10}, nil
	}
	if dir, ok := strings.CutPrefix(spec, FormatImageFolder+":"); ok {
		size := DefaultFolderSize
		if i := strings.LastIndexByte(dir, ':'); i >= 0 {
			n, err := strconv.Atoi(dir[i+1:])
			if err != nil || n < 1 || n > MaxFolderSize {
				return Source{}, fmt.Errorf("data source %q: image size %q is not a whole number from 1 to %d (a directory whose name holds a colon needs an explicit :SIZE)",
					spec, dir[i+1:], MaxFolderSize)
			}
			dir, size = dir[:i], n
		}
		if dir == "" {
			return Source{}, fmt.Errorf("data source %q names no directory", spec)
		}
		return Source{Spec: spec, Dir: dir, Format: FormatImageFolder, Size: size}, nil
	}
	return Source{Spec: spec, Dir: spec, Format: FormatIDX}, nil
}

// Load loads split Train or Test of the source, as LoadEmbedded,
// LoadSplit, LoadCIFAR10 or LoadImageFolder, and names the Dataset after
// the spec and the split, e.g. "mnist train". Missing data is an error wrapping fs.ErrNotExist that
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
	switch s.Format {
	case FormatCIFAR10:
		return LoadCIFAR10(s.Dir, split)
	case FormatImageFolder:
		return LoadImageFolder(s.Dir, split, s.Size)
	}
	d, err := LoadSplit(s.Dir, split)
	if err != nil && named && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w; %s", err, fetchHint)
	}
	return d, err
}
