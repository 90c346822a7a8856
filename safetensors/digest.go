package safetensors

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
)

// MetaDigest is the metadata key of Seal's digest.
const MetaDigest = "qat.sha256"

// Digest returns the SHA-256 of f's content as 64 lowercase hex digits:
// every metadata entry but MetaDigest in key order (key and value), then
// every tensor in name order (name, dtype, shape in decimal and data),
// each string followed by a zero byte. It does not depend on the layout
// of a file, only on what it holds.
func (f *File) Digest() string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	keys := make([]string, 0, len(f.Metadata))
	for k := range f.Metadata {
		if k != MetaDigest {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		field(k)
		field(f.Metadata[k])
	}
	for _, name := range f.Names() {
		t := f.Tensors[name]
		field(name)
		field(string(t.DType))
		var shape []byte
		for i, d := range t.Shape {
			if i > 0 {
				shape = append(shape, ',')
			}
			shape = strconv.AppendInt(shape, int64(d), 10)
		}
		field(string(shape))
		h.Write(t.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Seal records f's Digest in its metadata under MetaDigest (allocating the
// map if needed), so that Parse detects any later change to the file's
// content. Call it after the last change to f, before writing it.
func (f *File) Seal() {
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	f.Metadata[MetaDigest] = f.Digest()
}
