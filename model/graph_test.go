package model

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"linear","name":"a","out":10}]}`, "node 0 (linear a): input [1 28 28] is not a vector"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","out":10}]}`, "node 1 (linear): needs a name"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":9}]}`, "want [10] logits"},
		{`{"name":"x","input":[1,4,4],"classes":2,"layers":[{"type":"conv","name":"c","out":2,"kernel":5}]}`, "kernel 5 larger than the input [1 4 4] padded to 4x4"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":10,"act":"gelu"}]}`, "unknown activation"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"dense"}]}`, `node 0 (dense): unknown layer type "dense" (want conv, linear, maxpool, avgpool, global_avgpool, flatten, relu, relu6, add or concat)`},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":10}],"extra":1}`, "unknown field"},
		{`{"name":"x","input":[1,8,8],"classes":2,"layers":[{"type":"conv","name":"a","out":2,"kernel":3,"bn":"a"},{"type":"flatten"},{"type":"linear","name":"f","out":2}]}`, "used twice"},
		{`{"name":"x","input":[28,28],"classes":10,"layers":[{"type":"flatten"}]}`, "want [C, H, W]"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[]}`, "no nodes"},
		{`{"name":"x","input":[1,28,28],"classes":1,"layers":[{"type":"flatten"}]}`, "classes 1: want at least 2"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten","kernel":2},{"type":"linear","name":"a","out":10}]}`, "node 0 (flatten): takes no kernel or stride"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"maxpool","kernel":2,"bn":"b"},{"type":"flatten"},{"type":"linear","name":"a","out":10}]}`, "bn and groups apply to conv nodes only"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"relu","out":3},{"type":"flatten"},{"type":"linear","name":"a","out":10}]}`, "out and no_bias apply to conv and linear nodes only"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"avgpool","kernel":2,"padding":1},{"type":"flatten"},{"type":"linear","name":"a","out":10}]}`, "padding applies to conv and maxpool nodes only"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"maxpool","kernel":3,"padding":2},{"type":"flatten"},{"type":"linear","name":"a","out":10}]}`, "node 0 (maxpool): padding 2 is more than half the kernel 3"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten","act":"relu"},{"type":"linear","name":"a","out":10}]}`, "act applies to conv, linear and add nodes only"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten","name":"input"},{"type":"linear","name":"a","out":10}]}`, `name "input" is reserved for the graph input`},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a..b","out":10}]}`, `node 1 (linear a..b): name "a..b" has an empty part between dots`},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"fc 1","out":10}]}`, `name "fc 1" holds ' ': want ASCII letters`},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"fc1.","out":10}]}`, `empty part between dots`},
		// Groups divide both channel counts.
		{`{"name":"x","input":[6,8,8],"classes":2,"layers":[{"type":"conv","name":"c","out":4,"kernel":3,"groups":3},{"type":"flatten"},{"type":"linear","name":"f","out":2}]}`, "node 0 (conv c): groups 3 do not divide the 6 input channels and out 4"},
		{`{"name":"x","input":[6,8,8],"classes":2,"layers":[{"type":"maxpool","kernel":2,"groups":3},{"type":"flatten"},{"type":"linear","name":"f","out":2}]}`, "bn and groups apply to conv nodes only"},
		// Add and concat: their arity, their shapes, their names.
		{`{"name":"x","input":[1,8,8],"classes":2,"layers":[{"type":"conv","name":"c","out":1,"kernel":3,"padding":1},{"type":"add","name":"s"},{"type":"flatten"},{"type":"linear","name":"f","out":2}]}`, "node 1 (add s): 1 inputs, want 2"},
		{`{"name":"x","input":[1,8,8],"classes":2,"layers":[{"type":"conv","name":"c","out":2,"kernel":3,"padding":1},{"type":"add","name":"s","inputs":["c","input"]},{"type":"flatten"},{"type":"linear","name":"f","out":2}]}`, "node 1 (add s): input 1 has shape [1 8 8], input 0 [2 8 8]: add needs one shape"},
		{`{"name":"x","input":[1,8,8],"classes":2,"layers":[{"type":"conv","name":"c","out":1,"kernel":3,"padding":1},{"type":"add","inputs":["c","input"]},{"type":"flatten"},{"type":"linear","name":"f","out":2}]}`, "node 1 (add): needs a name"},
		{`{"name":"x","input":[1,8,8],"classes":2,"layers":[{"type":"conv","name":"c","out":1,"kernel":3},{"type":"concat","name":"j","inputs":["c","input"]},{"type":"flatten"},{"type":"linear","name":"f","out":2}]}`, "node 1 (concat j): input 1 has shape [1 8 8], input 0 [1 6 6]: concat needs [C, H, W] inputs of one H and W"},
		{`{"name":"x","input":[1,8,8],"classes":2,"layers":[{"type":"conv","name":"c","out":1,"kernel":3,"padding":1},{"type":"concat","name":"j","inputs":["c"]},{"type":"flatten"},{"type":"linear","name":"f","out":2}]}`, "node 1 (concat j): 1 inputs, want at least 2"},
		{`{"name":"x","input":[1,8,8],"classes":2,"layers":[{"type":"conv","name":"c","out":1,"kernel":3,"padding":1},{"type":"concat","name":"j","inputs":["c","input"],"act":"relu"},{"type":"flatten"},{"type":"linear","name":"f","out":2}]}`, "node 1 (concat j): act applies to conv, linear and add nodes only"},
		// Graph structure: inputs name the graph input or an earlier node,
		// one per op, and every node but the last is read.
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten","inputs":["f"]},{"type":"linear","name":"a","out":10}]}`, `node 0 (flatten): input "f" is neither "input" nor the name of a node before it`},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":10,"inputs":["a"]}]}`, `node 1 (linear a): input "a" is neither`},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten","name":"f"},{"type":"linear","name":"a","out":10,"inputs":["f","f"]}]}`, "node 1 (linear a): 2 inputs, want 1"},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"relu"},{"type":"flatten","inputs":["input"]},{"type":"linear","name":"a","out":10}]}`, "node 0 (relu): no node reads its output"},
		// Strict JSON (internal/strictjson).
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":10}]} []`, "data after the JSON value"},
		{`{"name":"x","name":"y","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":10}]}`, `duplicate field "name"`},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":10,"act":null}]}`, `"layers.1.act" is null`},
		{`{"name":"x","input":[1,28,28],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","Name":"a","out":10}]}`, `unknown field "layers.1.Name"`},
		// Sizes are bounded before anything is allocated: a linear node of
		// 2^40 weights, a conv of 2^32 and sizes that would overflow.
		{`{"name":"x","input":[1,1024,1024],"classes":10,"layers":[{"type":"flatten"},{"type":"linear","name":"a","out":1048576},{"type":"linear","name":"b","out":10}]}`,
			"node 1 (linear a): the model reaches 1099512676352 parameters here, above the limit of 268435456 (--max-params raises it)"},
		{`{"name":"x","input":[4096,8,8],"classes":10,"layers":[{"type":"conv","name":"c","out":65536,"kernel":4}]}`, "above the limit of 268435456"},
		{`{"name":"x","input":[1,8,8],"classes":10,"layers":[{"type":"conv","name":"c","out":4096,"kernel":3,"padding":8000}]}`, "activation values per sample here, above the limit"},
		{`{"name":"x","input":[16777216,16777216,16777216],"classes":10,"layers":[{"type":"flatten"}]}`, "activation values per sample here, above the limit"},
		{`{"name":"x","input":[1,8,8],"classes":10,"layers":[{"type":"conv","name":"c","out":9223372036854775807,"kernel":3}]}`, "out 9223372036854775807 is above 16777216"},
		{`{"name":"x","input":[1,8,8],"classes":10,"layers":[{"type":"conv","name":"c","out":4,"kernel":-3}]}`, "kernel -3 is negative"},
		{`{"name":"x","input":[1,8,99999999],"classes":10,"layers":[{"type":"flatten"}]}`, "every dimension must be in [1, 16777216]"},
	} {
		_, err := Parse([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.json, err, c.want)
		}
	}
}

