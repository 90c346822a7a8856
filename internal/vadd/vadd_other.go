//go:build !amd64 || noasm

package vadd

func rowsAdd(dst []float32, dstStride int, src []float32, srcStride, rows, n int) {
	rowsGo(dst, dstStride, src, srcStride, rows, n)
}
