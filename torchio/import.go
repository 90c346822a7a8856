package torchio

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"qat/layers"
	"qat/model"
	"qat/safetensors"
)

// maxProblems caps the problems an Import error lists.
const maxProblems = 20

// Retarget returns g for the given input shape (nil: g's) and for the
// class count of sd: the first dimension of the weight of g's last node,
// if that is a linear node whose weight sd holds as a matrix (else g's
// class count stays, and Import reports the weight). The input shape is
// not in a state_dict: a linear layer after a flatten fixes only the
// product of its dimensions.
func Retarget(g model.Graph, sd StateDict, input []int) (model.Graph, error) {
	if input == nil {
		input = g.Input
	}
	classes := g.Classes
	if len(g.Nodes) > 0 {
		last := g.Nodes[len(g.Nodes)-1]
		if t, ok := sd[last.Name+".weight"]; ok && last.Op == model.OpLinear && len(t.Shape) == 2 {
			classes = t.Shape[0]
		}
	}
	if classes == g.Classes && slices.Equal(input, g.Input) {
		if err := g.Validate(); err != nil {
			return model.Graph{}, err
		}
		return g, nil
	}
	return g.Resized(input, classes)
}

// Import returns a float model of graph g holding the tensors of sd,
// which must be exactly those g's nodes name (model.Node.ParamNames) with
// exactly the shapes they have on g's input (model.Node.ParamShapes):
// float tensors, finite, BatchNorm running variances not negative, and
// each num_batches_tracked an int64 scalar. Otherwise the error lists
// every missing, unexpected, misshapen or bad tensor, sorted by name
// (the first 20, then how many more). Nothing of the model's
// initialisation is left: every tensor of it comes from sd.
func Import(g model.Graph, sd StateDict) (*layers.Model, error) {
	want, err := expected(g)
	if err != nil {
		return nil, err
	}
	var problems []string
	for name, w := range want {
		t, ok := sd[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s %v is missing", name, w.shape))
		} else if p := w.check(t); p != "" {
			problems = append(problems, name+" "+p)
		}
	}
	for name, t := range sd {
		if _, ok := want[name]; !ok {
			problems = append(problems, fmt.Sprintf("%s %v is not a tensor of the model", name, t.Shape))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		n := len(problems)
		if n > maxProblems {
			problems = append(problems[:maxProblems], fmt.Sprintf("and %d more", n-maxProblems))
		}
		return nil, fmt.Errorf("state_dict does not fit model %s (%d problems): %s", g.Name, n, strings.Join(problems, "; "))
	}
	m, err := layers.NewModel(g, 0)
	if err != nil {
		return nil, err
	}
	f := &safetensors.File{}
	if err := m.SaveState(f); err != nil {
		return nil, err
	}
	for name := range f.Tensors {
		t, ok := sd[name]
		switch {
		case !ok:
			return nil, fmt.Errorf("model %s has tensor %s, which its graph does not name", g.Name, name)
		case want[name].role == counter:
			f.Tensors[name] = safetensors.FromInt64(t.Shape, t.Int)
		default:
			f.Tensors[name] = safetensors.FromFloat32(t.Shape, t.Float)
		}
	}
	if m, _, err = layers.LoadState(f); err != nil {
		return nil, fmt.Errorf("model %s: %w", g.Name, err)
	}
	return m, nil
}

// role is what a tensor of a model is.
type role int

const (
	param    role = iota // a weight, a bias or a BatchNorm weight, bias or running_mean
	variance             // a BatchNorm running_var
	counter              // a BatchNorm num_batches_tracked
)

// tensorSpec is a tensor a model expects.
type tensorSpec struct {
	shape []int
	role  role
}

// expected returns the tensors of g's nodes by name.
func expected(g model.Graph) (map[string]tensorSpec, error) {
	shapes, err := g.Shapes()
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", g.Name, err)
	}
	src, _ := g.Sources() // Shapes checked them
	want := map[string]tensorSpec{}
	for i, n := range g.Nodes {
		in := g.Input
		if j := src[i][0]; j >= 0 {
			in = shapes[j]
		}
		ps := n.ParamShapes(in)
		for k, name := range n.ParamNames() {
			want[name] = tensorSpec{shape: ps[k]}
		}
		if n.BN != "" {
			v, c := n.BN+".running_var", n.BN+".num_batches_tracked"
			want[v] = tensorSpec{want[v].shape, variance}
			want[c] = tensorSpec{want[c].shape, counter}
		}
	}
	return want, nil
}

// check returns what is wrong with tensor t, "" if nothing.
func (s tensorSpec) check(t Tensor) string {
	switch {
	case !slices.Equal(t.Shape, s.shape):
		return fmt.Sprintf("has shape %v, the model's is %v", t.Shape, s.shape)
	case s.role == counter && t.Int == nil:
		return fmt.Sprintf("is %s, not an int64 counter", t.DType)
	case s.role != counter && t.Float == nil:
		return fmt.Sprintf("is %s, not a floating-point tensor", t.DType)
	}
	for i, v := range t.Float {
		switch {
		case math.IsNaN(float64(v)) || math.IsInf(float64(v), 0):
			return fmt.Sprintf("element %d is %v", i, v)
		case v < 0 && s.role == variance:
			return fmt.Sprintf("element %d is negative (%v): a variance", i, v)
		}
	}
	return ""
}
