package qvec

import (
	"fmt"

	"qat/quant"
)

// RequantFloat writes, for every row r and column j of the rows x n matrix
// acc (n = len(bias) = len(mult), len(acc) = len(dst) = rows*n),
//
//	dst[r*n+j] = uint8(quant.RequantizeFloat(acc[r*n+j]+bias[j], mult[j], zp, lo, hi))
//
// with 0 <= lo <= hi <= 255 and the int32 addition wrapping. It panics when
// the lengths do not fit together.
func RequantFloat(dst []uint8, acc, bias []int32, mult []float32, zp, lo, hi int32) {
	n := len(bias)
	if len(mult) != n || len(dst) != len(acc) || (n == 0 && len(acc) != 0) || (n > 0 && len(acc)%n != 0) {
		panic(fmt.Sprintf("qvec: RequantFloat lengths dst %d, acc %d, bias %d, mult %d", len(dst), len(acc), len(bias), len(mult)))
	}
	if len(acc) == 0 {
		return
	}
	requantFloat(dst, acc, bias, mult, len(acc)/n, n, zp, lo, hi)
}

// MaxBytes writes dst[i] = max(a[i], b[i]) for equal-length slices; dst may
// alias a or b. It panics when the lengths differ.
func MaxBytes(dst, a, b []uint8) {
	if len(a) != len(dst) || len(b) != len(dst) {
		panic(fmt.Sprintf("qvec: MaxBytes lengths dst %d, a %d, b %d", len(dst), len(a), len(b)))
	}
	if len(dst) == 0 {
		return
	}
	maxBytes(dst, a, b)
}

// requantFloatGo is the pure-Go RequantFloat on checked arguments.
func requantFloatGo(dst []uint8, acc, bias []int32, mult []float32, rows, n int, zp, lo, hi int32) {
	for r := range rows {
		a, d := acc[r*n:(r+1)*n], dst[r*n:(r+1)*n]
		for j := range a {
			d[j] = uint8(quant.RequantizeFloat(a[j]+bias[j], mult[j], zp, lo, hi))
		}
	}
}

// maxBytesGo is the pure-Go MaxBytes on checked arguments.
func maxBytesGo(dst, a, b []uint8) {
	b = b[:len(dst)]
	a = a[:len(dst)]
	for i := range dst {
		dst[i] = max(a[i], b[i])
	}
}
