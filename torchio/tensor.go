package torchio

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"qat/safetensors"
)

// dtype is an element type: PyTorch's name and the bytes of an element.
type dtype struct {
	name string
	size int
}

// supported reports whether ReadStateDict converts elements of type d.
func (d dtype) supported() bool {
	switch d.name {
	case "float32", "float64", "float16", "bfloat16", "int64":
		return true
	}
	return false
}

// safetensorsTypes maps the safetensors element types ReadStateDict reads
// to PyTorch's.
var safetensorsTypes = map[safetensors.DType]dtype{
	safetensors.F32:  {"float32", 4},
	safetensors.F64:  {"float64", 8},
	safetensors.F16:  {"float16", 2},
	safetensors.BF16: {"bfloat16", 2},
	safetensors.I64:  {"int64", 8},
}

func unsupported(name, dtype string) error {
	return fmt.Errorf("tensor %q has dtype %s: only float32, float64, float16, bfloat16 and int64 tensors are read", name, dtype)
}

// decode converts data, the little-endian elements of type d of tensor
// name of the given shape, which it holds exactly. budget is what
// MaxBytes leaves for converted tensors; decode takes its tensor's size
// from it.
func decode(name string, d dtype, shape []int, data []byte, budget *int64) (Tensor, error) {
	if !d.supported() {
		return Tensor{}, unsupported(name, d.name)
	}
	n := len(data) / d.size
	out := int64(n) * 4
	if d.name == "int64" {
		out = int64(n) * 8
	}
	if out > *budget {
		return Tensor{}, fmt.Errorf("tensor %q: the tensors reach more than %d bytes as float32 and int64, the limit (torchio.MaxBytes)", name, MaxBytes)
	}
	*budget -= out
	t := Tensor{Shape: slices.Clone(shape), DType: d.name}
	if d.name == "int64" {
		t.Int = make([]int64, n)
		for i := range t.Int {
			t.Int[i] = int64(binary.LittleEndian.Uint64(data[8*i:]))
		}
		return t, nil
	}
	t.Float = make([]float32, n)
	for i := range t.Float {
		switch d.name {
		case "float32":
			t.Float[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		case "float64":
			t.Float[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:])))
		case "float16":
			t.Float[i] = halfToFloat32(binary.LittleEndian.Uint16(data[2*i:]))
		case "bfloat16":
			t.Float[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(data[2*i:])) << 16)
		}
	}
	return t, nil
}

// halfToFloat32 returns the IEEE 754 binary16 value h as a float32, which
// holds every such value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinities and NaNs
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127
		return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
	}
	v := float32(frac) / (1 << 24) // zero or subnormal: frac * 2^-24
	if sign != 0 {
		v = -v
	}
	return v
}
