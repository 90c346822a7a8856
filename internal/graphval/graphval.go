// Package graphval holds what qat's custom gorgonia ops share: conversion
// between gorgonia values and the float32 slices they compute on (the ops
// are float32 only), and instance ids for their hashes.
package graphval

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

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

// NewDense wraps data as a float32 tensor of the given shape; the tensor
// owns data from then on.
func NewDense(shape tensor.Shape, data []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(data))
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
