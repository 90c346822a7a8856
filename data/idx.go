package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// MaxIDXBytes is the largest element count ReadIDX accepts (2 GiB of
// unsigned bytes). The whole MNIST training set is 47 MB.
const MaxIDXBytes = 1 << 31

// idxUint8 is the idx type code of unsigned bytes, the only one supported.
const idxUint8 = 0x08

// idxTypeNames names the element types of the idx format, for errors.
var idxTypeNames = map[byte]string{
	0x08: "unsigned byte",
	0x09: "signed byte",
	0x0B: "int16",
	0x0C: "int32",
	0x0D: "float32",
	0x0E: "float64",
}

// IDX is an array of unsigned bytes in the idx format of the MNIST files:
// Dims is its shape, outermost first, and Data its elements in row-major
// order. A valid IDX has 1 to 4 dimensions, each positive, and exactly as
// many elements as their product (at most MaxIDXBytes).
type IDX struct {
	Dims []int
	Data []uint8
}

// validate checks the shape of a against its data.
func (a IDX) validate() error {
	if len(a.Dims) < 1 || len(a.Dims) > 4 {
		return fmt.Errorf("unsupported number of dimensions %d (want 1 to 4)", len(a.Dims))
	}
	n := 1
	for i, d := range a.Dims {
		if d <= 0 || int64(d) > 1<<32-1 {
			return fmt.Errorf("dimension %d is %d (want 1 to 2^32-1)", i, d)
		}
		if int64(n)*int64(d) > MaxIDXBytes {
			return fmt.Errorf("shape %v exceeds the limit of %d elements", a.Dims, MaxIDXBytes)
		}
		n *= d
	}
	if len(a.Data) != n {
		return fmt.Errorf("shape %v has %d elements but data has %d", a.Dims, n, len(a.Data))
	}
	return nil
}

// WriteIDX writes a to w in the raw (uncompressed) idx format: the magic
// 00 00 08 ndims, the dimensions as big-endian uint32, then the data. An IDX
// that is not valid is an error and nothing is written.
func WriteIDX(w io.Writer, a IDX) error {
	if err := a.validate(); err != nil {
		return fmt.Errorf("write idx: %w", err)
	}
	hdr := make([]byte, 4+4*len(a.Dims))
	hdr[2] = idxUint8
	hdr[3] = byte(len(a.Dims))
	for i, d := range a.Dims {
		binary.BigEndian.PutUint32(hdr[4+4*i:], uint32(d))
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("write idx: %w", err)
	}
	if _, err := w.Write(a.Data); err != nil {
		return fmt.Errorf("write idx: %w", err)
	}
	return nil
}

// ReadIDXFile reads the idx file at path, raw or gzip-compressed, as
// ReadIDX with the path as name.
func ReadIDXFile(path string) (IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return IDX{}, err // *fs.PathError names the file
	}
	defer f.Close()
	return ReadIDX(f, path)
}

// ReadIDX reads one idx array of unsigned bytes from r. The input may be
// raw or gzip-compressed; gzip is recognised by its magic bytes 1f 8b, not
// by a file name. name identifies the input in errors, every one of which
// starts with it and says what is wrong: a bad magic, an element type other
// than unsigned byte, a dimension count outside 1..4, a zero dimension, a
// shape over MaxIDXBytes elements, a truncated header or data (with the
// expected and actual byte counts), bytes after the data, or a corrupt or
// truncated gzip stream.
func ReadIDX(r io.Reader, name string) (IDX, error) {
	br := bufio.NewReader(r)
	gz := false
	if head, err := br.Peek(2); err == nil && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return IDX{}, fmt.Errorf("%s: corrupt gzip header: %w", name, err)
		}
		defer zr.Close()
		r, gz = zr, true
	} else {
		r = br
	}
	// readErr describes a read error other than a clean end of input.
	readErr := func(what string, err error) error {
		if gz {
			return fmt.Errorf("%s: corrupt or truncated gzip stream while reading %s: %w", name, what, err)
		}
		return fmt.Errorf("%s: reading %s: %w", name, what, err)
	}

	var magic [4]byte
	if n, err := readFull(r, magic[:]); err != nil {
		return IDX{}, readErr("magic", err)
	} else if n < len(magic) {
		return IDX{}, fmt.Errorf("%s: truncated header: want %d bytes of magic, got %d", name, len(magic), n)
	}
	if magic[0] != 0 || magic[1] != 0 {
		return IDX{}, fmt.Errorf("%s: bad magic % x: not an idx file (want 00 00 then type and rank)", name, magic)
	}
	if magic[2] != idxUint8 {
		t, ok := idxTypeNames[magic[2]]
		if !ok {
			t = "unknown"
		}
		return IDX{}, fmt.Errorf("%s: unsupported element type 0x%02x (%s): only 0x08 (unsigned byte) is supported", name, magic[2], t)
	}
	ndims := int(magic[3])
	if ndims < 1 || ndims > 4 {
		return IDX{}, fmt.Errorf("%s: unsupported number of dimensions %d (want 1 to 4)", name, ndims)
	}
	raw := make([]byte, 4*ndims)
	if n, err := readFull(r, raw); err != nil {
		return IDX{}, readErr("dimensions", err)
	} else if n < len(raw) {
		return IDX{}, fmt.Errorf("%s: truncated header: want %d bytes of dimensions, got %d", name, len(raw), n)
	}
	a := IDX{Dims: make([]int, ndims)}
	total := int64(1)
	for i := range a.Dims {
		d := int64(binary.BigEndian.Uint32(raw[4*i:]))
		if d == 0 {
			return IDX{}, fmt.Errorf("%s: dimension %d is zero", name, i)
		}
		total *= d // at most 2^31 * (2^32-1): no overflow
		if total > MaxIDXBytes {
			return IDX{}, fmt.Errorf("%s: shape exceeds the limit of %d elements (dimension %d is %d)", name, MaxIDXBytes, i, d)
		}
		a.Dims[i] = int(d)
	}

	// Grow the buffer as data arrives rather than trusting the header with
	// a 2 GiB allocation; it ends exactly total bytes long.
	buf := make([]byte, min(total, 1<<20))
	got := 0
	for {
		n, err := readFull(r, buf[got:])
		got += n
		if err != nil {
			return IDX{}, readErr("data", err)
		}
		if got < len(buf) {
			return IDX{}, fmt.Errorf("%s: truncated data: shape %v needs %d bytes, got %d", name, a.Dims, total, got)
		}
		if int64(got) == total {
			break
		}
		grown := make([]byte, min(2*int64(len(buf)), total))
		copy(grown, buf)
		buf = grown
	}
	a.Data = buf
	// Anything after the data is an error. Reading to the end also makes
	// gzip check its CRC and length trailer.
	extra, err := io.Copy(io.Discard, r)
	if err != nil {
		return IDX{}, readErr("end of input", err)
	}
	if extra > 0 {
		return IDX{}, fmt.Errorf("%s: %d trailing bytes after the %d bytes of data of shape %v", name, extra, total, a.Dims)
	}
	return a, nil
}

// readFull reads into p until it is full or the input ends. It returns
// the count read and nil at a clean end of input, and any other error
// (a truncated gzip stream reports io.ErrUnexpectedEOF, which is returned).
func readFull(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
