package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// MaxIDXBytes is the largest element count ReadIDX accepts, and the most
// pixels a CIFAR-10 or image-folder split may hold: 2 GiB of unsigned
// bytes by default (the whole MNIST training set is 47 MB). A program may
// lower or raise it before it loads data (qat's --max-data-bytes does);
// since a header's sizes are only believed as the data arrives, the
// limit bounds memory even for a compressed file.
var MaxIDXBytes int64 = 1 << 31

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
			return fmt.Errorf("shape %v exceeds the limit of %d elements (--max-data-bytes raises it)", a.Dims, MaxIDXBytes)
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
	in := &idxReader{name: name}
	br := bufio.NewReader(r)
	if head, err := br.Peek(2); err == nil && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return IDX{}, fmt.Errorf("%s: corrupt gzip header: %w", name, err)
		}
		defer zr.Close()
		in.r, in.gz = zr, true
	} else {
		in.r = br
	}
	ndims, err := in.readMagic()
	if err != nil {
		return IDX{}, err
	}
	dims, total, err := in.readDims(ndims)
	if err != nil {
		return IDX{}, err
	}
	data, err := in.readData(dims, total)
	if err != nil {
		return IDX{}, err
	}
	if err := in.checkEnd(dims, total); err != nil {
		return IDX{}, err
	}
	return IDX{Dims: dims, Data: data}, nil
}

// idxReader reads the parts of one idx array from r, decompressed when
// gz, naming the input name in errors.
type idxReader struct {
	r    io.Reader
	name string
	gz   bool
}

// readErr describes a read error other than a clean end of input.
func (in *idxReader) readErr(what string, err error) error {
	if in.gz {
		return fmt.Errorf("%s: corrupt or truncated gzip stream while reading %s: %w", in.name, what, err)
	}
	return fmt.Errorf("%s: reading %s: %w", in.name, what, err)
}

// readMagic reads and checks the magic (00 00, the unsigned byte type
// code, the rank) and returns the number of dimensions.
func (in *idxReader) readMagic() (int, error) {
	var magic [4]byte
	if n, err := readFull(in.r, magic[:]); err != nil {
		return 0, in.readErr("magic", err)
	} else if n < len(magic) {
		return 0, fmt.Errorf("%s: truncated header: want %d bytes of magic, got %d", in.name, len(magic), n)
	}
	if magic[0] != 0 || magic[1] != 0 {
		return 0, fmt.Errorf("%s: bad magic % x: not an idx file (want 00 00 then type and rank)", in.name, magic)
	}
	if magic[2] != idxUint8 {
		t, ok := idxTypeNames[magic[2]]
		if !ok {
			t = "unknown"
		}
		return 0, fmt.Errorf("%s: unsupported element type 0x%02x (%s): only 0x08 (unsigned byte) is supported", in.name, magic[2], t)
	}
	ndims := int(magic[3])
	if ndims < 1 || ndims > 4 {
		return 0, fmt.Errorf("%s: unsupported number of dimensions %d (want 1 to 4)", in.name, ndims)
	}
	return ndims, nil
}

// readDims reads ndims big-endian dimensions, each positive, and returns
// them with their product, which must be at most MaxIDXBytes.
func (in *idxReader) readDims(ndims int) ([]int, int64, error) {
	raw := make([]byte, 4*ndims)
	if n, err := readFull(in.r, raw); err != nil {
		return nil, 0, in.readErr("dimensions", err)
	} else if n < len(raw) {
		return nil, 0, fmt.Errorf("%s: truncated header: want %d bytes of dimensions, got %d", in.name, len(raw), n)
	}
	dims := make([]int, ndims)
	total := int64(1)
	for i := range dims {
		d := int64(binary.BigEndian.Uint32(raw[4*i:]))
		if d == 0 {
			return nil, 0, fmt.Errorf("%s: dimension %d is zero", in.name, i)
		}
		if total > MaxIDXBytes/d {
			return nil, 0, fmt.Errorf("%s: shape exceeds the limit of %d elements (dimension %d is %d; --max-data-bytes raises it)", in.name, MaxIDXBytes, i, d)
		}
		total *= d
		dims[i] = int(d)
	}
	return dims, total, nil
}

// readData reads the total bytes of data of shape dims.
func (in *idxReader) readData(dims []int, total int64) ([]byte, error) {
	// Grow the buffer as data arrives rather than trusting the header with
	// a 2 GiB allocation; it ends exactly total bytes long.
	buf := make([]byte, min(total, 1<<20))
	got := 0
	for {
		n, err := readFull(in.r, buf[got:])
		got += n
		if err != nil {
			return nil, in.readErr("data", err)
		}
		if got < len(buf) {
			return nil, fmt.Errorf("%s: truncated data: shape %v needs %d bytes, got %d", in.name, dims, total, got)
		}
		if int64(got) == total {
			return buf, nil
		}
		grown := make([]byte, min(2*int64(len(buf)), total))
		copy(grown, buf)
		buf = grown
	}
}

// checkEnd checks that the input ends after the total bytes of data of
// shape dims. Reading to the end also makes gzip check its CRC and length
// trailer.
func (in *idxReader) checkEnd(dims []int, total int64) error {
	extra, err := io.Copy(io.Discard, in.r)
	if err != nil {
		return in.readErr("end of input", err)
	}
	if extra > 0 {
		return fmt.Errorf("%s: %d trailing bytes after the %d bytes of data of shape %v", in.name, extra, total, dims)
	}
	return nil
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
