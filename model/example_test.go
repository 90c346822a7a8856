package model_test

import (
	"fmt"

	"qat/model"
)

// A graph from JSON: a chain needs no "inputs"; a node that reads another
// than the one before it names it.
func ExampleParse() {
	g, err := model.Parse([]byte(`{
		"name": "tiny", "input": [1, 8, 8], "classes": 3,
		"layers": [
			{"type": "conv", "name": "c1", "out": 4, "kernel": 3, "padding": 1, "bn": "b1", "act": "relu"},
			{"type": "maxpool", "name": "pool", "kernel": 2},
			{"type": "flatten", "inputs": ["pool"]},
			{"type": "linear", "name": "fc", "out": 3}
		]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	shapes, _ := g.Shapes()
	for i, n := range g.Nodes {
		fmt.Println(g.Label(i), shapes[i], n.ParamNames())
	}
	// Output:
	// node 0 (conv c1) [4 8 8] [c1.weight c1.bias b1.weight b1.bias b1.running_mean b1.running_var b1.num_batches_tracked]
	// node 1 (maxpool pool) [4 4 4] []
	// node 2 (flatten) [64] []
	// node 3 (linear fc) [3] [fc.weight fc.bias]
}
