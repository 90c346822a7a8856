// Package strictjson decodes the JSON files a user writes by hand (model
// specs, quant configs, experiment files) strictly: a mistake in them is
// an error that names the field, never a silently different run.
//
// Decode rejects, beyond what encoding/json rejects: a field the target
// type does not have (keys match case-sensitively, so "Bits" is not
// "bits"), a key repeated within one object, a null value, and anything
// but white space after the value. Errors name the field by its path from
// the top ("layers.c1.weight.bits").
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// Decode decodes the JSON value b into v, a non-nil pointer, strictly (see
// the package documentation).
func Decode(b []byte, v any) error {
	if err := scan(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if err := caseExact(b, reflect.TypeOf(v)); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// scan walks b's tokens and rejects repeated keys, nulls and trailing
// data, naming the path.
func scan(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := value(dec, nil); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

func where(path []string) string {
	if len(path) == 0 {
		return "the top-level value"
	}
	return strconv.Quote(strings.Join(path, "."))
}

// errEnd reports input that ends inside a JSON value.
var errEnd = errors.New("unexpected end of JSON input")

// token is dec.Token with the end of input inside a value reported as
// errEnd.
func token(dec *json.Decoder) (json.Token, error) {
	t, err := dec.Token()
	if err == io.EOF {
		return nil, errEnd
	}
	return t, err
}

// value consumes one JSON value from dec.
func value(dec *json.Decoder, path []string) error {
	t, err := token(dec)
	if err != nil {
		return err
	}
	switch t := t.(type) {
	case nil:
		return fmt.Errorf("%s is null: give a value or leave the field out", where(path))
	case json.Delim:
		switch t {
		case '{':
			seen := map[string]bool{}
			for dec.More() {
				k, err := token(dec)
				if err != nil {
					return err
				}
				key := k.(string)
				p := append(path[:len(path):len(path)], key)
				if seen[key] {
					return fmt.Errorf("duplicate field %s", where(p))
				}
				seen[key] = true
				if err := value(dec, p); err != nil {
					return err
				}
			}
		case '[':
			for i := 0; dec.More(); i++ {
				if err := value(dec, append(path[:len(path):len(path)], strconv.Itoa(i))); err != nil {
					return err
				}
			}
		}
		_, err := token(dec) // the closing delimiter
		return err
	}
	return nil
}

// caseExact rejects keys that encoding/json matched to a struct field of t
// only case-insensitively ("Bits" for `json:"bits"`).
func caseExact(b []byte, t reflect.Type) error {
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	return matchCase(raw, t, nil)
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

func matchCase(raw any, t reflect.Type, path []string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshaler) {
		return nil // the type decodes itself
	}
	switch r := raw.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			fields := map[string]reflect.Type{}
			collect(t, fields)
			for k, v := range r {
				p := append(path[:len(path):len(path)], k)
				ft, ok := fields[k]
				if !ok {
					return fmt.Errorf("unknown field %s (field names are case-sensitive)", where(p))
				}
				if err := matchCase(v, ft, p); err != nil {
					return err
				}
			}
		case reflect.Map:
			for k, v := range r {
				if err := matchCase(v, t.Elem(), append(path[:len(path):len(path)], k)); err != nil {
					return err
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, v := range r {
				if err := matchCase(v, t.Elem(), append(path[:len(path):len(path)], strconv.Itoa(i))); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// collect adds the JSON names of struct type t's fields (and of embedded
// structs') to fields.
func collect(t reflect.Type, fields map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			for et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				collect(et, fields)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
}
