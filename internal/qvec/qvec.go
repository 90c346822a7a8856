package qvec

import (
	"fmt"
	"math"

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

// RequantFixed writes, for every row r and column j of the rows x n matrix
// acc (n = len(bias) = len(m0) = len(shift), len(acc) = len(dst) = rows*n),
//
//	dst[r*n+j] = uint8(quant.RequantizeFixed(acc[r*n+j]+bias[j], m0[j], shift[j], zp, lo, hi))
//
// with 0 <= lo <= hi <= 255 and the int32 addition wrapping: integer
// arithmetic only, gemmlowp's SaturatingRoundingDoublingHighMul (ties
// toward +Inf, MinInt32 * MinInt32 saturating to MaxInt32) after a left
// shift by -shift[j] saturated to int32 when shift[j] < 0, then
// RoundingDivideByPOT by shift[j] when shift[j] > 0 (ties away from zero).
// Every m0[j] and zp may be any int32; every shift[j] must be at least -32
// (quant.FixedMultiplier and qmodel give [-31, 62]; below -32 the
// reference's 64-bit left shift wraps). It panics when the lengths do not
// fit together or a shift is below -32.
func RequantFixed(dst []uint8, acc, bias, m0, shift []int32, zp, lo, hi int32) {
	n := len(bias)
	if len(m0) != n || len(shift) != n || len(dst) != len(acc) || (n == 0 && len(acc) != 0) || (n > 0 && len(acc)%n != 0) {
		panic(fmt.Sprintf("qvec: RequantFixed lengths dst %d, acc %d, bias %d, m0 %d, shift %d", len(dst), len(acc), len(bias), len(m0), len(shift)))
	}
	for j, s := range shift {
		if s < MinShift {
			panic(fmt.Sprintf("qvec: RequantFixed shift[%d] = %d is below %d", j, s, MinShift))
		}
	}
	if len(acc) == 0 {
		return
	}
	requantFixed(dst, acc, bias, m0, shift, len(acc)/n, n, zp, lo, hi)
}

// AddParams are the quantizations of AddCodes: the inputs' zero points
// and scales, the output's reciprocal scale Inv (float32(1/scale)) and
// zero point, and the output clamp [Lo, Hi], 0 <= Lo <= Hi <= 255.
type AddParams struct {
	ZA, ZB int32
	SA, SB float32
	Inv    float32
	ZP     int32
	Lo, Hi int32
}

// AddCodes writes, for every i of the equal-length dst, a and b, the code
// of the sum of the dequantized codes a[i] and b[i], requantized:
//
//	x := float32(float32(int32(a[i])-ZA)*SA) + float32(float32(int32(b[i])-ZB)*SB)
//	dst[i] = uint8(quant.Code(x, Inv, ZP, Lo, Hi))
//
// each product and the sum rounded to float32 (never fused). dst may be a
// or b. It panics when the lengths differ. The vector kernels run when no
// NaN can arise (finite scales whose products with 255 are finite, Inv
// finite and non-zero: x is then finite or infinite and x*Inv never
// NaN), the pure-Go loop otherwise.
func AddCodes(dst, a, b []uint8, p AddParams) {
	if len(a) != len(dst) || len(b) != len(dst) {
		panic(fmt.Sprintf("qvec: AddCodes lengths dst %d, a %d, b %d", len(dst), len(a), len(b)))
	}
	if len(dst) == 0 {
		return
	}
	if !p.noNaN() {
		addCodesGo(dst, a, b, p)
		return
	}
	addCodes(dst, a, b, p)
}

// noNaN reports whether AddCodes' arithmetic cannot produce a NaN for any
// codes (see AddCodes).
func (p AddParams) noNaN() bool {
	finite := func(v float32) bool { return !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) }
	return finite(p.SA*255) && finite(p.SB*255) && finite(p.Inv) && p.Inv != 0
}

