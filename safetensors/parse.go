package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrFormat is wrapped by every error that reports a malformed file.
var ErrFormat = errors.New("malformed safetensors file")

// ReadFile reads and parses the named file. Errors name the file.
func ReadFile(path string) (*File, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err // an *os.PathError, which names the file
	}
	f, err := Parse(buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return f, nil
}

// Read reads r to EOF and parses what it read.
func Read(r io.Reader) (*File, error) {
	buf, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read safetensors: %w", err)
	}
	return Parse(buf)
}

// Parse parses a whole safetensors file held in buf. The tensors' Data
// alias buf. A file that holds a digest (MetaDigest, see Seal) must match
// it. Every error wraps ErrFormat.
func Parse(buf []byte) (*File, error) {
	f, err := parse(buf)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if want, ok := f.Metadata[MetaDigest]; ok {
		if got := f.Digest(); got != want {
			return nil, fmt.Errorf("%w: digest mismatch: metadata %s is %s but the content hashes to %s: the file is damaged",
				ErrFormat, MetaDigest, want, got)
		}
	}
	return f, nil
}

// entry is a tensor's header entry before the data buffer is cut.
type entry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end int
}

// parse is Parse without the ErrFormat wrapping and the digest check.
func parse(buf []byte) (*File, error) {
	header, data, err := splitHeader(buf)
	if err != nil {
		return nil, err
	}
	f := &File{Metadata: map[string]string{}, Tensors: map[string]Tensor{}}
	entries, err := parseHeader(header, f.Metadata)
	if err != nil {
		return nil, err
	}
	if err := checkSpans(entries, len(data)); err != nil {
		return nil, err
	}
	if err := cutData(entries, data, f.Tensors); err != nil {
		return nil, err
	}
	return f, nil
}

// splitHeader splits buf after its 8-byte size into the header, which
// must be UTF-8 starting with '{', and the data buffer.
func splitHeader(buf []byte) (header, data []byte, err error) {
	if len(buf) < 8 {
		return nil, nil, fmt.Errorf("file is %d bytes, shorter than the 8-byte header size", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header size %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(buf)-8) {
		return nil, nil, fmt.Errorf("header size %d exceeds the %d bytes that follow the size", n, len(buf)-8)
	}
	header, data = buf[8:8+n], buf[8+n:]
	if !utf8.Valid(header) {
		return nil, nil, errors.New("header is not valid UTF-8")
	}
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, errors.New("header is not a JSON object: it does not start with '{'")
	}
	return header, data, nil
}

// checkSpans checks that every entry's offsets lie in a data buffer of
// size bytes and span exactly the bytes its dtype and shape take.
func checkSpans(entries []entry, size int) error {
	for i := range entries {
		e := &entries[i]
		n, err := byteSize(e.dtype, e.shape)
		if err != nil {
			return fmt.Errorf("tensor %q: %v", e.name, err)
		}
		if e.end > size {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] end beyond the %d-byte data buffer", e.name, e.begin, e.end, size)
		}
		if e.end-e.begin != n {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] span %d bytes, but %s %v takes %d", e.name, e.begin, e.end, e.end-e.begin, e.dtype, e.shape, n)
		}
	}
	return nil
}

// cutData sorts entries by offsets and adds to tensors each one's tensor
// over its bytes of data, which the entries must tile without holes,
// overlaps or trailing bytes.
func cutData(entries []entry, data []byte, tensors map[string]Tensor) error {
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.name < b.name
	})
	at, prev := 0, ""
	for _, e := range entries {
		switch {
		case e.begin > at:
			return fmt.Errorf("hole in the data buffer: bytes [%d, %d) belong to no tensor (next is %q)", at, e.begin, e.name)
		case e.begin < at:
			return fmt.Errorf("tensor %q at [%d, %d] overlaps tensor %q, which ends at %d", e.name, e.begin, e.end, prev, at)
		}
		tensors[e.name] = Tensor{DType: e.dtype, Shape: e.shape, Data: data[e.begin:e.end:e.end]}
		at, prev = e.end, e.name
	}
	if at != len(data) {
		return fmt.Errorf("%d trailing bytes after the last tensor, which ends at %d", len(data)-at, at)
	}
	return nil
}

