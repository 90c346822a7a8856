package ops

import (
	"fmt"
	"hash"
	"io"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/graphval"
)

// base is embedded in every op of the package: the methods of gorgonia.Op
// that are the same for all of them. An op's name (its String) is unique
// to its node, as it ends in the node's id (graphval.NewID; a gradient op
// takes its forward's id and a name of its own), and its hash is made of
// "ops." and the name, so gorgonia never merges two nodes. No op returns a
// pointer, calls outside Go or overwrites an input.
type base struct{ name string }

// named returns the base of an op named fmt.Sprintf(format, args...).
func named(format string, args ...any) base { return base{name: fmt.Sprintf(format, args...)} }

// ReturnsPtr is false: an op returns a value it owns (see Buffers in the
// package doc), never a pointer into an input.
func (b base) ReturnsPtr() bool { return false }

// CallsExtern is false: the ops are Go (and Go assembly).
func (b base) CallsExtern() bool { return false }

// OverwritesInput is -1: no op writes an input.
func (b base) OverwritesInput() int { return -1 }

// WriteHash writes "ops." and the op's name.
func (b base) WriteHash(h hash.Hash) { io.WriteString(h, "ops."+b.name) }

// Hashcode is the FNV-1a hash of what WriteHash writes.
func (b base) Hashcode() uint32 { return graphval.HashOf(b) }

// String returns the op's name, unique to its node.
func (b base) String() string { return b.name }

// checkNode reports whether n can be an op input: a float32 tensor node
// of known shape with no empty dimension, of the given rank, or any rank
// of at least 1 when rank < 0.
func checkNode(n *gorgonia.Node, what string, rank int) error {
	if n == nil {
		return fmt.Errorf("nil %s node", what)
	}
	if dt := n.Dtype(); dt != tensor.Float32 {
		return fmt.Errorf("%s %v is %v, want float32", what, n, dt)
	}
	s := n.Shape()
	if rank >= 0 && len(s) != rank {
		return fmt.Errorf("%s %v has shape %v, want %d-D", what, n, s, rank)
	}
	if len(s) == 0 || n.IsScalar() {
		return fmt.Errorf("%s %v is a scalar, want a tensor", what, n)
	}
	for _, d := range s {
		if d < 1 {
			return fmt.Errorf("%s %v has an unknown or empty dimension in shape %v", what, n, s)
		}
	}
	return nil
}

// readScalar returns the one float32 of a scalar value (a gorgonia *F32,
// as gorgonia.Grad seeds the cost's gradient with, or a one-element
// tensor).
func readScalar(op fmt.Stringer, v gorgonia.Value, what string) (float32, error) {
	if v == nil {
		return 0, fmt.Errorf("%v: %s has no value", op, what)
	}
	if dt := v.Dtype(); dt != tensor.Float32 {
		return 0, fmt.Errorf("%v: %s is %v, want float32", op, what, dt)
	}
	switch d := v.Data().(type) {
	case float32:
		return d, nil
	case []float32:
		if v.Shape().TotalSize() == 1 && len(d) >= 1 {
			return d[0], nil
		}
		return 0, fmt.Errorf("%v: %s has shape %v, want a scalar", op, what, v.Shape())
	}
	return 0, fmt.Errorf("%v: %s holds %T, want a float32 scalar", op, what, v.Data())
}

// outerInner splits shape around axis: outer is the product of the
// dimensions before it, inner of those after.
func outerInner(shape tensor.Shape, axis int) (outer, inner int) {
	outer, inner = 1, 1
	for i, d := range shape {
		switch {
		case i < axis:
			outer *= d
		case i > axis:
			inner *= d
		}
	}
	return outer, inner
}
