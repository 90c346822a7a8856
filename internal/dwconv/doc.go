// Package dwconv computes the accumulators of a depthwise convolution (one
// input and one output channel a group) on staged int32 codes, the kernel
// the int8 runtime runs instead of a GEMM, which would see K = k*k values
// a row and one column a group.
//
// # Arithmetic
//
// Row computes, for one output row, acc[ox*c+ch] = sum over the taps t
// of x[off[t] + ox*colStep + ch] * w[t*c + ch], exactly in int32. The
// staged input x holds q - zin, the input code minus its zero point, in
// [-255, 255] (a padded position holds 0); the weights are int8 codes
// widened by Weights to int32 lanes whose low 16 bits are the code and
// whose high 16 bits are zero. Every product is at most 255*128 = 32640 in
// magnitude, and a row of at most MaxTaps taps sums to less than 2^31:
// nothing overflows, saturates or rounds, so every kernel returns the
// same bits.
//
// # Kernels
//
// On amd64 the AVX-512 kernel (F and BW: VPMADDWD on zmm, 16 channels at
// a time, the last c%16 under a K mask) or the AVX2 one (ymm, 8 channels,
// the last c%8 under a VPMASKMOVD mask) runs when internal/cpufeat allows
// it (QAT_CPU switches them off); elsewhere, or with the noasm tag, the
// pure-Go reference rowGo. VPMADDWD multiplies the low and the high 16
// bits of each lane pairwise and adds the two products: the weight's high
// half is zero, so a lane gives x*w whatever x's high half holds (the
// sign extension of q - zin). The kernels loop over the taps, then the
// output columns, adding each tap's products to the row of accumulators
// in acc (one load, one multiply-add and one store per 16 or 8 values),
// so that no dependency chain is longer than one add. They read only the
// addresses the formula names, for channels below c, and write only
// acc[:ow*c].
//
// # Buffers
//
// Row keeps no reference to its arguments and allocates nothing; any
// number of goroutines may call it on different acc.
package dwconv
