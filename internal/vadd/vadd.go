package vadd

import "fmt"

// Rows adds rows of n values of src into rows of dst:
//
//	dst[r*dstStride+j] += src[r*srcStride+j]   for r < rows, j < n
//
// dst's rows must not overlap src's. It panics if rows or n is negative,
// a stride is below n (with more than one row), or dst or src is too
// short for the rows: programming errors.
func Rows(dst []float32, dstStride int, src []float32, srcStride, rows, n int) {
	if rows < 0 || n < 0 || (rows > 1 && (dstStride < n || srcStride < n)) {
		panic(fmt.Sprintf("vadd: Rows of %d rows of %d, strides %d and %d", rows, n, dstStride, srcStride))
	}
	if rows == 0 || n == 0 {
		return
	}
	if len(dst) < (rows-1)*dstStride+n || len(src) < (rows-1)*srcStride+n {
		panic(fmt.Sprintf("vadd: Rows of %d rows of %d, strides %d and %d, on %d and %d values", rows, n, dstStride, srcStride, len(dst), len(src)))
	}
	rowsAdd(dst, dstStride, src, srcStride, rows, n)
}

// rowsGo is the pure-Go Rows on checked arguments.
func rowsGo(dst []float32, dstStride int, src []float32, srcStride, rows, n int) {
	for r := range rows {
		d, s := dst[r*dstStride:r*dstStride+n], src[r*srcStride:r*srcStride+n]
		for j, v := range s {
			d[j] += v
		}
	}
}
