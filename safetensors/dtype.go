package safetensors

// DType is an element type, spelt as in a safetensors header.
type DType string

// The element types this package reads and writes. Sub-byte types of the
// specification (F4, F6_E2M3, F6_E3M2) are not supported.
const (
	Bool   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	F8E5M2 DType = "F8_E5M2"
	F8E4M3 DType = "F8_E4M3"
	F8E8M0 DType = "F8_E8M0"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	C64    DType = "C64"
	F64    DType = "F64"
	I64    DType = "I64"
	U64    DType = "U64"
)

type dtypeInfo struct {
	size int // bytes per element
	rank int // position in the reference implementation's Dtype enum
}

// dtypes lists the supported types in the order of the reference
// implementation's Dtype enum (huggingface/safetensors, tensor.rs), which
// its writer sorts by, descending.
var dtypes = func() map[DType]dtypeInfo {
	order := []struct {
		d    DType
		size int
	}{
		{Bool, 1}, {U8, 1}, {I8, 1}, {F8E5M2, 1}, {F8E4M3, 1}, {F8E8M0, 1},
		{I16, 2}, {U16, 2}, {F16, 2}, {BF16, 2},
		{I32, 4}, {U32, 4}, {F32, 4},
		{C64, 8}, {F64, 8}, {I64, 8}, {U64, 8},
	}
	m := make(map[DType]dtypeInfo, len(order))
	for i, o := range order {
		m[o.d] = dtypeInfo{size: o.size, rank: i}
	}
	return m
}()

// Size returns the number of bytes of one element, or 0 if d is not a
// supported type.
func (d DType) Size() int { return dtypes[d].size }

// Valid reports whether d is a supported type.
func (d DType) Valid() bool { return d.Size() > 0 }
