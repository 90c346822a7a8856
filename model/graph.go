package model

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"qat/internal/strictjson"
)

// OpType names the operation of a node.
type OpType string

// The op types. Node.OutShape gives each one's shape rule.
const (
	OpConv          OpType = "conv"           // 2-D convolution, square kernel, zero padding, groups
	OpLinear        OpType = "linear"         // fully connected
	OpMaxPool       OpType = "maxpool"        // max pooling, padding that never wins
	OpAvgPool       OpType = "avgpool"        // average pooling, no padding
	OpGlobalAvgPool OpType = "global_avgpool" // [C, H, W] -> [C, 1, 1] mean (adaptive average pooling to 1x1)
	OpFlatten       OpType = "flatten"        // [C, H, W] -> [C*H*W] in C, H, W order (PyTorch's)
	OpReLU          OpType = "relu"           // max(x, 0)
	OpReLU6         OpType = "relu6"          // min(max(x, 0), 6)
	OpAdd           OpType = "add"            // element-wise sum of two inputs of one shape
	OpConcat        OpType = "concat"         // inputs joined along the channel axis
)

// opTypes lists the op types in the order errors name them.
var opTypes = []OpType{OpConv, OpLinear, OpMaxPool, OpAvgPool, OpGlobalAvgPool, OpFlatten, OpReLU, OpReLU6, OpAdd, OpConcat}

// InputName is the name by which a node reads the graph input. No node
// may be called that.
const InputName = "input"

// Graph is a network: its input shape, its class count and its nodes in
// a topological order. It is the form of a model file (JSON, with the
// field names of the json tags) and of a checkpoint's "qat.arch"
// metadata.
type Graph struct {
	// Name is the architecture's name, e.g. "lenet".
	Name string `json:"name"`
	// Input is the shape of one sample, [C, H, W].
	Input []int `json:"input"`
	// Classes is the number of logits the last node produces.
	Classes int `json:"classes"`
	// Nodes run in order; the last one gives the logits.
	Nodes []Node `json:"layers"`
}

// Node is one operation. Which attributes apply depends on Op; the others
// must be zero.
type Node struct {
	// Op is one of the Op constants (JSON "type").
	Op OpType `json:"type"`
	// Name is the node's name: the module name of a conv or linear node
	// (required, and the prefix of its parameter names) and of an add or
	// concat node (required, the prefix of its output quantizer's name,
	// as a PyTorch FloatFunctional's); optional for the others, which need
	// one only to be read by a node other than the next. Names are unique
	// within a graph; PyTorch's dotted module names ("layer1.0.conv1")
	// are names.
	Name string `json:"name,omitempty"`
	// Inputs names the nodes this node reads (InputName for the graph
	// input). Empty means the node before it, or the graph input for the
	// first node. Add reads exactly two inputs, concat two or more (and
	// so must name them), every other op type one.
	Inputs []string `json:"inputs,omitempty"`
	// Out is the number of output channels (conv) or features (linear).
	Out int `json:"out,omitempty"`
	// Kernel is the square kernel size (conv, maxpool, avgpool). Stride 0
	// means 1 for conv and Kernel for pools (see EffectiveStride);
	// Padding is conv zero padding, or maxpool padding (at most Kernel/2,
	// as PyTorch's, so that no window is all padding: padded positions
	// never give the maximum).
	Kernel  int `json:"kernel,omitempty"`
	Stride  int `json:"stride,omitempty"`
	Padding int `json:"padding,omitempty"`
	// Groups splits a conv's input and output channels into that many
	// groups, output group g reading only input group g (PyTorch's
	// groups); 0 means 1, and Groups equal to the input channels and Out
	// is a depthwise conv. Both channel counts must be multiples of it.
	Groups int `json:"groups,omitempty"`
	// BN names a BatchNorm2d module after a conv; "" means none.
	BN string `json:"bn,omitempty"`
	// Act is the activation fused after a conv or linear node (and its
	// BN) or an add node: "", OpReLU or OpReLU6. Its output is what the
	// node's output quantizer sees.
	Act OpType `json:"act,omitempty"`
	// NoBias drops the conv or linear bias (PyTorch bias=False).
	NoBias bool `json:"no_bias,omitempty"`
}

