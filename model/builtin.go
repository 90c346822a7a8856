package model

import (
	"fmt"
	"strings"
)

// The built-in architectures, by name, in the order BuiltinNames lists
// them.
var builtins = []struct {
	name  string
	graph func() Graph
}{
	{"mlp", mlp},
	{"lenet", lenet},
	{"resnet20", resnet20},
	{"resnet18", resnet18},
	{"mobilenet_v2", mobilenetV2},
}

// BuiltinNames returns the names of the built-in architectures.
func BuiltinNames() []string {
	names := make([]string, len(builtins))
	for i, b := range builtins {
		names[i] = b.name
	}
	return names
}

// Builtin returns the named built-in architecture:
//
//   - "mlp": 784-256-128-10 with ReLU, and "lenet": conv 1→16 k5 + BN +
//     ReLU + maxpool 2, conv 16→32 k5 + BN + ReLU + maxpool 2, flatten 512,
//     fc 512→128 + ReLU, fc 128→10; the models of the PyTorch peer script,
//     with its module names; input 1x28x28.
//   - "resnet18" and "mobilenet_v2": torchvision 0.14's resnet18 and
//     mobilenet_v2 (width 1.0) with their state_dict names, adds and global
//     average pooling named as torchvision's quantizable variants name their
//     FloatFunctional modules ("layer1.0.add_relu", "features.3.skip_add");
//     mobilenet_v2's classifier dropout is an identity in eval and is left
//     out. Input 3x32x32, 10 classes (Resized changes both).
//   - "resnet20": the CIFAR ResNet of He et al. 2016 (§4.2: 3 stages of 3
//     BasicBlocks, 16, 32 and 64 channels) with 1x1 conv + BN shortcuts
//     where the shape changes (option B) and torchvision's names; input
//     3x32x32, 10 classes.
func Builtin(name string) (Graph, error) {
	for _, b := range builtins {
		if b.name == name {
			return b.graph(), nil
		}
	}
	return Graph{}, fmt.Errorf("unknown model %q (want %s or a config file)", name, strings.Join(BuiltinNames(), ", "))
}

// Resized returns g for another input shape and class count: the input
// replaced and the last node, which must be a linear one, giving classes
// outputs. The result is validated.
func (g Graph) Resized(input []int, classes int) (Graph, error) {
	if len(g.Nodes) == 0 || g.Nodes[len(g.Nodes)-1].Op != OpLinear {
		return Graph{}, fmt.Errorf("model %s: the last node is not linear: cannot change the class count", g.Name)
	}
	r := g
	r.Input = append([]int(nil), input...)
	r.Classes = classes
	r.Nodes = append([]Node(nil), g.Nodes...)
	r.Nodes[len(r.Nodes)-1].Out = classes
	if err := r.Validate(); err != nil {
		return Graph{}, fmt.Errorf("model %s on input %v with %d classes: %w", g.Name, input, classes, err)
	}
	return r, nil
}

func mlp() Graph {
	return Graph{Name: "mlp", Input: []int{1, 28, 28}, Classes: 10, Nodes: []Node{
		{Op: OpFlatten},
		{Op: OpLinear, Name: "fc1", Out: 256, Act: OpReLU},
		{Op: OpLinear, Name: "fc2", Out: 128, Act: OpReLU},
		{Op: OpLinear, Name: "fc3", Out: 10},
	}}
}

func lenet() Graph {
	return Graph{Name: "lenet", Input: []int{1, 28, 28}, Classes: 10, Nodes: []Node{
		{Op: OpConv, Name: "c1", Out: 16, Kernel: 5, BN: "b1", Act: OpReLU},
		{Op: OpMaxPool, Kernel: 2},
		{Op: OpConv, Name: "c2", Out: 32, Kernel: 5, BN: "b2", Act: OpReLU},
		{Op: OpMaxPool, Kernel: 2},
		{Op: OpFlatten},
		{Op: OpLinear, Name: "fc1", Out: 128, Act: OpReLU},
		{Op: OpLinear, Name: "fc2", Out: 10},
	}}
}

// basicBlock appends torchvision's BasicBlock prefix (e.g. "layer2.0") on
// the node named in, with in channels to out at stride: conv1 3x3 + bn1 +
// ReLU, conv2 3x3 + bn2, a downsample 1x1 conv + BN where the shape
// changes, and the add of the shortcut with ReLU. It returns the name of
// the add.
func basicBlock(nodes []Node, prefix, in string, inC, out, stride int) ([]Node, string) {
	nodes = append(nodes,
		Node{Op: OpConv, Name: prefix + ".conv1", Inputs: []string{in}, Out: out, Kernel: 3, Stride: stride, Padding: 1, NoBias: true, BN: prefix + ".bn1", Act: OpReLU},
		Node{Op: OpConv, Name: prefix + ".conv2", Out: out, Kernel: 3, Padding: 1, NoBias: true, BN: prefix + ".bn2"})
	shortcut := in
	if stride != 1 || inC != out {
		shortcut = prefix + ".downsample.0"
		nodes = append(nodes, Node{Op: OpConv, Name: shortcut, Inputs: []string{in}, Out: out, Kernel: 1, Stride: stride, NoBias: true, BN: prefix + ".downsample.1"})
	}
	add := prefix + ".add_relu"
	return append(nodes, Node{Op: OpAdd, Name: add, Inputs: []string{prefix + ".conv2", shortcut}, Act: OpReLU}), add
}

