package layers

import (
	"fmt"
	"math"
	"os"
	"strings"

	"qat/internal/strictjson"
)

// Layer types of a LayerSpec.
const (
	TypeConv    = "conv"
	TypeLinear  = "linear"
	TypeMaxPool = "maxpool"
	TypeAvgPool = "avgpool"
	TypeFlatten = "flatten"
	TypeReLU    = "relu"
	TypeReLU6   = "relu6"
)

// ModelSpec describes a network as a sequence of layers, the form of a
// model config file (JSON) and of a checkpoint's "qat.arch" metadata.
type ModelSpec struct {
	// Name is the architecture's name, e.g. "lenet".
	Name string `json:"name"`
	// Input is the shape of one sample, [C, H, W].
	Input []int `json:"input"`
	// Classes is the number of logits the last layer produces.
	Classes int `json:"classes"`
	// Layers run in order on the (quantized) input.
	Layers []LayerSpec `json:"layers"`
}

// LayerSpec is one layer. Conv and linear layers own parameters named
// Name+".weight" and Name+".bias" (the PyTorch state_dict keys of a module
// of that name); a conv with BN names its BatchNorm2d module BN, whose
// parameters are BN+".weight", ".bias", ".running_mean", ".running_var"
// and ".num_batches_tracked".
type LayerSpec struct {
	// Type is one of the Type constants.
	Type string `json:"type"`
	// Name is the module name (conv and linear: required, unique).
	Name string `json:"name,omitempty"`
	// Out is the number of output channels (conv) or features (linear).
	Out int `json:"out,omitempty"`
	// Kernel is the square kernel size (conv, pools). Stride 0 means 1 for
	// conv and Kernel for pools; Padding is conv zero padding.
	Kernel  int `json:"kernel,omitempty"`
	Stride  int `json:"stride,omitempty"`
	Padding int `json:"padding,omitempty"`
	// BN names a BatchNorm2d module after the conv; "" means none.
	BN string `json:"bn,omitempty"`
	// Act is the activation fused after the layer (and its BN): "",
	// "relu" or "relu6". Its output is what the activation quantizer sees.
	Act string `json:"act,omitempty"`
	// NoBias drops the conv or linear bias (PyTorch bias=False).
	NoBias bool `json:"no_bias,omitempty"`
}

// Quantized reports whether the layer has weights and hence weight and
// output quantizers.
func (l LayerSpec) Quantized() bool { return l.Type == TypeConv || l.Type == TypeLinear }

// Builtin returns the named built-in architecture: "mlp" (784-256-128-10
// with ReLU) or "lenet" (conv 1→16 k5 + BN + ReLU + maxpool 2, conv 16→32
// k5 + BN + ReLU + maxpool 2, flatten 512, fc 512→128 + ReLU, fc 128→10),
// the models of the PyTorch peer script, with its module names.
func Builtin(name string) (ModelSpec, error) {
	switch name {
	case "mlp":
		return ModelSpec{Name: "mlp", Input: []int{1, 28, 28}, Classes: 10, Layers: []LayerSpec{
			{Type: TypeFlatten},
			{Type: TypeLinear, Name: "fc1", Out: 256, Act: TypeReLU},
			{Type: TypeLinear, Name: "fc2", Out: 128, Act: TypeReLU},
			{Type: TypeLinear, Name: "fc3", Out: 10},
		}}, nil
	case "lenet":
		return ModelSpec{Name: "lenet", Input: []int{1, 28, 28}, Classes: 10, Layers: []LayerSpec{
			{Type: TypeConv, Name: "c1", Out: 16, Kernel: 5, BN: "b1", Act: TypeReLU},
			{Type: TypeMaxPool, Kernel: 2},
			{Type: TypeConv, Name: "c2", Out: 32, Kernel: 5, BN: "b2", Act: TypeReLU},
			{Type: TypeMaxPool, Kernel: 2},
			{Type: TypeFlatten},
			{Type: TypeLinear, Name: "fc1", Out: 128, Act: TypeReLU},
			{Type: TypeLinear, Name: "fc2", Out: 10},
		}}, nil
	}
	return ModelSpec{}, fmt.Errorf("unknown model %q (want mlp, lenet or a config file)", name)
}

