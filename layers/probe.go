package layers

import (
	"fmt"

	"qat/internal/graphval"
)

// NodeInput returns the first input of node i of the model's spec as the
// graph's last Run computed it, [batch, per-sample input shape...]
// row-major: the output of the node it reads, or for a node reading the
// graph input the input after the input quantizer (the raw input when
// there is none). In a quantized model's NewGraph Eval graph that is the
// fake-quant simulation's value, on the grid of the quantizer before it
// where there is one. The slice belongs to the graph and is overwritten by
// its next run: copy what must outlive it.
func (gr *Graph) NodeInput(i int) ([]float32, error) {
	nodes := gr.model.Spec.Nodes
	if i < 0 || i >= len(nodes) {
		return nil, fmt.Errorf("model %s: node %d out of range [0, %d)", gr.model.Spec.Name, i, len(nodes))
	}
	src, err := gr.model.Spec.Sources()
	if err != nil {
		return nil, err
	}
	// taps holds the input quantizer's output, where there is one, then
	// every node's output in order (buildInput, buildLayers).
	off := len(gr.taps) - len(nodes)
	node := gr.x
	switch j := src[i][0]; {
	case j >= 0:
		node = gr.taps[off+j].node
	case off == 1:
		node = gr.taps[0].node
	}
	v, _, err := graphval.Float32s(node.Value(), gr.model.Spec.Label(i)+" input")
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", gr.model.Spec.Name, err)
	}
	return v, nil
}
