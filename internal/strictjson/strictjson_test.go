package strictjson

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

type spec struct {
	Bits     int  `json:"bits,omitempty"`
	Affine   bool `json:"affine,omitempty"`
	Observer string
}

type config struct {
	Weight spec            `json:"weight"`
	Input  *spec           `json:"input,omitempty"`
	Layers map[string]spec `json:"layers,omitempty"`
	List   []spec          `json:"list,omitempty"`
}

func TestDecode(t *testing.T) {
	for _, c := range []struct {
		in, err string // err "" means accepted
	}{
		{`{"weight": {"bits": 4}, "layers": {"c1": {"bits": 8}}}`, ""},
		{` {"weight": {"Observer": "mse"}} ` + "\n", ""},
		{`{"weight": {"bits": 4, "bits": 8}}`, `duplicate field "weight.bits"`},
		{`{"layers": {"c1": {}, "c1": {}}}`, `duplicate field "layers.c1"`},
		{`{"input": null}`, `"input" is null`},
		{`{"list": [{"bits": 4}, null]}`, `"list.1" is null`},
		{`null`, `the top-level value is null`},
		{`{"weight": {}} {}`, `data after the JSON value`},
		{`{"weight": {}} x`, `data after the JSON value`},
		{`{"weight": {"bitz": 4}}`, `unknown field "bitz"`},
		{`{"weight": {"Bits": 4}}`, `unknown field "weight.Bits" (field names are case-sensitive)`},
		{`{"layers": {"c1": {"BITS": 4}}}`, `unknown field "layers.c1.BITS"`},
		{`{"list": [{"Affine": true}]}`, `unknown field "list.0.Affine"`},
		{`{"weight": {"bits": "4"}}`, `cannot unmarshal string`},
		{`{"weight": `, `unexpected end of JSON input`},
		{``, `unexpected end of JSON input`},
		{`{`, `unexpected end of JSON input`},
		{`{"weight": {"bits": 4}`, `unexpected end of JSON input`},
		{`{"list": [`, `unexpected end of JSON input`},
	} {
		var v config
		err := Decode([]byte(c.in), &v)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("Decode(%s): %v", c.in, err)
		case c.err != "" && err == nil:
			t.Errorf("Decode(%s) accepted it, want an error containing %q", c.in, c.err)
		case c.err != "" && !strings.Contains(err.Error(), c.err):
			t.Errorf("Decode(%s): %q, want an error containing %q", c.in, err, c.err)
		}
	}
	var v config
	if err := Decode([]byte(`{"weight": {"bits": 4}, "layers": {"c1": {"affine": true}}}`), &v); err != nil ||
		v.Weight.Bits != 4 || !v.Layers["c1"].Affine {
		t.Errorf("decoded %+v, %v", v, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"weight": {"bits": 4}, "layers": {"c1": {"bits": 8}}, "list": [{}]}`))
	f.Add([]byte(`{"weight": {"bits": 4, "bits": 4}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v config
		if err := Decode(b, &v); err != nil {
			return
		}
		// What Decode accepts, the standard decoder accepts too, to the
		// same value.
		var w config
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatalf("json.Unmarshal rejects what Decode accepted: %v", err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("Decode gave %+v, json.Unmarshal %+v", v, w)
		}
	})
}
