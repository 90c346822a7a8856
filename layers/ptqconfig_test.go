package layers

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPTQConfig checks the ptq object of a quant config: parsed strictly
// like the rest, iterations checked, described by String, and absent from
// the JSON of a config that has none (so checkpoints without it are
// unchanged).
func TestPTQConfig(t *testing.T) {
	c, err := ParseQuantConfig([]byte(`{"weight": {"bits": 4}, "act": {}, "ptq": {"cle": true, "bias_correction": true, "adaround": {}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.PTQ.String(); s != "CLE, bias correction, AdaRound 10000 iters" {
		t.Errorf("String() = %q", s)
	}
	if c, err = ParseQuantConfig([]byte(`{"weight": {}, "act": {}, "ptq": {"adaround": {"iters": 50}}}`)); err != nil || c.PTQ.String() != "AdaRound 50 iters" || !c.PTQ.Any() {
		t.Errorf("iters 50: %v, %q", err, c.PTQ.String())
	}
	var none *PTQConfig
	if none.Any() || none.String() != "" || (&PTQConfig{}).Any() {
		t.Error("nil or zero PTQConfig selects something")
	}
	for _, bad := range []struct{ json, want string }{
		{`{"weight": {}, "act": {}, "ptq": {"cle": true, "equalize": true}}`, "equalize"},
		{`{"weight": {}, "act": {}, "ptq": {"adaround": {"iters": -1}}}`, "adaround iters -1"},
		{`{"weight": {}, "act": {}, "ptq": {"adaround": {"iters": 100000000}}}`, "adaround iters 100000000"},
		{`{"weight": {}, "act": {}, "ptq": null}`, "ptq"},
	} {
		if _, err := ParseQuantConfig([]byte(bad.json)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: got %v, want an error naming %q", bad.json, err, bad.want)
		}
	}
	b, err := json.Marshal(QuantConfig{})
	if err != nil || strings.Contains(string(b), "ptq") {
		t.Errorf("zero config marshals to %s (%v)", b, err)
	}
}