// Weighted reports whether the node has weights (conv and linear), and so
// weight and output quantizers when the model is quantized.
func (n Node) Weighted() bool { return n.Op == OpConv || n.Op == OpLinear }

// Requantizes reports whether the node computes new values that a
// quantized model quantizes with the node's own output quantizer: conv,
// linear, add and concat. The other ops keep their input's grid (pools
// and activations on codes) or leave it (a float average).
func (n Node) Requantizes() bool { return n.Weighted() || n.Op == OpAdd || n.Op == OpConcat }

// EffectiveGroups returns Groups with its default, 1.
func (n Node) EffectiveGroups() int { return max(n.Groups, 1) }

// arity returns how many inputs the node reads: exactly want, or at
// least want when atLeast.
func (n Node) arity() (want int, atLeast bool) {
	switch n.Op {
	case OpAdd:
		return 2, false
	case OpConcat:
		return 2, true
	}
	return 1, false
}

// EffectiveStride returns the node's stride with its default: Kernel for
// pools, 1 for the others.
func (n Node) EffectiveStride() int {
	switch {
	case n.Stride != 0:
		return n.Stride
	case n.Op == OpMaxPool || n.Op == OpAvgPool:
		return n.Kernel
	}
	return 1
}

// ParamNames returns the names of the node's parameters, in state_dict
// order: weight, bias (unless NoBias), then its BN's weight, bias,
// running_mean, running_var and num_batches_tracked. Nodes without
// weights have none.
func (n Node) ParamNames() []string {
	if !n.Weighted() {
		return nil
	}
	p := []string{n.Name + ".weight"}
	if !n.NoBias {
		p = append(p, n.Name+".bias")
	}
	if n.BN != "" {
		for _, s := range []string{"weight", "bias", "running_mean", "running_var", "num_batches_tracked"} {
			p = append(p, n.BN+"."+s)
		}
	}
	return p
}

// OutShape is the shape rule: it checks the node's attributes against
// its per-sample input shapes in (one per input) and returns its output
// shape.
//
//	conv             [C, H, W] -> [Out, (H+2P-K)/S+1, (W+2P-K)/S+1], K <= H+2P and W+2P, C and Out multiples of G
//	maxpool          [C, H, W] -> [C, (H+2P-K)/S+1, (W+2P-K)/S+1], K <= H and W, P <= K/2
//	avgpool          [C, H, W] -> [C, (H-K)/S+1, (W-K)/S+1], K <= H and W
//	global_avgpool   [C, H, W] -> [C, 1, 1]
//	flatten          any shape -> [product of its dimensions]
//	linear           [N] -> [Out]
//	relu, relu6      any shape, kept
//	add              two inputs of one shape, kept
//	concat           [C1, H, W], [C2, H, W], ... -> [C1+C2+..., H, W]
//
// (K Kernel, S EffectiveStride, P Padding, G EffectiveGroups, integer
// division). It does not check sizes against the limits; Graph.Shapes
// does.
func (n Node) OutShape(in ...[]int) ([]int, error) {
	if err := n.checkAttrs(); err != nil {
		return nil, err
	}
	if want, atLeast := n.arity(); len(in) != want && !(atLeast && len(in) > want) {
		return nil, fmt.Errorf("%d inputs, want %s%d", len(in), map[bool]string{true: "at least "}[atLeast], want)
	}
	switch n.Op {
	case OpAdd, OpConcat:
		return n.joinShape(in)
	case OpGlobalAvgPool:
		if len(in[0]) != 3 {
			return nil, fmt.Errorf("input %v is not [C, H, W]", in[0])
		}
		return []int{in[0][0], 1, 1}, nil
	}
	return n.oneShape(in[0])
}

// joinShape is the shape rule of add and concat.
func (n Node) joinShape(in [][]int) ([]int, error) {
	out := slices.Clone(in[0])
	for i, s := range in[1:] {
		switch {
		case n.Op == OpAdd && !slices.Equal(s, in[0]):
			return nil, fmt.Errorf("input 1 has shape %v, input 0 %v: add needs one shape", s, in[0])
		case n.Op == OpConcat && (len(s) != 3 || len(in[0]) != 3 || !slices.Equal(s[1:], in[0][1:])):
			return nil, fmt.Errorf("input %d has shape %v, input 0 %v: concat needs [C, H, W] inputs of one H and W", i+1, s, in[0])
		case n.Op == OpConcat:
			out[0] += s[0]
		}
	}
	return out, nil
}

