package layers

import (
	"fmt"

	"gorgonia.org/gorgonia"

	"qat/internal/graphval"
	"qat/quant"
)

// QuantInput is what one quantizer saw in a CaptureQuantInputs run: the
// tensor it quantized (a weight quantizer's weight after BN folding, an
// activation quantizer's layer output before quantization) and the params
// it applied.
type QuantInput struct {
	Name   string // the quantizer's name, as Quantizer.Name
	Layer  string // its conv, linear, add or concat node ("" for the input quantizer)
	Role   string // RoleInput, RoleWeight or RoleAct
	Shape  []int
	Values []float32 // row-major, owned by the caller
	Params quant.Params
}

// CaptureQuantInputs runs the quantized model forward on x, a batch of
// samples [N, C, H, W] row-major (N = len(x) / sample size), in evaluation
// mode (BN on running statistics, every quantizer frozen, nothing
// updated), and returns the input of every quantizer in graph order. The
// run is the float fake-quant simulation that training uses: an Eval
// graph's exact int8 layers have no quantizer inputs to capture. Layer
// outputs it records differ from an Eval graph's only by float rounding.
func (m *Model) CaptureQuantInputs(x []float32) ([]QuantInput, error) {
	if !m.Quantized() {
		return nil, fmt.Errorf("model %s: capture quantizer inputs: the model is not quantized", m.Spec.Name)
	}
	size := m.Spec.Input[0] * m.Spec.Input[1] * m.Spec.Input[2]
	if len(x) == 0 || len(x)%size != 0 {
		return nil, fmt.Errorf("model %s: capture quantizer inputs: %d input values are not a whole number of %v samples",
			m.Spec.Name, len(x), m.Spec.Input)
	}
	if err := m.CheckReady(); err != nil {
		return nil, err
	}
	// A Calibrate graph is built without exact layers, so every quantizer
	// has its input tapped; it runs below in evaluation mode instead.
	gr := &Graph{model: m, version: m.version, kind: Calibrate, batch: len(x) / size, g: gorgonia.NewGraph()}
	if err := gr.build(); err != nil {
		return nil, fmt.Errorf("model %s: build capture graph: %w", m.Spec.Name, err)
	}
	copy(gr.xData, x)
	vm := gorgonia.NewTapeMachine(gr.g.SubgraphRoots(gr.logits))
	defer vm.Close()
	if err := m.setMode(false, false); err != nil {
		return nil, err
	}
	if err := vm.RunAll(); err != nil {
		return nil, fmt.Errorf("model %s: capture run: %w", m.Spec.Name, unwrapVM(err))
	}
	out := make([]QuantInput, 0, len(gr.qin))
	for _, t := range gr.qin {
		p, ok := t.q.Params()
		if !ok {
			return nil, fmt.Errorf("quantizer %s has no params", t.q.Name)
		}
		v, shape, err := graphval.Float32s(t.node.Value(), t.q.Name)
		if err != nil {
			return nil, fmt.Errorf("model %s: capture: %w", m.Spec.Name, err)
		}
		out = append(out, QuantInput{Name: t.q.Name, Layer: t.q.Layer, Role: t.q.Role, Shape: []int(shape),
			Values: append([]float32(nil), v...), Params: p.Clone()})
	}
	return out, nil
}
