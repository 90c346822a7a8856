// Package graphval holds what qat's custom gorgonia ops (packages ops,
// fakequant and layers' exact evaluation) share: conversion between
// gorgonia values and the float32 slices they compute on (the ops are
// float32 only), the checks of their arity and input shapes, their type
// signatures, and instance ids for their hashes.
package graphval

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The types of the ops' signatures (an op's Type method).
var (
	// TypeAny is any tensor type. Not 'b': gorgonia's type inference
	// reserves 'b' for the return type.
	TypeAny = hm.TypeVariable('a')
	// TypeVec is a float32 vector.
	TypeVec = gorgonia.TensorType{Dims: 1, Of: tensor.Float32}
	// TypeMat is a float32 matrix.
	TypeMat = gorgonia.TensorType{Dims: 2, Of: tensor.Float32}
	// TypeImg is a 4-D float32 tensor, a batch of images [N, C, H, W].
	TypeImg = gorgonia.TensorType{Dims: 4, Of: tensor.Float32}
)

// CheckArity reports whether op got its number of inputs, n; the error
// names op.
func CheckArity(op gorgonia.Op, n int) error {
	if n != op.Arity() {
		return fmt.Errorf("%v: %d inputs, want %d", op, n, op.Arity())
	}
	return nil
}

// ShapeArg returns a copy of the i-th shape given to an op's InferShape,
// or an error when there are not that many or it is not a shape.
func ShapeArg(ds []gorgonia.DimSizer, i int) (tensor.Shape, error) {
	if i >= len(ds) {
		return nil, fmt.Errorf("%d shapes, want at least %d", len(ds), i+1)
	}
	s, ok := ds[i].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("input %d has no shape (%T)", i, ds[i])
	}
	return s.Clone(), nil
}

// Float32s returns the elements of a float32 tensor value in row-major
// order and a copy of its shape. A view or transposed tensor is
// materialized into a copy; otherwise the slice is the value's own backing
// array, which the caller must not modify. Other dtypes, and values holding
// fewer elements than their shape, are errors naming what.
func Float32s(v gorgonia.Value, what string) ([]float32, tensor.Shape, error) {
	if v == nil {
		return nil, nil, fmt.Errorf("%s has no value", what)
	}
	if dt := v.Dtype(); dt != tensor.Float32 {
		return nil, nil, fmt.Errorf("%s is %v, want float32", what, dt)
	}
	if d, ok := v.(*tensor.Dense); ok && d.RequiresIterator() {
		m, ok := d.Materialize().(gorgonia.Value)
		if !ok {
			return nil, nil, fmt.Errorf("%s: cannot materialize %T", what, d)
		}
		v = m
	}
	data, ok := v.Data().([]float32)
	if !ok {
		return nil, nil, fmt.Errorf("%s is a %T, want a float32 tensor", what, v.Data())
	}
	n := v.Shape().TotalSize()
	if len(data) < n {
		return nil, nil, fmt.Errorf("%s holds %d elements for shape %v", what, len(data), v.Shape())
	}
	return data[:n], v.Shape().Clone(), nil
}

// ReadFloat32s is Float32s for the input of op (what names it), with
// errors that name op.
func ReadFloat32s(op fmt.Stringer, v gorgonia.Value, what string) ([]float32, tensor.Shape, error) {
	d, s, err := Float32s(v, what)
	if err != nil {
		return nil, nil, fmt.Errorf("%v: %w", op, err)
	}
	return d, s, nil
}

// NewDense wraps data as a float32 tensor of the given shape; the tensor
// owns data from then on.
func NewDense(shape tensor.Shape, data []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(data))
}

// Buffer is the output of one op node, kept and overwritten by every run
// instead of allocated anew: ops that own one return the same tensor run
// after run while shapes stay the same. The zero value is empty.
//
// An op that returns a Buffer's tensor writes every element of it on each
// run (the previous run's contents are still there) and must not return
// it twice in one run. What gorgonia does with the value afterwards is
// unchanged: downstream ops read it within the run, an in-place op that
// gorgonia's compiler lets overwrite it (only when no later op of the run
// reads it) may do so, and the caller may read it after the run. Anyone
// who keeps the value past the next run of the op sees it overwritten.
type Buffer struct {
	data []float32
	d    *tensor.Dense
}

// Dense returns a float32 tensor of the given shape backed by the
// buffer, and its elements: the tensor of the previous call when it
// still has that shape and backing array (gorgonia ops may reshape a
// value in place), else a new header over the buffer, grown if shape
// holds more elements than it has room for. The contents are whatever the
// buffer last held.
func (b *Buffer) Dense(shape tensor.Shape) (*tensor.Dense, []float32) {
	n := shape.TotalSize()
	if cap(b.data) < n {
		b.data, b.d = make([]float32, n), nil
	}
	data := b.data[:n]
	if b.d != nil && b.d.Shape().Eq(shape) && !b.d.RequiresIterator() {
		if v, ok := b.d.Data().([]float32); ok && len(v) == n && (n == 0 || &v[0] == &data[0]) {
			return b.d, data
		}
	}
	b.d = NewDense(shape, data)
	return b.d, data
}

var lastID atomic.Uint64

// NewID returns a number no other call returns. Every op hashes its own,
// because gorgonia merges nodes of equal hash and equal children: two
// quantizers or convolutions on the same input must stay two nodes.
func NewID() uint64 { return lastID.Add(1) }

// HashOf is the Hashcode of an op: FNV-1a over what its WriteHash writes.
func HashOf(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