// oneShape is the shape rule of the ops of one input.
func (n Node) oneShape(in []int) ([]int, error) {
	switch n.Op {
	case OpConv, OpMaxPool, OpAvgPool:
		if len(in) != 3 {
			return nil, fmt.Errorf("input %v is not [C, H, W]", in)
		}
		h, w := in[1]+2*n.Padding, in[2]+2*n.Padding
		if n.Kernel > h || n.Kernel > w {
			return nil, fmt.Errorf("kernel %d larger than the input %v padded to %dx%d", n.Kernel, in, h, w)
		}
		c, s := in[0], n.EffectiveStride()
		if n.Op == OpConv {
			if g := n.EffectiveGroups(); in[0]%g != 0 || n.Out%g != 0 {
				return nil, fmt.Errorf("groups %d do not divide the %d input channels and out %d", g, in[0], n.Out)
			}
			c = n.Out
		}
		return []int{c, (h-n.Kernel)/s + 1, (w-n.Kernel)/s + 1}, nil
	case OpLinear:
		if len(in) != 1 {
			return nil, fmt.Errorf("input %v is not a vector: add a flatten node", in)
		}
		return []int{n.Out}, nil
	case OpFlatten:
		return []int{int(product(in))}, nil
	}
	return slices.Clone(in), nil // relu, relu6
}

// checkAttrs checks the node's attributes, whatever its input.
func (n Node) checkAttrs() error {
	if !slices.Contains(opTypes, n.Op) {
		return fmt.Errorf("unknown layer type %q (want %s)", n.Op, typeList())
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"out", n.Out}, {"kernel", n.Kernel}, {"stride", n.Stride}, {"padding", n.Padding}, {"groups", n.Groups}} {
		switch {
		case v.v < 0:
			return fmt.Errorf("%s %d is negative", v.name, v.v)
		case v.v > MaxSize:
			return fmt.Errorf("%s %d is above %d", v.name, v.v, MaxSize)
		}
	}
	switch n.Act {
	case "", OpReLU, OpReLU6:
	default:
		return fmt.Errorf("unknown activation %q (want relu or relu6)", n.Act)
	}
	if n.Op != OpConv && (n.BN != "" || n.Groups != 0) {
		return errors.New("bn and groups apply to conv nodes only")
	}
	if n.Op != OpConv && n.Op != OpMaxPool && n.Padding != 0 {
		return errors.New("padding applies to conv and maxpool nodes only")
	}
	if n.Op == OpMaxPool && 2*n.Padding > n.Kernel {
		return fmt.Errorf("padding %d is more than half the kernel %d", n.Padding, n.Kernel)
	}
	if !n.Weighted() && (n.Out != 0 || n.NoBias) {
		return errors.New("out and no_bias apply to conv and linear nodes only")
	}
	if !n.Weighted() && n.Op != OpAdd && n.Act != "" {
		return errors.New("act applies to conv, linear and add nodes only")
	}
	switch n.Op {
	case OpConv, OpMaxPool, OpAvgPool:
		if n.Kernel < 1 {
			return errors.New("needs a kernel")
		}
	default:
		if n.Kernel != 0 || n.Stride != 0 {
			return errors.New("takes no kernel or stride")
		}
	}
	if n.Weighted() && n.Out < 1 {
		return errors.New("needs out")
	}
	return nil
}