// LoadSpec returns the built-in architecture of that name or, if arg names
// an existing file, the ModelSpec read from it (JSON; unknown fields are
// an error).
func LoadSpec(arg string) (ModelSpec, error) {
	if s, err := Builtin(arg); err == nil {
		return s, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		if os.IsNotExist(err) {
			return ModelSpec{}, fmt.Errorf("model %q is neither mlp, lenet nor a config file", arg)
		}
		return ModelSpec{}, fmt.Errorf("model config: %w", err)
	}
	s, err := ParseSpec(b)
	if err != nil {
		return ModelSpec{}, fmt.Errorf("model config %s: %w", arg, err)
	}
	return s, nil
}

// ParseSpec decodes a JSON ModelSpec strictly (internal/strictjson) and
// validates it.
func ParseSpec(b []byte) (ModelSpec, error) {
	var s ModelSpec
	if err := strictjson.Decode(b, &s); err != nil {
		return ModelSpec{}, fmt.Errorf("decode: %w", err)
	}
	if err := s.Validate(); err != nil {
		return ModelSpec{}, err
	}
	return s, nil
}

// Validate checks the spec and that the layer shapes chain: every error
// names the layer by index and name.
func (s ModelSpec) Validate() error {
	_, err := s.Shapes()
	return err
}

// Size limits of a ModelSpec, checked by Validate and Shapes before
// anything is allocated, so that a spec with huge layers is an error
// rather than an out-of-memory crash. A program may raise them before it
// builds models (qat's --max-params and --max-activations do).
var (
	// MaxParams bounds the number of parameters (weights, biases, BN
	// parameters and statistics) of a model: 2^28 is 1 GiB of float32,
	// before gradients and optimizer state.
	MaxParams int64 = 1 << 28
	// MaxActivations bounds the values one sample produces, summed over
	// the input and every layer's output: the per-sample memory of a
	// training step's activations.
	MaxActivations int64 = 1 << 26
)

// maxSize bounds every single size of a spec (dimensions, channels,
// kernel, stride, padding), so that the shape arithmetic cannot overflow
// before the limits above are checked.
const maxSize = 1 << 24

// Shapes returns the per-sample output shape of every layer, checking the
// spec on the way.
func (s ModelSpec) Shapes() ([][]int, error) {
	if len(s.Input) != 3 {
		return nil, fmt.Errorf("input shape %v: want [C, H, W]", s.Input)
	}
	for _, d := range s.Input {
		if d < 1 || d > maxSize {
			return nil, fmt.Errorf("input shape %v: every dimension must be in [1, %d]", s.Input, maxSize)
		}
	}
	acts := product(s.Input)
	var params int64
	if s.Classes < 2 {
		return nil, fmt.Errorf("classes %d: want at least 2", s.Classes)
	}
	if len(s.Layers) == 0 {
		return nil, fmt.Errorf("no layers")
	}
	names := map[string]bool{}
	shape := append([]int(nil), s.Input...)
	out := make([][]int, len(s.Layers))
	for i, l := range s.Layers {
		var next []int
		err := l.checkSizes()
		if err == nil {
			next, err = l.outShape(shape)
		}
		if err == nil {
			err = l.checkNames(names)
		}
		if err == nil {
			params = add(params, l.params(shape))
			acts = add(acts, product(next))
			switch {
			case params > MaxParams:
				err = fmt.Errorf("the model reaches %d parameters here, above the limit of %d (--max-params raises it)", params, MaxParams)
			case acts > MaxActivations:
				err = fmt.Errorf("the model reaches %d activation values per sample here, above the limit of %d (--max-activations raises it)", acts, MaxActivations)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s %s): %w", i, l.Type, l.Name, err)
		}
		shape = next
		out[i] = next
	}
	if len(shape) != 1 || shape[0] != s.Classes {
		return nil, fmt.Errorf("the last layer gives shape %v per sample, want [%d] logits", shape, s.Classes)
	}
	return out, nil
}

// checkSizes bounds each size of l by maxSize.
func (l LayerSpec) checkSizes() error {
	for _, v := range []struct {
		name string
		v    int
	}{{"out", l.Out}, {"kernel", l.Kernel}, {"stride", l.Stride}, {"padding", l.Padding}} {
		if v.v > maxSize {
			return fmt.Errorf("%s %d is above %d", v.name, v.v, maxSize)
		}
	}
	return nil
}

// params returns the number of parameters of l on an input of shape in
// (which outShape accepted): weights and bias, and a BN's weight, bias,
// running mean and variance.
func (l LayerSpec) params(in []int) int64 {
	var n int64
	switch l.Type {
	case TypeConv:
		n = product([]int{l.Out, in[0], l.Kernel, l.Kernel})
	case TypeLinear:
		n = product([]int{l.Out, in[0]})
	default:
		return 0
	}
	if !l.NoBias {
		n = add(n, int64(l.Out))
	}
	if l.BN != "" {
		n = add(n, 4*int64(l.Out))
	}
	return n
}

