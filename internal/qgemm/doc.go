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
// time. ColSums (sum over k of each column) is owned by the Packed and
// must not be modified.
//
// For 8-bit codes that are not all within [-64, 64] the AVX2 kernel
// reads a second, int16 copy of them (VPMADDWD multiplies int16): per
// panel, 128 bytes per 4 k, the first 64 holding the pairs (B[k0][c],
// B[k0+2][c]) of the 16 columns, the next 64 the pairs (B[k0+1][c],
// B[k0+3][c]). Pack builds it when AVX2 is the selected kernel, and
// Packed.Bytes, the resident size of the codes, counts it: 3 bytes per
// padded code then. Where another kernel is selected the copy is only
// built (once, goroutine-safe) if GemmWith forces AVX2, and is not
// counted. 8-bit codes all within [-64, 64], and 4- and 2-bit codes, have
// no copy: the AVX2 kernel reads the packed units.
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
//   - AVX2: two kernel families on ymm registers, chosen per Packed at
//     Pack time. A is first copied into a buffer (see Blocking), so the
//     kernels have no K tail.
//     VPMADDWD, for 8-bit codes (the general case): micro-tiles of 5
//     rows x 16 columns (10 accumulators). A is widened to int16, B is
//     the int16 copy. Per 2 k and 8 columns one VPMADDWD multiplies a
//     broadcast int16 pair of A by the int16 pairs of B and adds each
//     pair into an int32 lane, one VPADDD accumulates (issued a row
//     later, so that it never waits for the multiply). Exact: |a*b| <=
//     255*128, so a pair sum (at most 65280 in magnitude) fits the lane.
//     VPMADDUBSW, for 4- and 2-bit codes and for 8-bit codes all within
//     [-64, 64]: micro-tiles of 6 rows x 16 columns. A stays uint8 and
//     B is read packed: 4- and 2-bit fields are shifted down, masked and
//     sign-extended to bytes by a VPSHUFB table, once per tile and unit
//     and shared by the 6 rows. VPMADDUBSW forms int16 sums of 2 u8 x s8
//     products and saturates beyond 32767, which cannot happen here:
//     2*255*64 = 32640 at 8 bits, 2*255*8 = 4080 and 2*255*2 = 1020 at 4
//     and 2 bits, where the sums of 2 fields are added (VPADDW, at most
//     8160) first. VPMADDWD by ones widens to int32, VPADDD accumulates.
//     Full-range 8-bit codes never take this path (2*255*127 > 32767).
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
// and stored under a mask of its valid columns. The VNNI kernel reads A
// in place; the K tail that is not a whole unit (K mod 4, 8 or 16
// values) is read with byte-masked loads into a zero-padded copy in the
// kernel's frame, so A is never read past column K.
//
// # Blocking and threads
//
// The VNNI driver loops, outermost first, over blocks of 256 rows, k
// blocks of at most 1024 values (later blocks add to C), column blocks
// of at most 1 MiB of packed B (kept in L2), micro-tile rows (their k
// block of A, at most 8 KiB, stays in L1) and micro-tile columns. A is
// read in place: no packing, no buffers, no allocation.
//
// The AVX2 driver loops over blocks of 60 rows and k blocks of at most
// 1024 values (later blocks add to C); for each it copies that block of
// A into a buffer (60*1024 int16, taken from a sync.Pool for the call:
// no allocation in steady state, one buffer per concurrent call): widened
// to int16 for VPMADDWD, each group of 4 values reordered 0, 2, 1, 3 so
// that one dword broadcast gives the pair that matches a B pair (VPSHUFB,
// VPMOVZXBW), or as bytes for VPMADDUBSW. Rows are zero-padded to a
// multiple of 16 values; the last K mod 16 bytes of a row are loaded as
// the 16 bytes ending at column K, shifted down, or, in rows shorter than
// 16 bytes, copied one at a time, so A is never read past column K. Then
// come column blocks of at most 256 KiB of B (L2), micro-tile rows
// (their A, at most 10 KiB, stays in L1) and panels. When K fits one k
// block and 60 rows of A are under 32 KiB of the buffer (small K, as an
// im2col of a 5x5 conv on one channel: K = 25), row blocks grow to up
// to 32 KiB of A (a multiple of 60 rows), so that fewer blocks share the
// work. When a column block has at most 2 panels (N <= 32, as in the
// lenet's convolutions) the loops are swapped, panels outside, and the
// kernel loops over the block's whole tiles of a panel itself: each AVX2
// kernel takes a tile count and, after storing a tile, moves its A and C
// pointers down by the tile's rows and starts over on the same B (one
// call per row block and panel instead of one per tile; the shorter last
// tile is one more call). Neither changes any sum: each element of C is
// still one kernel's sum over the same k blocks.
//
// Gemm runs on the calling goroutine; GemmParallel splits rows (whole
// micro-tiles) or, for small m, panels across goroutines, never K, so
// every element of C is computed by one goroutine in the same order:
// the results are identical to Gemm's.
package qgemm
