// Package qgemm is the exact integer matrix multiply of qat's int8
// inference runtime: C = A·B with A uint8 (activations), B int8 codes of
// 8, 4 or 2 bits (weights) and C int32.
//
// # Semantics and exactness
//
// Gemm computes c[i*ldc+j] = sum_k a[i*lda+k] * B[k][j] for i < m,
// j < N, k < K, in int32 without saturation or rounding anywhere: every
// kernel returns the same, exact result. Since |a| <= 255 and |B| <= 128,
// |C| <= 255*128*K, which stays below 2^31 for K <= MaxK = 65792; Pack
// rejects larger K. The kernels' partial sums obey the same bound (the
// 4- and 2-bit AVX-512 kernels accumulate 16 or 64 times the codes, whose
// magnitude is at most 8 or 2, so again at most 255*128 per k).
//
// Zero points are the caller's business: for activations with zero point
// za, sum_k (a-za)*b = C - za*ColSums()[j].
//
// # Layouts and ownership
//
// A is row-major m x K with row stride lda >= K; C is row-major m x N
// with row stride ldc >= N. Gemm reads a[i*lda+k] only for i < m, k < K
// (never the padding between rows nor anything past the last row's K-th
// byte) and writes c[i*ldc+j] only for i < m, j < N. Both slices belong
// to the caller; Gemm keeps no reference to them after it returns.
// Arguments that do not describe valid matrices (m < 0, strides too
// small, slices too short, nil B) are programming errors: Gemm panics.
//
// B is given to Pack as w, row-major [N][K] (PyTorch's weight layout:
// row n holds the K weights of output n) and packed once into a Packed
// that owns its memory, is never modified afterwards and may be used by
// any number of goroutines at once. Packed cuts B into panels of 16
// columns; each panel is a sequence of 64-byte units, one unit holding 16
// columns times 4 consecutive k at 8 bits (the VPDPBUSD operand: byte
// 4*c+r is B[k0+r][c]), 8 k at 4 bits and 16 k at 2 bits, the extra k
// groups stacked in the bit fields of each byte (field f of byte 4*c+r
// is B[k0+4*f+r][c]). Columns past N and k past K are zero codes. The
// units are 64-byte aligned. 4- and 2-bit codes stay packed, 2 or 4 to a
// byte: no kernel makes an int8 (or float) copy of B; the assembly
// kernels expand codes in registers and the Go kernel one element at a
// time. Packed.Bytes is the packed size; ColSums (sum over k of each
// column) is owned by the Packed and must not be modified.
//
// # Kernels and dispatch
//
// Three kernels compute the same results:
//
//   - AVX512VNNI: VPDPBUSD on zmm registers, micro-tiles of 8 rows x 48
//     columns (24 accumulators held for a whole k block, a 4-byte
//     broadcast of A per row and a 64-byte load of B per panel for each 4
//     k). 4- and 2-bit codes are shifted to the top of their byte
//     (VPSLLW, VPANDD), which multiplies them by 16 or 64, and the sums
//     are shifted back (VPSRAD) before the store. Needs AVX-512 F, BW, VL
//     and VNNI.
//   - AVX2: VPMADDWD on ymm registers, micro-tiles of 4 rows x 16 columns
//     (one panel). Even and odd bytes of A and B are widened to int16 so
//     that two VPMADDWD give the exact sum of 4 products (VPMADDUBSW
//     would saturate: 2*255*127 > 32767).
//   - Generic: pure Go, the reference; always compiled.
//
// Gemm uses Selected, the best kernel of Available: AVX512VNNI, else
// AVX2, else Generic, according to golang.org/x/sys/cpu (which also
// checks that the OS saves the vector registers). GemmWith forces one.
// The assembly is amd64 only and is generated: gen_kernel.go writes
// kernel_amd64.s and zkernel_amd64.go ("go generate"). Building with the
// tag noasm leaves only Generic.
//
// Tiles at the edges are exact, not padded: there is a kernel for every
// height up to the tile's, and the last vector of a row of C is loaded
// and stored under a mask of its valid columns. The K tail that is not a
// whole unit (K mod 4, 8 or 16 values) is read with byte-masked loads
// (AVX-512) or byte by byte (AVX2) into a zero-padded copy in the
// kernel's frame, so A is never read past column K.
//
// # Blocking and threads
//
// The assembly driver loops, outermost first, over blocks of 256 rows,
// k blocks of at most 1024 values (later blocks add to C), column blocks
// of at most 1 MiB of packed B (kept in L2), micro-tile rows (their k
// block of A, at most 8 KiB, stays in L1) and micro-tile columns. A is
// read in place: no packing, no buffers, no allocation. Gemm runs on the
// calling goroutine; GemmParallel splits rows (or, for small m, panels)
// across goroutines, with identical results.
package qgemm