// product returns the product of non-negative sizes, math.MaxInt64 if it
// would overflow.
func product(sizes []int) int64 {
	n := int64(1)
	for _, d := range sizes {
		if d != 0 && n > math.MaxInt64/int64(d) {
			return math.MaxInt64
		}
		n *= int64(d)
	}
	return n
}

// add returns a+b for non-negative a and b, math.MaxInt64 if it would
// overflow.
func add(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func (l LayerSpec) checkNames(seen map[string]bool) error {
	var own []string
	if l.Quantized() {
		if l.Name == "" {
			return fmt.Errorf("needs a name")
		}
		own = append(own, l.Name)
		if l.BN != "" {
			own = append(own, l.BN)
		}
	} else if l.Name != "" {
		own = append(own, l.Name)
	}
	for _, n := range own {
		if strings.ContainsAny(n, " .\"\\") || n == "input" {
			return fmt.Errorf("name %q must not be \"input\" nor contain spaces, dots, quotes or backslashes", n)
		}
		if seen[n] {
			return fmt.Errorf("name %q used twice", n)
		}
		seen[n] = true
	}
	return nil
}

func (l LayerSpec) outShape(in []int) ([]int, error) {
	switch l.Act {
	case "", TypeReLU, TypeReLU6:
	default:
		return nil, fmt.Errorf("unknown activation %q (want relu or relu6)", l.Act)
	}
	if l.Kernel < 0 || l.Stride < 0 || l.Padding < 0 || l.Out < 0 {
		return nil, fmt.Errorf("negative size")
	}
	if l.Type != TypeConv && (l.BN != "" || l.Padding != 0) {
		return nil, fmt.Errorf("bn and padding apply to conv layers only")
	}
	if !l.Quantized() && (l.Act != "" || l.Out != 0 || l.NoBias) {
		return nil, fmt.Errorf("act, out and no_bias apply to conv and linear layers only")
	}
	switch l.Type {
	case TypeConv:
		if len(in) != 3 {
			return nil, fmt.Errorf("input %v is not [C, H, W]", in)
		}
		if l.Out < 1 || l.Kernel < 1 {
			return nil, fmt.Errorf("needs out and kernel")
		}
		s := l.Stride
		if s == 0 {
			s = 1
		}
		h, w := in[1]+2*l.Padding-l.Kernel, in[2]+2*l.Padding-l.Kernel
		if h < 0 || w < 0 {
			return nil, fmt.Errorf("kernel %d larger than the padded input %v", l.Kernel, in)
		}
		return []int{l.Out, h/s + 1, w/s + 1}, nil
	case TypeLinear:
		if len(in) != 1 {
			return nil, fmt.Errorf("input %v is not a vector: add a flatten layer", in)
		}
		if l.Out < 1 || l.Kernel != 0 || l.Stride != 0 {
			return nil, fmt.Errorf("needs out and takes no kernel or stride")
		}
		return []int{l.Out}, nil
	case TypeMaxPool, TypeAvgPool:
		if len(in) != 3 {
			return nil, fmt.Errorf("input %v is not [C, H, W]", in)
		}
		if l.Kernel < 1 {
			return nil, fmt.Errorf("needs a kernel")
		}
		s := l.Stride
		if s == 0 {
			s = l.Kernel
		}
		if in[1] < l.Kernel || in[2] < l.Kernel {
			return nil, fmt.Errorf("kernel %d larger than the input %v", l.Kernel, in)
		}
		return []int{in[0], (in[1]-l.Kernel)/s + 1, (in[2]-l.Kernel)/s + 1}, nil
	case TypeFlatten:
		if l.Kernel != 0 || l.Stride != 0 {
			return nil, fmt.Errorf("takes no kernel or stride")
		}
		n := 1
		for _, d := range in {
			n *= d
		}
		return []int{n}, nil
	case TypeReLU, TypeReLU6:
		if l.Kernel != 0 || l.Stride != 0 {
			return nil, fmt.Errorf("takes no kernel or stride")
		}
		return append([]int(nil), in...), nil
	}
	return nil, fmt.Errorf("unknown layer type %q (want conv, linear, maxpool, avgpool, flatten, relu or relu6)", l.Type)
}