// parseHeader decodes the header object, filling meta, and returns the
// tensor entries with dtype, shape and offsets checked for form only.
func parseHeader(header []byte, meta map[string]string) ([]entry, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	var entries []entry
	seen := map[string]bool{}
	err := object(dec, func(key string) error {
		if seen[key] {
			return fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if key == metadataKey {
			return parseMetadata(dec, meta)
		}
		if key == "" {
			return errors.New("empty tensor name")
		}
		e, err := parseEntry(dec, key)
		if err != nil {
			return fmt.Errorf("tensor %q: %v", key, err)
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("header has data after its JSON object")
	}
	return entries, nil
}

// jsonErr describes a decoding error for the header.
func jsonErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("header is not valid JSON: %v", err)
}

// object reads a JSON object from dec, calling field after reading each key
// to read its value.
func object(dec *json.Decoder, field func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonErr(err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("got %s, want a JSON object", describe(tok))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonErr(err)
		}
		if err := field(tok.(string)); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return jsonErr(err)
	}
	return nil
}

// describe names a JSON token for an error message.
func describe(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case json.Number:
		return "the number " + string(t)
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func parseMetadata(dec *json.Decoder, meta map[string]string) error {
	err := object(dec, func(key string) error {
		if _, dup := meta[key]; dup {
			return fmt.Errorf("duplicate key %q", key)
		}
		tok, err := dec.Token()
		if err != nil {
			return jsonErr(err)
		}
		s, ok := tok.(string)
		if !ok {
			return fmt.Errorf("key %q: got %s, want a string", key, describe(tok))
		}
		meta[key] = s
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %v", metadataKey, err)
	}
	return nil
}

// parseEntry reads the header entry of tensor name: an object with
// exactly the fields dtype, shape and data_offsets, checked for form.
func parseEntry(dec *json.Decoder, name string) (entry, error) {
	e := entry{name: name}
	var offsets []int
	var haveDType, haveShape bool
	err := object(dec, func(key string) error {
		var err error
		switch key {
		case "dtype":
			if haveDType {
				return fmt.Errorf("duplicate key %q", key)
			}
			haveDType = true
			e.dtype, err = parseDType(dec)
		case "shape":
			if haveShape {
				return fmt.Errorf("duplicate key %q", key)
			}
			haveShape = true
			e.shape, err = ints(dec, "shape", "dimension")
		case "data_offsets":
			if offsets != nil {
				return fmt.Errorf("duplicate key %q", key)
			}
			offsets, err = parseOffsets(dec)
		default:
			return fmt.Errorf("unknown field %q", key)
		}
		return err
	})
	switch {
	case err != nil:
		return e, err
	case !haveDType:
		return e, errors.New(`missing field "dtype"`)
	case !haveShape:
		return e, errors.New(`missing field "shape"`)
	case offsets == nil:
		return e, errors.New(`missing field "data_offsets"`)
	}
	e.begin, e.end = offsets[0], offsets[1]
	return e, nil
}

// parseDType reads the value of a dtype field: a string naming a known
// dtype.
func parseDType(dec *json.Decoder) (DType, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonErr(err)
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("dtype: got %s, want a string", describe(tok))
	}
	if d := DType(s); d.Valid() {
		return d, nil
	}
	return "", fmt.Errorf("unknown dtype %q", s)
}

// parseOffsets reads the value of a data_offsets field: [begin, end] with
// begin <= end. The result is non-nil.
func parseOffsets(dec *json.Decoder) ([]int, error) {
	o, err := ints(dec, "data_offsets", "offset")
	if err != nil {
		return nil, err
	}
	if len(o) != 2 {
		return nil, fmt.Errorf("data_offsets has %d values, want [begin, end]", len(o))
	}
	if o[0] > o[1] {
		return nil, fmt.Errorf("data_offsets [%d, %d] begins after it ends", o[0], o[1])
	}
	return o, nil
}

// ints reads a JSON array of non-negative integers that fit in an int.
// The result is non-nil.
func ints(dec *json.Decoder, field, what string) ([]int, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(err)
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("%s: got %s, want an array", field, describe(tok))
	}
	v := []int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s: got %s, want an integer", field, describe(tok))
		}
		s := string(num)
		x, err := strconv.ParseUint(s, 10, 64)
		switch {
		case strings.HasPrefix(s, "-"):
			return nil, fmt.Errorf("%s: %s %s is negative", field, what, s)
		case errors.Is(err, strconv.ErrRange) || err == nil && x > math.MaxInt:
			return nil, fmt.Errorf("%s: %s %s is too large", field, what, s)
		case err != nil:
			return nil, fmt.Errorf("%s: %s %s is not an integer", field, what, s)
		}
		v = append(v, int(x))
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, jsonErr(err)
	}
	return v, nil
}
