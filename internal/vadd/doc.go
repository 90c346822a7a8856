// Package vadd adds float32 rows into float32 rows with vector
// instructions: Rows computes dst[r*dstStride+j] += src[r*srcStride+j],
// the scatter-add of a convolution's column gradient into its input
// gradient (package ops, col2im).
//
// Each element gets one IEEE float32 addition, dst + src, rounded to
// nearest even, so every implementation gives the same bits: the
// AVX-512 kernel (16 lanes a zmm register, the row's n%16 tail under a K
// mask), the AVX2 one (8 lanes, the tail one element at a time) and the
// pure-Go reference rowsGo (QAT_CPU switches the kernels off; other
// architectures and the noasm tag use rowsGo). Rows reads and writes
// nothing outside the rows it is given and keeps no reference to them.
package vadd
