package qmodel

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"qat/safetensors"
)

// FuzzParse checks that Parse never panics, that every error wraps
// ErrFormat, and that whatever Parse accepts is valid and survives
// Write -> Parse unchanged, with Write deterministic. Since nearly every
// mutation breaks the checksum, each input that is a well-formed
// container is also tried with its checksum recomputed, so that the
// fuzzer reaches the model's validation.
func FuzzParse(f *testing.F) {
	for _, m := range []*Model{
		testModel(RequantFloat, 8, 8),
		testModel(RequantFloat, 4, 2),
		testModel(RequantFixed, 4, 8),
		testModel(RequantFixed, 2, 4),
		dagModel(RequantFloat),
		dagModel(RequantFixed),
		dynamicModel(),
		floatInputModel(),
	} {
		b := encode(f, m)
		f.Add(b)
		f.Add(b[:len(b)/2])
		flipped := bytes.Clone(b)
		flipped[len(b)-1] ^= 0xFF
		f.Add(flipped)
		f.Add(bytes.Replace(b, []byte(`\"in\":12`), []byte(`\"in\":13`), 1))
	}
	f.Add([]byte{})
	f.Add([]byte("\x02\x00\x00\x00\x00\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseRoundTrip(t, b)
		if c, err := safetensors.Parse(b); err == nil && c.Metadata != nil {
			c.Metadata[MetaChecksum] = Checksum(c)
			var w bytes.Buffer
			if err := c.Write(&w); err == nil {
				parseRoundTrip(t, w.Bytes())
			}
		}
	})
}

// parseRoundTrip is FuzzParse's check of one input.
func parseRoundTrip(t *testing.T, b []byte) {
	m, err := Parse(b)
	if err != nil {
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("error does not wrap ErrFormat: %v", err)
		}
		return
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("Parse accepted an invalid model: %v", err)
	}
	var w bytes.Buffer
	if err := Write(&w, m); err != nil {
		t.Fatalf("Write of a parsed model: %v", err)
	}
	m2, err := Parse(w.Bytes())
	if err != nil {
		t.Fatalf("Parse of a written model: %v", err)
	}
	m.Warnings = nil // a version-1 input is written as version 2
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("Write -> Parse changed the model:\n%+v\n%+v", m, m2)
	}
	if again := encode(t, m2); !bytes.Equal(again, w.Bytes()) {
		t.Fatal("Write is not deterministic")
	}
}