// The shape rule, with values worked out by hand from PyTorch's formulas
// (torch.nn.Conv2d, MaxPool2d, AvgPool2d: floor((H + 2P - K) / S) + 1).
func TestOutShape(t *testing.T) {
	for _, c := range []struct {
		n        Node
		in, want []int
	}{
		{Node{Op: OpConv, Name: "c", Out: 6, Kernel: 3}, []int{2, 7, 9}, []int{6, 5, 7}},
		{Node{Op: OpConv, Name: "c", Out: 6, Kernel: 3, Stride: 2, Padding: 1}, []int{2, 7, 8}, []int{6, 4, 4}},
		{Node{Op: OpConv, Name: "c", Out: 1, Kernel: 5, Padding: 2}, []int{1, 1, 1}, []int{1, 1, 1}},
		{Node{Op: OpMaxPool, Kernel: 2}, []int{3, 5, 4}, []int{3, 2, 2}},
		{Node{Op: OpAvgPool, Kernel: 3, Stride: 1}, []int{3, 5, 4}, []int{3, 3, 2}},
		{Node{Op: OpFlatten}, []int{3, 5, 4}, []int{60}},
		{Node{Op: OpLinear, Name: "l", Out: 7}, []int{60}, []int{7}},
		{Node{Op: OpReLU}, []int{3, 5, 4}, []int{3, 5, 4}},
		{Node{Op: OpReLU6}, []int{9}, []int{9}},
		// torchvision resnet18's stem on 3x32x32: conv 7/2 pad 3 -> 16,
		// maxpool 3/2 pad 1 -> 8.
		{Node{Op: OpMaxPool, Kernel: 3, Stride: 2, Padding: 1}, []int{64, 16, 16}, []int{64, 8, 8}},
		{Node{Op: OpConv, Name: "dw", Out: 32, Kernel: 3, Padding: 1, Stride: 2, Groups: 32}, []int{32, 9, 6}, []int{32, 5, 3}},
		{Node{Op: OpGlobalAvgPool}, []int{5, 3, 7}, []int{5, 1, 1}},
	} {
		got, err := c.n.OutShape(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%+v on %v: %v, %v; want %v", c.n, c.in, got, err, c.want)
		}
	}
}

