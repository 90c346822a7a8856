package autobits

import (
	"reflect"
	"testing"

	"qat/layers"
)

// An assignment prints as one W<w>A<a> when uniform, else layer by layer,
// and its quant config JSON parses (strictly, as --quant-config does)
// back to its QuantConfig: 8-bit defaults and input, every layer's widths.
func TestAssignment(t *testing.T) {
	names := []string{"c1", "fc"}
	if s := Uniform(names, 4, 8).String(); s != "W4A8" {
		t.Errorf("uniform: %q", s)
	}
	a := Assignment{{"c1", 8, 6}, {"fc", 2, 8}}
	if s := a.String(); s != "c1 W8A6, fc W2A8" {
		t.Errorf("mixed: %q", s)
	}
	js, err := a.QuantConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	qc, err := layers.ParseQuantConfig(js)
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	if !reflect.DeepEqual(qc, a.QuantConfig()) {
		t.Errorf("parsed %+v, want %+v", qc, a.QuantConfig())
	}
	if qc.InputSpec().Bits != 8 || qc.WeightSpec("c1").Bits != 8 || qc.ActSpec("c1").Bits != 6 || qc.WeightSpec("fc").Bits != 2 || qc.ActSpec("fc").Bits != 8 {
		t.Errorf("quant config %s", js)
	}
}
