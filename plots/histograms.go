package plots

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Model is a quantized model's tensors as its quantizers see them, for
// Histograms.
type Model struct {
	// Label names the model in titles and file names.
	Label string
	// Source says where the activations and the input come from, e.g.
	// "256 samples of mnist test"; "" means from no real data, and only
	// the weights are drawn.
	Source string
	// Tensors are the quantizers' tensors, in the order they are drawn.
	Tensors []QuantTensor
}

// QuantTensor is the tensor a quantizer of a Model sees.
type QuantTensor struct {
	// Name is the quantizer's; Layer the layer's whose weight or output it
	// quantizes (none for the input).
	Name, Layer string
	Role        Role
	// Folded says that a weight is scaled by its layer's BN before it is
	// quantized (conv+BN folding).
	Folded bool
	Tensor
}

// Histograms draws a Histogram of every tensor of m into dir and returns
// the paths written (with those written before an error, if any):
// <prefix>hist_<layer>_weight (the weight, "as quantized (BN folded)"
// where Folded), <prefix>hist_<layer>_act (the layer's output before its
// activation quantizer) and <prefix>hist_input (the normalised input),
// where prefix is m's label and '_' and layer names are sanitized for
// file names. Without a Source only the weights are drawn.
func Histograms(dir string, m Model) ([]string, error) {
	pre := filepath.Join(dir, prefix(m.Label)+"hist_")
	var paths []string
	for _, c := range m.Tensors {
		var base, title, xlabel string
		switch c.Role {
		case RoleWeight:
			base, xlabel = pre+sanitize(c.Layer)+"_weight", "weight value"
			title = fmt.Sprintf("%s: %s weight", m.Label, c.Layer)
			if c.Folded {
				title += " as quantized (BN folded)"
			}
		case RoleAct:
			base, xlabel = pre+sanitize(c.Layer)+"_act", "activation value"
			title = fmt.Sprintf("%s: %s output before quantization (%s)", m.Label, c.Layer, m.Source)
		default:
			base, xlabel = pre+"input", "input value (normalised)"
			title = fmt.Sprintf("%s: input (%s)", m.Label, m.Source)
		}
		if c.Role != RoleWeight && m.Source == "" {
			continue
		}
		ps, err := Histogram(base, title, c.Tensor, xlabel)
		paths = append(paths, ps...)
		if err != nil {
			return paths, fmt.Errorf("quantizer %s: %w", c.Name, err)
		}
	}
	return paths, nil
}

// sanitize replaces the characters of s other than letters, digits, '.',
// '-' and '_' by '_', for file names.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}
