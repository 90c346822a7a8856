package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrInvalid is wrapped by every error that reports a Tensor or File that
// cannot be written, and by the typed getters' errors.
var ErrInvalid = errors.New("invalid safetensors content")

// Tensor is one named array of a File: its element type, its row-major
// shape, and its elements as little-endian bytes. A 0-d tensor (empty
// Shape) holds one element.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// byteSize returns the number of bytes of a tensor of the given type and
// shape, or an error (without sentinel) naming the problem.
func byteSize(d DType, shape []int) (int, error) {
	size := d.Size()
	if size == 0 {
		return 0, fmt.Errorf("unknown dtype %q", string(d))
	}
	n := 1
	for i, dim := range shape {
		if dim < 0 {
			return 0, fmt.Errorf("shape %v: dimension %d is negative", shape, i)
		}
		if dim != 0 && n > math.MaxInt/dim {
			return 0, fmt.Errorf("shape %v: element count overflows", shape)
		}
		n *= dim
	}
	if n > math.MaxInt/size {
		return 0, fmt.Errorf("shape %v of %s: byte size overflows", shape, d)
	}
	return n * size, nil
}

// Validate checks that t's type is supported, its dimensions non-negative,
// and its data exactly as long as its shape and type require.
func (t Tensor) Validate() error {
	n, err := byteSize(t.DType, t.Shape)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(t.Data) != n {
		return fmt.Errorf("%w: %d data bytes, want %d for %s %v", ErrInvalid, len(t.Data), n, t.DType, t.Shape)
	}
	return nil
}

// NumElements returns the product of t's shape (1 for a 0-d tensor). It
// does not look at Data; for a shape that fails Validate the result is
// meaningless.
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// newTensor checks that shape holds n elements, panicking otherwise, and
// returns a tensor with a copy of shape and a zeroed data buffer.
func newTensor(d DType, shape []int, n int) Tensor {
	size, err := byteSize(d, shape)
	if err != nil {
		panic("safetensors: " + err.Error())
	}
	if size != n*d.Size() {
		panic(fmt.Sprintf("safetensors: shape %v holds %d elements, got %d values", shape, size/d.Size(), n))
	}
	return Tensor{DType: d, Shape: append([]int{}, shape...), Data: make([]byte, size)}
}

// checked returns t's data after checking that t is a valid tensor of type d.
func (t Tensor) checked(d DType) ([]byte, error) {
	if t.DType != d {
		return nil, fmt.Errorf("%w: tensor is %s, want %s", ErrInvalid, t.DType, d)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t.Data, nil
}

// FromFloat32 returns an F32 tensor of the given shape holding a copy of v.
// It panics if a dimension is negative or the shape does not hold len(v)
// elements.
func FromFloat32(shape []int, v []float32) Tensor {
	t := newTensor(F32, shape, len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(x))
	}
	return t
}

// Float32 returns a copy of the elements of an F32 tensor, bit for bit
// (NaN payloads included). It fails for another dtype or a data length that
// does not match the shape.
func (t Tensor) Float32() ([]float32, error) {
	b, err := t.checked(F32)
	if err != nil {
		return nil, err
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// FromInt8 returns an I8 tensor of the given shape holding a copy of v.
// It panics if a dimension is negative or the shape does not hold len(v)
// elements.
func FromInt8(shape []int, v []int8) Tensor {
	t := newTensor(I8, shape, len(v))
	for i, x := range v {
		t.Data[i] = byte(x)
	}
	return t
}

// Int8 returns a copy of the elements of an I8 tensor. It fails for another
// dtype or a data length that does not match the shape.
func (t Tensor) Int8() ([]int8, error) {
	b, err := t.checked(I8)
	if err != nil {
		return nil, err
	}
	v := make([]int8, len(b))
	for i, x := range b {
		v[i] = int8(x)
	}
	return v, nil
}

// FromUint8 returns a U8 tensor of the given shape holding a copy of v.
// It panics if a dimension is negative or the shape does not hold len(v)
// elements.
func FromUint8(shape []int, v []uint8) Tensor {
	t := newTensor(U8, shape, len(v))
	copy(t.Data, v)
	return t
}

// Uint8 returns a copy of the elements of a U8 tensor. It fails for another
// dtype or a data length that does not match the shape.
func (t Tensor) Uint8() ([]uint8, error) {
	b, err := t.checked(U8)
	if err != nil {
		return nil, err
	}
	return append([]uint8{}, b...), nil
}

// FromInt32 returns an I32 tensor of the given shape holding a copy of v.
// It panics if a dimension is negative or the shape does not hold len(v)
// elements.
func FromInt32(shape []int, v []int32) Tensor {
	t := newTensor(I32, shape, len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(t.Data[4*i:], uint32(x))
	}
	return t
}

// Int32 returns a copy of the elements of an I32 tensor. It fails for
// another dtype or a data length that does not match the shape.
func (t Tensor) Int32() ([]int32, error) {
	b, err := t.checked(I32)
	if err != nil {
		return nil, err
	}
	v := make([]int32, len(b)/4)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// FromInt64 returns an I64 tensor of the given shape holding a copy of v
// (PyTorch's num_batches_tracked is a 0-d I64 tensor). It panics if a
// dimension is negative or the shape does not hold len(v) elements.
func FromInt64(shape []int, v []int64) Tensor {
	t := newTensor(I64, shape, len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(t.Data[8*i:], uint64(x))
	}
	return t
}

// Int64 returns a copy of the elements of an I64 tensor. It fails for
// another dtype or a data length that does not match the shape.
func (t Tensor) Int64() ([]int64, error) {
	b, err := t.checked(I64)
	if err != nil {
		return nil, err
	}
	v := make([]int64, len(b)/8)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return v, nil
}
