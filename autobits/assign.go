package autobits

import (
	"encoding/json"
	"fmt"
	"strings"

	"qat/layers"
	"qat/model"
)

// Widths are the bit widths the search gives weights and outputs, widest
// first.
var Widths = []int{8, 6, 4, 2}

// LayerBits is one layer's weight and output widths.
type LayerBits struct {
	Layer  string `json:"layer"`
	Weight int    `json:"weight_bits"`
	Act    int    `json:"act_bits"`
}

// Assignment gives every conv and linear layer of a model, in graph
// order, its widths.
type Assignment []LayerBits

// WeightedLayers returns the names of the conv and linear layers of g in
// graph order: the layers an Assignment covers.
func WeightedLayers(g model.Graph) []string {
	var names []string
	for _, n := range g.Nodes {
		if n.Weighted() {
			names = append(names, n.Name)
		}
	}
	return names
}

// Uniform returns the assignment of weight width w and output width a to
// every layer named.
func Uniform(names []string, w, a int) Assignment {
	out := make(Assignment, len(names))
	for i, n := range names {
		out[i] = LayerBits{Layer: n, Weight: w, Act: a}
	}
	return out
}

// with returns a copy of a with layer i's weight (weight true) or output
// width set to bits.
func (a Assignment) with(i int, weight bool, bits int) Assignment {
	out := append(Assignment(nil), a...)
	if weight {
		out[i].Weight = bits
	} else {
		out[i].Act = bits
	}
	return out
}

// uniform reports whether every layer has the widths of the first, and
// those widths.
func (a Assignment) uniform() (w, act int, ok bool) {
	if len(a) == 0 {
		return 0, 0, false
	}
	for _, l := range a[1:] {
		if l.Weight != a[0].Weight || l.Act != a[0].Act {
			return 0, 0, false
		}
	}
	return a[0].Weight, a[0].Act, true
}

// String is "W8A8" for a uniform assignment, else every layer's widths,
// e.g. "c1 W8A8, c2 W4A8, fc1 W2A8, fc2 W8A8".
func (a Assignment) String() string {
	if w, act, ok := a.uniform(); ok {
		return fmt.Sprintf("W%dA%d", w, act)
	}
	parts := make([]string, len(a))
	for i, l := range a {
		parts[i] = fmt.Sprintf("%s W%dA%d", l.Layer, l.Weight, l.Act)
	}
	return strings.Join(parts, ", ")
}

// QuantConfig returns a's quant config: W8A8 defaults, an 8-bit input
// and an override of every layer's weight and output width. It names no
// observer (each command applies its own default).
func (a Assignment) QuantConfig() layers.QuantConfig {
	qc := layers.QuantConfig{Weight: layers.QuantSpec{Bits: 8}, Act: layers.QuantSpec{Bits: 8},
		Input: &layers.QuantSpec{Bits: 8}, Layers: map[string]layers.LayerQuant{}}
	for _, l := range a {
		qc.Layers[l.Layer] = layers.LayerQuant{Weight: &layers.QuantSpec{Bits: l.Weight}, Act: &layers.QuantSpec{Bits: l.Act}}
	}
	return qc
}

// QuantConfigJSON returns a's QuantConfig as indented JSON, the form
// `qat finetune --quant-config` and `qat calibrate --quant-config` read.
func (a Assignment) QuantConfigJSON() ([]byte, error) {
	b, err := json.MarshalIndent(a.QuantConfig(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("autobits: quant config: %w", err)
	}
	return append(b, '\n'), nil
}