func typeList() string {
	s := make([]string, len(opTypes))
	for i, t := range opTypes {
		s[i] = string(t)
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// ParamShapes returns the shapes of the node's parameters, in the order
// of ParamNames, on a per-sample input of shape in (which OutShape
// accepted): a conv weight is [Out, C/Groups, Kernel, Kernel], a linear
// one [Out, N], a bias and the BN vectors [Out], num_batches_tracked a
// scalar ([]).
func (n Node) ParamShapes(in []int) [][]int {
	var s [][]int
	switch n.Op {
	case OpConv:
		s = append(s, []int{n.Out, in[0] / n.EffectiveGroups(), n.Kernel, n.Kernel})
	case OpLinear:
		s = append(s, []int{n.Out, in[0]})
	default:
		return nil
	}
	if !n.NoBias {
		s = append(s, []int{n.Out})
	}
	if n.BN != "" {
		s = append(s, []int{n.Out}, []int{n.Out}, []int{n.Out}, []int{n.Out}, []int{})
	}
	return s
}

// params returns the number of parameter values of n on an input of
// shape in (which OutShape accepted).
func (n Node) params(in []int) int64 {
	var p int64
	for _, s := range n.ParamShapes(in) {
		p = add(p, product(s))
	}
	return p
}

// Size limits of a Graph, checked by Validate and Shapes before anything
// is allocated. A program may raise them before it builds models (qat's
// --max-params and --max-activations do).
var (
	// MaxParams bounds the number of parameters (weights, biases, BN
	// parameters and statistics) of a model: 2^28 is 1 GiB of float32,
	// before gradients and optimizer state.
	MaxParams int64 = 1 << 28
	// MaxActivations bounds the values one sample produces, summed over
	// the input and every node's output: the per-sample memory of a
	// training step's activations.
	MaxActivations int64 = 1 << 26
)

// MaxSize bounds every single size of a graph (dimensions, channels,
// kernel, stride, padding), so that the shape arithmetic cannot overflow
// before the limits above are checked.
const MaxSize = 1 << 24

// Label names node i in errors: "node 2 (conv c2)".
func (g *Graph) Label(i int) string {
	n := g.Nodes[i]
	if n.Name == "" {
		return fmt.Sprintf("node %d (%s)", i, n.Op)
	}
	return fmt.Sprintf("node %d (%s %s)", i, n.Op, n.Name)
}

// Sources returns, for every node, the indices of the nodes it reads, -1
// standing for the graph input. It checks that every input names the
// graph input or an earlier node, and that each node has as many inputs
// as its op takes.
func (g *Graph) Sources() ([][]int, error) {
	index := make(map[string]int, len(g.Nodes))
	src := make([][]int, len(g.Nodes))
	for i, n := range g.Nodes {
		if len(n.Inputs) == 0 {
			src[i] = []int{i - 1}
		} else {
			for _, in := range n.Inputs {
				j, ok := index[in]
				if in == InputName {
					j, ok = -1, true
				}
				if !ok {
					return nil, fmt.Errorf("%s: input %q is neither %q nor the name of a node before it", g.Label(i), in, InputName)
				}
				src[i] = append(src[i], j)
			}
		}
		if want, atLeast := n.arity(); len(src[i]) != want && !(atLeast && len(src[i]) > want) {
			return nil, fmt.Errorf("%s: %d inputs, want %s%d", g.Label(i), len(src[i]), map[bool]string{true: "at least "}[atLeast], want)
		}
		if n.Name != "" {
			index[n.Name] = i
		}
	}
	return src, nil
}

// IsChain reports whether every node reads the node before it (the first
// the graph input): the form of the int8 file format and runtime. A graph
// whose inputs do not resolve is not a chain.
func (g *Graph) IsChain() bool {
	src, err := g.Sources()
	if err != nil {
		return false
	}
	for i, s := range src {
		if len(s) != 1 || s[0] != i-1 {
			return false
		}
	}
	return true
}

// Validate checks the graph: see Shapes.
func (g *Graph) Validate() error {
	_, err := g.Shapes()
	return err
}

// Shapes returns the per-sample output shape of every node, checking the
// graph on the way: the input shape and class count, every node's
// attributes and names, that every input is the graph input or an earlier
// node, that shapes flow (Node.OutShape), that every node but the last is
// read, the size limits, and that the last node gives [Classes].
func (g *Graph) Shapes() ([][]int, error) {
	if len(g.Input) != 3 {
		return nil, fmt.Errorf("input shape %v: want [C, H, W]", g.Input)
	}
	for _, d := range g.Input {
		if d < 1 || d > MaxSize {
			return nil, fmt.Errorf("input shape %v: every dimension must be in [1, %d]", g.Input, MaxSize)
		}
	}
	if g.Classes < 2 {
		return nil, fmt.Errorf("classes %d: want at least 2", g.Classes)
	}
	if len(g.Nodes) == 0 {
		return nil, errors.New("no nodes")
	}
	if err := g.checkNames(); err != nil {
		return nil, err
	}
	src, err := g.Sources()
	if err != nil {
		return nil, err
	}
	acts, params := product(g.Input), int64(0)
	read := make([]bool, len(g.Nodes))
	out := make([][]int, len(g.Nodes))
	for i, n := range g.Nodes {
		in := make([][]int, len(src[i]))
		for k, j := range src[i] {
			in[k] = g.Input
			if j >= 0 {
				in[k], read[j] = out[j], true
			}
		}
		if out[i], err = n.OutShape(in...); err != nil {
			return nil, fmt.Errorf("%s: %w", g.Label(i), err)
		}
		params, acts = add(params, n.params(in[0])), add(acts, product(out[i]))
		switch {
		case params > MaxParams:
			return nil, fmt.Errorf("%s: the model reaches %d parameters here, above the limit of %d (--max-params raises it)", g.Label(i), params, MaxParams)
		case acts > MaxActivations:
			return nil, fmt.Errorf("%s: the model reaches %d activation values per sample here, above the limit of %d (--max-activations raises it)", g.Label(i), acts, MaxActivations)
		}
	}
	for i := range len(g.Nodes) - 1 {
		if !read[i] {
			return nil, fmt.Errorf("%s: no node reads its output", g.Label(i))
		}
	}
	if last := out[len(out)-1]; len(last) != 1 || last[0] != g.Classes {
		return nil, fmt.Errorf("the last node gives shape %v per sample, want [%d] logits", last, g.Classes)
	}
	return out, nil
}

// checkNames checks that the nodes that need a name (Requantizes) have
// one and that every name (of a node or a BN module) is unique and valid
// (checkName).
func (g *Graph) checkNames() error {
	seen := map[string]bool{}
	for i, n := range g.Nodes {
		if n.Requantizes() && n.Name == "" {
			return fmt.Errorf("%s: needs a name", g.Label(i))
		}
		own := []string{n.Name}
		if n.BN != "" {
			own = append(own, n.BN)
		}
		for _, s := range own {
			if s == "" {
				continue
			}
			if err := checkName(s); err != nil {
				return fmt.Errorf("%s: %w", g.Label(i), err)
			}
			if seen[s] {
				return fmt.Errorf("%s: name %q used twice", g.Label(i), s)
			}
			seen[s] = true
		}
	}
	return nil
}

// checkName checks one name: not InputName, ASCII letters, digits, '_'
// and '-' in parts joined by single dots (PyTorch module paths such as
// "layer1.0.downsample.0"), at most 200 bytes.
func checkName(s string) error {
	if s == InputName {
		return fmt.Errorf("name %q is reserved for the graph input", s)
	}
	if len(s) > 200 {
		return fmt.Errorf("name %.20q... is longer than 200 bytes", s)
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return fmt.Errorf("name %q has an empty part between dots", s)
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return fmt.Errorf("name %q holds %q: want ASCII letters, digits, '_' and '-' in parts joined by dots", s, r)
			}
		}
	}
	return nil
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

// Load returns the built-in architecture of that name or, if arg names an
// existing file, the Graph read from it (see Parse).
func Load(arg string) (Graph, error) {
	if g, err := Builtin(arg); err == nil {
		return g, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		if os.IsNotExist(err) {
			return Graph{}, fmt.Errorf("model %q is neither a built-in model (%s) nor a config file", arg, strings.Join(BuiltinNames(), ", "))
		}
		return Graph{}, fmt.Errorf("model config: %w", err)
	}
	g, err := Parse(b)
	if err != nil {
		return Graph{}, fmt.Errorf("model config %s: %w", arg, err)
	}
	return g, nil
}

// Parse decodes a JSON Graph strictly (internal/strictjson: unknown or
// duplicate fields, null and trailing data are errors) and validates it.
func Parse(b []byte) (Graph, error) {
	var g Graph
	if err := strictjson.Decode(b, &g); err != nil {
		return Graph{}, fmt.Errorf("decode: %w", err)
	}
	if err := g.Validate(); err != nil {
		return Graph{}, err
	}
	return g, nil
}