func TestOutShapeJoins(t *testing.T) {
	add := Node{Op: OpAdd, Name: "s", Act: OpReLU}
	if got, err := add.OutShape([]int{4, 3, 3}, []int{4, 3, 3}); err != nil || !slices.Equal(got, []int{4, 3, 3}) {
		t.Errorf("add: %v, %v", got, err)
	}
	cat := Node{Op: OpConcat, Name: "j"}
	if got, err := cat.OutShape([]int{4, 3, 5}, []int{1, 3, 5}, []int{2, 3, 5}); err != nil || !slices.Equal(got, []int{7, 3, 5}) {
		t.Errorf("concat: %v, %v", got, err)
	}
	if _, err := cat.OutShape([]int{4}, []int{4}); err == nil {
		t.Error("concat of vectors accepted")
	}
	if _, err := (Node{Op: OpReLU}).OutShape([]int{4}, []int{4}); err == nil || err.Error() != "2 inputs, want 1" {
		t.Errorf("relu of two inputs: %v", err)
	}
}

func TestConfigFile(t *testing.T) {
	g, err := Load("testdata/small-cnn.json")
	if err != nil {
		t.Fatal(err)
	}
	shapes, _ := g.Shapes()
	// conv1: (28+2-3)/2+1 = 14; avgpool 2: 7; conv2 pad 1: 7; maxpool 3/2: 3.
	if got := shapes[4]; !slices.Equal(got, []int{8, 3, 3}) {
		t.Fatalf("maxpool output %v, want [8 3 3]", got)
	}
	if got := g.Nodes[2].ParamNames(); !slices.Equal(got, []string{"conv2.weight"}) {
		t.Errorf("conv2 params %v", got)
	}
	if !g.IsChain() {
		t.Error("a file without inputs is not a chain")
	}
	if _, err := Load("testdata/missing.json"); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("missing config: %v", err)
	}
}

