package safetensors

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strconv"
	"unicode/utf8"

	"qat/internal/atomicfile"
)

// MaxHeaderSize is the largest header, in bytes, that Parse accepts and
// Write produces: 100 MB, the reference implementation's limit.
const MaxHeaderSize = 100_000_000

// metadataKey is the header key of the metadata object; no tensor may use it.
const metadataKey = "__metadata__"

// File is the content of a safetensors file: free-form string metadata and
// named tensors. A File from Parse has non-nil maps; a nil map is an empty
// one to Write.
type File struct {
	Metadata map[string]string
	Tensors  map[string]Tensor
}

// Names returns the tensor names of f in increasing byte order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for name := range f.Tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// layout returns the names of f's tensors in the order the reference writer
// stores them: descending dtype rank, then name.
func (f *File) layout() []string {
	names := f.Names()
	sort.SliceStable(names, func(i, j int) bool {
		return dtypes[f.Tensors[names[i]].DType].rank > dtypes[f.Tensors[names[j]].DType].rank
	})
	return names
}

// validate checks everything Write requires of f.
func (f *File) validate() error {
	for k, v := range f.Metadata {
		if !utf8.ValidString(k) {
			return fmt.Errorf("%w: metadata key %q is not valid UTF-8", ErrInvalid, k)
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: metadata %q: value is not valid UTF-8", ErrInvalid, k)
		}
	}
	for name, t := range f.Tensors {
		switch {
		case name == "":
			return fmt.Errorf("%w: empty tensor name", ErrInvalid)
		case name == metadataKey:
			return fmt.Errorf("%w: tensor name %q is reserved for metadata", ErrInvalid, name)
		case !utf8.ValidString(name):
			return fmt.Errorf("%w: tensor name %q is not valid UTF-8", ErrInvalid, name)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
	}
	return nil
}

// header validates f and returns its padded header and the tensor names in
// storage order.
func (f *File) header() ([]byte, []string, error) {
	if err := f.validate(); err != nil {
		return nil, nil, err
	}
	h := []byte{'{'}
	if len(f.Metadata) > 0 {
		keys := make([]string, 0, len(f.Metadata))
		for k := range f.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		h = appendString(h, metadataKey)
		h = append(h, ':', '{')
		for i, k := range keys {
			if i > 0 {
				h = append(h, ',')
			}
			h = appendString(h, k)
			h = append(h, ':')
			h = appendString(h, f.Metadata[k])
		}
		h = append(h, '}')
	}
	names := f.layout()
	offset := 0
	for i, name := range names {
		t := f.Tensors[name]
		if i > 0 || len(f.Metadata) > 0 {
			h = append(h, ',')
		}
		h = appendString(h, name)
		h = append(h, `:{"dtype":`...)
		h = appendString(h, string(t.DType))
		h = append(h, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				h = append(h, ',')
			}
			h = strconv.AppendInt(h, int64(d), 10)
		}
		h = append(h, `],"data_offsets":[`...)
		h = strconv.AppendInt(h, int64(offset), 10)
		h = append(h, ',')
		offset += len(t.Data)
		h = strconv.AppendInt(h, int64(offset), 10)
		h = append(h, "]}"...)
	}
	h = append(h, '}')
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	if len(h) > MaxHeaderSize {
		return nil, nil, fmt.Errorf("%w: header of %d bytes exceeds the limit of %d", ErrInvalid, len(h), MaxHeaderSize)
	}
	return h, names, nil
}

// appendString appends s, valid UTF-8, as a JSON string escaped as
// serde_json (the reference writer's encoder) escapes it: quote, backslash
// and control characters only, with \b \f \n \r \t short forms.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// Write writes f to w in safetensors format. It validates f first and
// writes nothing if f is invalid; the error then wraps ErrInvalid.
func (f *File) Write(w io.Writer) error {
	h, names, err := f.header()
	if err != nil {
		return err
	}
	if err := f.write(w, h, names); err != nil {
		return fmt.Errorf("write safetensors: %w", err)
	}
	return nil
}

func (f *File) write(w io.Writer, h []byte, names []string) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(h)))
	bw.Write(n[:])
	bw.Write(h)
	for _, name := range names {
		bw.Write(f.Tensors[name].Data)
	}
	// A bufio.Writer keeps its first error and returns it from Flush.
	return bw.Flush()
}

// WriteFile writes f to the named file atomically (internal/atomicfile):
// it validates f, writes a temporary file in the same directory, syncs it
// to disk and renames it to path, replacing any existing file. On error
// the temporary file is removed and an existing file at path is left as
// it was. The file gets permissions 0644.
func (f *File) WriteFile(path string) error {
	h, names, err := f.header()
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.Write(path, func(w io.Writer) error { return f.write(w, h, names) })
}
