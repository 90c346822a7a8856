package safetensors

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// A sealed file reads back; any flipped bit of it is rejected (the
// digest, the JSON or the offsets catch it) but for flips in the digest's
// own key, which leave an unsealed file (a reader that requires the seal,
// such as train's checkpoint loader, rejects that); an unsealed file reads
// as before.
func TestSeal(t *testing.T) {
	f := &File{
		Metadata: map[string]string{"qat.format": "x/1", "note": "n"},
		Tensors: map[string]Tensor{
			"w": FromFloat32([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
			"b": FromInt8([]int{3}, []int8{-1, 0, 1}),
		},
	}
	f.Seal()
	var buf bytes.Buffer
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if g.Metadata[MetaDigest] != f.Digest() || g.Digest() != f.Digest() {
		t.Error("the digest does not survive Write and Parse")
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x04
		if g, err := Parse(c); err == nil {
			if _, sealed := g.Metadata[MetaDigest]; sealed {
				t.Fatalf("byte %d flipped: accepted", i)
			}
		} else if !errors.Is(err, ErrFormat) {
			t.Fatalf("byte %d flipped: %v does not wrap ErrFormat", i, err)
		}
	}
	last := bytes.Clone(b)
	last[len(last)-1] ^= 0x01
	if _, err := Parse(last); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("flipped data: %v, want a digest mismatch", err)
	}
	delete(f.Metadata, MetaDigest)
	buf.Reset()
	if err := f.Write(&buf); err != nil {
		t.Fatal(err)
	}
	c := buf.Bytes()
	c[len(c)-1] ^= 0x01 // unsealed: no way to tell
	if _, err := Parse(c); err != nil {
		t.Errorf("unsealed file: %v", err)
	}
}

// The digest covers content, not layout: the same content in another
// metadata map order or with the tensors added in another order has the
// same digest; any change of a value, name, dtype or shape changes it.
func TestDigestContent(t *testing.T) {
	base := func() *File {
		return &File{Metadata: map[string]string{"a": "1", "b": "2"}, Tensors: map[string]Tensor{
			"x": FromInt8([]int{2, 2}, []int8{1, 2, 3, 4}), "y": FromInt8([]int{1}, []int8{5})}}
	}
	d := base().Digest()
	for name, edit := range map[string]func(*File){
		"metadata value": func(f *File) { f.Metadata["a"] = "3" },
		"metadata key":   func(f *File) { f.Metadata["c"] = f.Metadata["a"]; delete(f.Metadata, "a") },
		"tensor data":    func(f *File) { f.Tensors["y"] = FromInt8([]int{1}, []int8{6}) },
		"tensor name":    func(f *File) { f.Tensors["z"] = f.Tensors["y"]; delete(f.Tensors, "y") },
		"tensor shape":   func(f *File) { f.Tensors["x"] = FromInt8([]int{4}, []int8{1, 2, 3, 4}) },
		"tensor dtype":   func(f *File) { f.Tensors["y"] = FromUint8([]int{1}, []uint8{5}) },
	} {
		f := base()
		edit(f)
		if f.Digest() == d {
			t.Errorf("%s changed: same digest", name)
		}
	}
	f := base()
	f.Metadata[MetaDigest] = "anything"
	if f.Digest() != d {
		t.Error("the digest depends on the digest key")
	}
}
