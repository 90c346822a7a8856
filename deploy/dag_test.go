package deploy_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"qat/deploy"
	"qat/export"
	"qat/layers"
	"qat/model"
	"qat/qmodel"
)

// cifarNorm is a per-channel normalisation (CIFAR-10's training-set
// constants), which the int8 form stores as format version 3.
var cifarNorm = model.Norm{ChannelMean: []float32{0.4914, 0.4822, 0.4465}, ChannelStd: []float32{0.247, 0.2435, 0.2616}}

// smallDAG is model/testdata/small-dag.json, a small graph of every DAG
// node type: a conv with BN and ReLU, a padded max pool read by a
// depthwise conv with BN and ReLU6 and by a grouped 1x1 conv with bias,
// their add with ReLU, the concat of the add and the pool (which so has
// three readers), a global average pool, flatten and the classifier,
// with PyTorch-style dotted names.
func smallDAG() model.Graph {
	g, err := model.Load("../model/testdata/small-dag.json")
	if err != nil {
		panic(err) // the test data is part of the repository
	}
	return g
}

// randomInput fills gr's input with standard normal values (normalised
// inputs) from seed and returns labels cycling through the classes.
func randomInput(gr *layers.Graph, seed uint64, classes int) []int {
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range gr.Input() {
		gr.Input()[i] = float32(r.NormFloat64())
	}
	y := make([]int, gr.Batch())
	for i := range y {
		y[i] = i % classes
	}
	return y
}

// quantizedDAG returns spec quantized W8A8, calibrated on a random batch
// and moved by training-mode runs (BN statistics) on others.
func quantizedDAG(t *testing.T, spec model.Graph, qc layers.QuantConfig, batch, steps int) *layers.Model {
	t.Helper()
	m, err := layers.NewModel(spec, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Quantize(qc); err != nil {
		t.Fatal(err)
	}
	cal, err := m.NewGraph(batch, layers.Calibrate)
	if err != nil {
		t.Fatal(err)
	}
	if err := cal.Run(randomInput(cal, 1, spec.Classes)); err != nil {
		t.Fatal(err)
	}
	tr, err := m.NewGraph(batch, layers.Train)
	if err != nil {
		t.Fatal(err)
	}
	for i := range steps {
		if err := tr.Run(randomInput(tr, uint64(2+i), spec.Classes)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestDAGInt8MatchesExactEval freezes a small DAG and resnet20, quantized
// W8A8, and checks that the int8 runtime's output codes, dequantized,
// are the exact evaluation graph's logits bit for bit on random inputs,
// for both the model's graph structure (every add and concat with its
// inputs) and its arithmetic.
func TestDAGInt8MatchesExactEval(t *testing.T) {
	resnet20, err := model.Builtin("resnet20")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		spec         model.Graph
		batch, steps int
	}{
		{smallDAG(), 6, 2},
		{resnet20, 3, 1},
	} {
		t.Run(c.spec.Name, func(t *testing.T) {
			m := quantizedDAG(t, c.spec, layers.QuantConfig{}, c.batch, c.steps)
			frozen, net, err := deploy.Int8(m, cifarNorm, qmodel.RequantFloat)
			if err != nil {
				t.Fatal(err)
			}
			if len(frozen.Ops) != len(c.spec.Nodes) || frozen.FormatVersion() != qmodel.FormatV3 {
				t.Fatalf("%d ops, format %s; want %d, %s", len(frozen.Ops), frozen.FormatVersion(), len(c.spec.Nodes), qmodel.FormatV3)
			}
			for i, op := range frozen.Ops {
				if n := c.spec.Nodes[i]; n.Requantizes() && !n.Weighted() {
					q, _ := m.Quantizer(n.Name + ".activation_post_process").Params()
					if want, _ := export.ActQuant(q); op.Output != want || len(op.Inputs) < 2 {
						t.Errorf("op %d (%s): output %+v, inputs %v; want %+v and the node's inputs", i, op.Name, op.Output, op.Inputs, want)
					}
				}
			}
			ev, err := m.NewExactGraph(c.batch, deploy.Exact{})
			if err != nil {
				t.Fatal(err)
			}
			r := net.NewRunner(c.batch)
			for seed := range uint64(2) {
				if err := ev.Run(randomInput(ev, 10+seed, c.spec.Classes)); err != nil {
					t.Fatal(err)
				}
				codes := r.Run(r.Quantize(ev.Input()))
				got := make([]float32, len(codes))
				net.Dequantize(got, codes)
				if !slices.Equal(got, ev.Logits()) {
					t.Fatalf("inputs %d: the int8 model's logits\n%v\ndiffer from the exact evaluation's\n%v", seed, got, ev.Logits())
				}
			}
		})
	}
}

// An add without its output quantizer has no int8 form: Freeze says so
// with export.ErrUnsupported, naming the node.
func TestFreezeAddWithoutQuantizer(t *testing.T) {
	qc := layers.QuantConfig{Layers: map[string]layers.LayerQuant{"block.add": {Act: &layers.QuantSpec{Off: true}}}}
	m := quantizedDAG(t, smallDAG(), qc, 4, 0)
	_, err := deploy.Freeze(m, cifarNorm, qmodel.RequantFloat)
	if !errors.Is(err, export.ErrUnsupported) || !strings.Contains(err.Error(), "layer 4 (block.add): cannot export: add without an output quantizer") {
		t.Errorf("Freeze: %v, want ErrUnsupported naming block.add", err)
	}
}

// ExportSource describes each node with its inputs and attributes, a conv
// with the channels of the node it reads, an add or concat with its
// output quantizer's params only; FloatSource leaves those out.
func TestSourceOfDAG(t *testing.T) {
	m := quantizedDAG(t, smallDAG(), layers.QuantConfig{}, 4, 0)
	ex, err := deploy.ExportSource(m, cifarNorm)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := deploy.FloatSource(m, cifarNorm)
	if err != nil {
		t.Fatal(err)
	}
	// In: features.0 reads the 3-channel input, the branches the pool's 6
	// channels, fc the 12 of the concat, flattened.
	in := map[string]int{"features.0": 3, "block.dw": 6, "block.pw": 6, "fc": 12}
	for i, n := range smallDAG().Nodes {
		e, f := ex.Layers[i], fs.Layers[i]
		if !slices.Equal(e.Inputs, n.Inputs) || e.Groups != n.Groups || e.Padding != n.Padding || e.In != in[n.Name] || f.In != e.In {
			t.Errorf("layer %d (%s): export %+v, float %+v", i, n.Name, e.Node, f.Node)
		}
		switch {
		case n.Op == model.OpAdd || n.Op == model.OpConcat:
			p, _ := m.Quantizer(n.Name + ".activation_post_process").Params()
			if !slices.Equal(e.ActQuant.Scale, p.Scale) || e.Weight != nil || f.ActQuant.Scale != nil {
				t.Errorf("layer %d (%s): export quant %+v (want %+v), float %+v", i, n.Name, e.ActQuant, p, f.ActQuant)
			}
		case !n.Weighted() && e.ActQuant.Scale != nil:
			t.Errorf("layer %d (%s) has an output quantizer", i, n.Name)
		}
	}
}
