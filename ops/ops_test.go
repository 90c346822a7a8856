package ops

import (
	"math/rand"
	"reflect"
	"testing"

	"gorgonia.org/gorgonia"
)

// TestNodesStayDistinct applies every op twice to the same inputs, with
// the gradients of both, and checks that each op node has a name (String)
// and hash of its own: gorgonia merges nodes of equal hash and equal
// children, so two convolutions of one input must not become one.
func TestNodesStayDistinct(t *testing.T) {
	r := rand.New(rand.NewSource(51))
	x, w, v := normal(r, 2, 3, 6, 6), normal(r, 4, 3, 3, 3), normal(r, 3)
	bn, err := NewBatchNorm(3, BatchNormConfig{})
	if err != nil {
		t.Fatal(err)
	}
	twice := func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		var ys []*gorgonia.Node
		for range 2 {
			sf, err := FoldScale(in[1], bn)
			if err != nil {
				return nil, err
			}
			steps := []func(*gorgonia.Node) (*gorgonia.Node, error){
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return ChannelMul(h, sf, 1) },
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return ChannelDiv(h, in[1], 1) },
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return AddChannelBias(h, in[1]) },
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return bn.Apply(h, in[1], in[1]) },
				ReLU, ReLU6,
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return Conv2d(h, in[2], ConvConfig{Padding: 1}) },
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return MaxPool2d(h, 2, 0) },
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return AvgPool2d(h, 1, 0) },
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return MaxPool2dPadded(h, 3, 1, 1) },
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return Concat(h, h) },
				func(h *gorgonia.Node) (*gorgonia.Node, error) { return Add(h, h) },
				GlobalAvgPool,
				Flatten,
			}
			h := in[0]
			for _, f := range steps {
				if h, err = f(h); err != nil {
					return nil, err
				}
			}
			ys = append(ys, h)
		}
		return gorgonia.Add(ys[0], ys[1])
	}
	og := buildOp(t, 52, true, []dense64{x, v, w}, twice)
	names, hashes := map[string]bool{}, map[uint32]string{}
	for _, n := range og.g.AllNodes() {
		op := n.Op()
		if op == nil || reflect.TypeOf(op).Kind() != reflect.Pointer || reflect.TypeOf(op).Elem().PkgPath() != "qat/ops" {
			continue
		}
		name := op.String()
		if names[name] {
			t.Errorf("two op nodes named %s", name)
		}
		names[name] = true
		if other, ok := hashes[op.Hashcode()]; ok {
			t.Errorf("%s and %s have the same hash", name, other)
		}
		hashes[op.Hashcode()] = name
	}
	// Forward and gradient nodes of 15 ops (BatchNorm: 1+4, FoldScale 1+1,
	// conv, the channel ops and a Concat of two 1+2, pools, activations
	// and Flatten 1+1, Add 1: its gradients are dY's node), each built
	// twice.
	if want := 2 * (5 + 2 + 5*3 + 7*2 + 1); len(names) != want {
		t.Errorf("%d op nodes, want %d: %v", len(names), want, names)
	}
	og.run(t)
}