// addCodesGo is the pure-Go AddCodes, its definition.
func addCodesGo(dst, a, b []uint8, p AddParams) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		x := float32(float32(int32(a[i])-p.ZA)*p.SA) + float32(float32(int32(b[i])-p.ZB)*p.SB)
		q, _ := quant.Code(x, p.Inv, p.ZP, p.Lo, p.Hi)
		dst[i] = uint8(q)
	}
}

// MinShift is the smallest shift RequantFixed takes: a left shift by 32.
const MinShift = -32

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

// MaxWindows writes the byte-wise maxima of windows of k chunks of c
// bytes: for each window i < n = len(dst)/c and byte ch < c,
//
//	dst[i*c+ch] = max over kx < k of src[i*step+kx*c+ch]
//
// which is the column pass of a max pool over one row of channels-last
// codes (c channels, window k, step = stride*c). dst must not overlap
// src. It panics when c < 1, k < 1, step < 0, len(dst) is not a multiple
// of c or src is shorter than the last window's end, (n-1)*step + k*c.
func MaxWindows(dst, src []uint8, c, k, step int) {
	if c < 1 || k < 1 || step < 0 || len(dst)%c != 0 || (len(dst) > 0 && len(src) < (len(dst)/c-1)*step+k*c) {
		panic(fmt.Sprintf("qvec: MaxWindows of %d bytes into %d, c %d, k %d, step %d", len(src), len(dst), c, k, step))
	}
	if len(dst) == 0 {
		return
	}
	maxWindows(dst, src, c, k, step)
}

// MaxWindowsInt32 is MaxWindows on int32 values, c and step counted in
// elements: for each window i < n = len(dst)/c and element ch < c,
//
//	dst[i*c+ch] = max over kx < k of src[i*step+kx*c+ch]
//
// With n = 1 it is also the row pass of a max pool: the maxima of k
// consecutive rows of c values. dst must not overlap src. It panics when
// c < 1, k < 1, step < 0, len(dst) is not a multiple of c or src is
// shorter than the last window's end, (n-1)*step + k*c.
func MaxWindowsInt32(dst, src []int32, c, k, step int) {
	if c < 1 || k < 1 || step < 0 || len(dst)%c != 0 || (len(dst) > 0 && len(src) < (len(dst)/c-1)*step+k*c) {
		panic(fmt.Sprintf("qvec: MaxWindowsInt32 of %d values into %d, c %d, k %d, step %d", len(src), len(dst), c, k, step))
	}
	if len(dst) == 0 {
		return
	}
	maxWindowsInt32(dst, src, c, k, step)
}

// maxWindowsInt32Go is the pure-Go MaxWindowsInt32 on checked arguments.
func maxWindowsInt32Go(dst, src []int32, c, k, step int) {
	for i := range len(dst) / c {
		d := dst[i*c : (i+1)*c]
		copy(d, src[i*step:i*step+c])
		for kx := 1; kx < k; kx++ {
			s := src[i*step+kx*c : i*step+(kx+1)*c]
			for j := range d {
				d[j] = max(d[j], s[j])
			}
		}
	}
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

// requantFixedGo is the pure-Go RequantFixed on checked arguments.
func requantFixedGo(dst []uint8, acc, bias, m0, shift []int32, rows, n int, zp, lo, hi int32) {
	for r := range rows {
		a, d := acc[r*n:(r+1)*n], dst[r*n:(r+1)*n]
		for j := range a {
			d[j] = uint8(quant.RequantizeFixed(a[j]+bias[j], m0[j], shift[j], zp, lo, hi))
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

// maxWindowsGo is the pure-Go MaxWindows on checked arguments.
func maxWindowsGo(dst, src []uint8, c, k, step int) {
	for i := range len(dst) / c {
		d := dst[i*c : (i+1)*c]
		copy(d, src[i*step:i*step+c])
		for kx := 1; kx < k; kx++ {
			maxBytesGo(d, d, src[i*step+kx*c:i*step+(kx+1)*c])
		}
	}
}
