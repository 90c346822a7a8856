//go:build (!amd64 && !arm64) || noasm

package qvec

// No assembly on this architecture or with the noasm tag.
const (
	hasAVX512 = false
	hasAVX2   = false
)

func requantFloat(dst []uint8, acc, bias []int32, mult []float32, rows, n int, zp, lo, hi int32) {
	requantFloatGo(dst, acc, bias, mult, rows, n, zp, lo, hi)
}

func requantFixed(dst []uint8, acc, bias, m0, shift []int32, rows, n int, zp, lo, hi int32) {
	requantFixedGo(dst, acc, bias, m0, shift, rows, n, zp, lo, hi)
}

func maxBytes(dst, a, b []uint8) { maxBytesGo(dst, a, b) }

func addCodes(dst, a, b []uint8, p AddParams) { addCodesGo(dst, a, b, p) }