// resnet appends stages of BasicBlocks ("layer1", ...) of widths to
// nodes, starting from the node named in with inC channels, each stage
// but the first halving the resolution; it returns the last add's name.
func resnet(nodes []Node, in string, inC int, widths []int, blocks int) ([]Node, string) {
	for s, w := range widths {
		for b := range blocks {
			stride := 1
			if s > 0 && b == 0 {
				stride = 2
			}
			nodes, in = basicBlock(nodes, fmt.Sprintf("layer%d.%d", s+1, b), in, inC, w, stride)
			inC = w
		}
	}
	return nodes, in
}

func resnet18() Graph {
	nodes := []Node{
		{Op: OpConv, Name: "conv1", Out: 64, Kernel: 7, Stride: 2, Padding: 3, NoBias: true, BN: "bn1", Act: OpReLU},
		{Op: OpMaxPool, Name: "maxpool", Kernel: 3, Stride: 2, Padding: 1},
	}
	nodes, last := resnet(nodes, "maxpool", 64, []int{64, 128, 256, 512}, 2)
	nodes = append(nodes,
		Node{Op: OpGlobalAvgPool, Name: "avgpool", Inputs: []string{last}},
		Node{Op: OpFlatten, Name: "flatten"},
		Node{Op: OpLinear, Name: "fc", Out: 10})
	return Graph{Name: "resnet18", Input: []int{3, 32, 32}, Classes: 10, Nodes: nodes}
}

func resnet20() Graph {
	nodes := []Node{{Op: OpConv, Name: "conv1", Out: 16, Kernel: 3, Padding: 1, NoBias: true, BN: "bn1", Act: OpReLU}}
	nodes, last := resnet(nodes, "conv1", 16, []int{16, 32, 64}, 3)
	nodes = append(nodes,
		Node{Op: OpGlobalAvgPool, Name: "avgpool", Inputs: []string{last}},
		Node{Op: OpFlatten, Name: "flatten"},
		Node{Op: OpLinear, Name: "fc", Out: 10})
	return Graph{Name: "resnet20", Input: []int{3, 32, 32}, Classes: 10, Nodes: nodes}
}

// convBNReLU6 is torchvision's Conv2dNormActivation with ReLU6: a conv
// without bias named prefix+".0", its BN prefix+".1".
func convBNReLU6(prefix string, out, kernel, stride, groups int) Node {
	return Node{Op: OpConv, Name: prefix + ".0", Out: out, Kernel: kernel, Stride: stride, Padding: (kernel - 1) / 2,
		Groups: groups, NoBias: true, BN: prefix + ".1", Act: OpReLU6}
}

func mobilenetV2() Graph {
	// torchvision's inverted_residual_setting: expansion t, channels c,
	// repeats n, first stride s.
	setting := [][4]int{{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}}
	nodes := []Node{convBNReLU6("features.0", 32, 3, 2, 1)}
	in, inC, i := "features.0.0", 32, 1
	for _, st := range setting {
		t, c, n, s := st[0], st[1], st[2], st[3]
		for r := range n {
			stride := 1
			if r == 0 {
				stride = s
			}
			p := fmt.Sprintf("features.%d.conv", i)
			hidden, k := inC*t, 0
			var block []Node
			if t != 1 {
				block = append(block, convBNReLU6(fmt.Sprintf("%s.%d", p, k), hidden, 1, 1, 1))
				k++
			}
			block = append(block, convBNReLU6(fmt.Sprintf("%s.%d", p, k), hidden, 3, stride, hidden),
				Node{Op: OpConv, Name: fmt.Sprintf("%s.%d", p, k+1), Out: c, Kernel: 1, NoBias: true, BN: fmt.Sprintf("%s.%d", p, k+2)})
			block[0].Inputs = []string{in}
			nodes = append(nodes, block...)
			out := block[len(block)-1].Name
			if stride == 1 && inC == c {
				add := fmt.Sprintf("features.%d.skip_add", i)
				nodes = append(nodes, Node{Op: OpAdd, Name: add, Inputs: []string{out, in}})
				out = add
			}
			in, inC, i = out, c, i+1
		}
	}
	last := convBNReLU6(fmt.Sprintf("features.%d", i), 1280, 1, 1, 1)
	last.Inputs = []string{in}
	nodes = append(nodes, last,
		Node{Op: OpGlobalAvgPool, Name: "avgpool"},
		Node{Op: OpFlatten, Name: "flatten"},
		Node{Op: OpLinear, Name: "classifier.1", Out: 10})
	return Graph{Name: "mobilenet_v2", Input: []int{3, 32, 32}, Classes: 10, Nodes: nodes}
}