// A chain written with explicit inputs is the same network. (While every
// op reads one input, every valid graph is a chain: a node that skipped
// one would leave it unread.)
func TestInputs(t *testing.T) {
	g, _ := Builtin("mlp")
	g.Nodes[1].Inputs = []string{"f"}
	g.Nodes[0].Name = "f"
	if err := g.Validate(); err != nil || !g.IsChain() {
		t.Fatalf("explicit chain: %v, chain %v", err, g.IsChain())
	}
	src, _ := g.Sources()
	if want := [][]int{{-1}, {0}, {1}, {2}}; !slices.EqualFunc(src, want, slices.Equal) {
		t.Errorf("sources %v, want %v", src, want)
	}
	skip := Graph{Name: "skip", Input: []int{1, 4, 4}, Classes: 2, Nodes: []Node{
		{Op: OpReLU, Name: "r"},
		{Op: OpFlatten, Inputs: []string{"r"}},
		{Op: OpLinear, Name: "fc", Out: 2},
	}}
	if err := skip.Validate(); err != nil || !skip.IsChain() {
		t.Fatalf("chain by names: %v", err)
	}
	// A second flatten of r that nothing reads.
	skip.Nodes = slices.Insert(skip.Nodes, 1, Node{Op: OpFlatten, Name: "unread"})
	skip.Nodes[2].Inputs = []string{"r"}
	if err := skip.Validate(); err == nil || !strings.Contains(err.Error(), "node 1 (flatten unread): no node reads its output") {
		t.Fatalf("dangling flatten: %v", err)
	}
}

// Files written before graphs existed hold no "inputs": they must keep
// encoding to the same bytes, so that checkpoints stay byte-identical.
func TestChainJSONUnchanged(t *testing.T) {
	g, _ := Builtin("lenet")
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"name":"lenet","input":[1,28,28],"classes":10,"layers":[{"type":"conv","name":"c1","out":16,"kernel":5,"bn":"b1","act":"relu"},{"type":"maxpool","kernel":2},{"type":"conv","name":"c2","out":32,"kernel":5,"bn":"b2","act":"relu"},{"type":"maxpool","kernel":2},{"type":"flatten"},{"type":"linear","name":"fc1","out":128,"act":"relu"},{"type":"linear","name":"fc2","out":10}]}`
	if string(b) != want {
		t.Errorf("lenet encodes as\n%s\nwant\n%s", b, want)
	}
	back, err := Parse(b)
	if err != nil || back.Name != "lenet" || len(back.Nodes) != 7 {
		t.Fatalf("round trip: %v", err)
	}
}

func TestNorm(t *testing.T) {
	n := Norm{Mean: 0.5, Std: 0.25}
	if got := n.Apply(255); got != 2 {
		t.Errorf("Apply(255) = %v, want 2", got)
	}
	if got := (Norm{}).Apply(51); got != float32(51)/255 {
		t.Errorf("zero Norm Apply(51) = %v", got)
	}
}

// testdata/small-dag.json, shared by the deploy and onnx tests: shapes
// worked out by hand from PyTorch's formulas (conv padding 1 keeps 11x9;
// max pool 3/2 padding 1 gives (11+2-3)/2+1 = 6 by (9+2-3)/2+1 = 5).
func TestDAGFile(t *testing.T) {
	g, err := Load("testdata/small-dag.json")
	if err != nil {
		t.Fatal(err)
	}
	if g.IsChain() {
		t.Error("small-dag.json is a chain")
	}
	shapes, err := g.Shapes()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{6, 11, 9}, {6, 6, 5}, {6, 6, 5}, {6, 6, 5}, {6, 6, 5}, {12, 6, 5}, {12, 1, 1}, {12}, {5}}
	if !slices.EqualFunc(shapes, want, slices.Equal) {
		t.Errorf("shapes %v, want %v", shapes, want)
	}
	src, _ := g.Sources()
	if wantSrc := [][]int{{-1}, {0}, {1}, {1}, {2, 3}, {4, 1}, {5}, {6}, {7}}; !slices.EqualFunc(src, wantSrc, slices.Equal) {
		t.Errorf("sources %v, want %v", src, wantSrc)
	}
}
