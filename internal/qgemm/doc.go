// Package qgemm is the exact integer matrix multiply of qat's int8
// runtime: C = A*B with A uint8 (activations, m x K, row stride lda >= K),
// B int8 weight codes of 8, 4 or 2 bits (K x N, packed once by Pack) and C
// int32 (m x N, row stride ldc >= N).
//
// # Exactness
//
// Every kernel computes c[i*ldc+j] = sum_k a[i*lda+k]*B[k][j] exactly, in
// int32, without saturation or rounding anywhere, so all kernels return the
// same bits (the tests compare each one with an int64 triple loop, extreme
// codes included). As |a| <= 255 and |B| <= 128, |C| <= 255*128*K < 2^31
// for K <= MaxK = 65792, which Pack enforces; the kernels' intermediate
// arithmetic is exact too (the generators show why). Zero points are the
// caller's: sum_k (a-za)*B[k][j] = C[i][j] - za*ColSums()[j].
//
// # Files and build tags
//
// qgemm.go (Gemm, GemmParallel, dispatch and the pure-Go reference kernel
// gemmGeneric) and pack.go (Packed) are always compiled. The assembly:
//
//	amd64 && !noasm              kernel_amd64.go, driver_amd64.go, kernel_amd64.s, zkernel_amd64.go
//	arm64 && !noasm              kernel_arm64.go, driver_arm64.go, kernel_arm64.s, zkernel_arm64.go
//	(!amd64 && !arm64) || noasm  kernel_other.go: no x86 kernels, gemmAsm panics
//	!arm64 || noasm              kernel_noneon.go: no NEON kernels
//
// gen_kernel.go and gen_kernel_arm64.go (tag ignore; go generate) write the
// .s files and their z*.go declarations.
//
// # Kernels and dispatch
//
// Available lists Generic and the kernels internal/cpufeat allows; Gemm
// uses Selected, the last of them; GemmWith forces one (tests, benchmarks).
//
//	AVX512VNNI  X86.AVX512VNNI  VPDPBUSD on zmm, tiles of 8 rows x 48 columns (3 panels)
//	AVXVNNI     X86.AVXVNNI     VEX-encoded VPDPBUSD on ymm (emitted as bytes: Go's
//	                            assembler has only the EVEX form), 6 x 16, on packed B,
//	                            for all codes (int32 sums of 4 products: no saturation)
//	AVX2        X86.AVX2        VPMADDWD on int16 copies of A and B, 5 x 16, for 8-bit codes;
//	                            VPMADDUBSW on packed B, 6 x 16, for 4-/2-bit codes and 8-bit
//	                            codes all within [-64, 64], where its int16 sums cannot saturate
//	NEONDot     ARM64.ASIMDDP   SDOT on a-128, starting from 128*ColSums, 4 x 16
//	NEON        ARM64.ASIMD     MUL and SADALP on int16, 2 x 16
//	Generic     always          pure Go, 1 x 16, 4 k per step
//
// Selected is the first available kernel of this table: on x86-64
// AVX512VNNI, then AVXVNNI (CPUs with AVX-VNNI but not AVX-512: Alder
// Lake and later client cores, Sierra Forest), then AVX2. QAT_CPU=avx512
// thus selects AVXVNNI where the CPU has AVX-VNNI, else AVX2; vnni or
// avx512,vnni selects AVX2, avx2 or asm Generic; on arm64 asimddp selects
// NEON, asimd or asm Generic. The tests run every available kernel;
// TestX86Dispatch checks the x86 order against cpufeat; on arm64,
// TestNEONKernels fails unless Selected is the kernel named by
// QAT_EXPECT_KERNEL, when set (CI sets it for each qemu run).
//
// # Packing layout of B
//
// Pack takes w row-major [N][K] (PyTorch's weight layout) and stores B =
// w^T in panels of 16 columns, each a run of 64-byte units (64-byte
// aligned). Unit u of panel q covers unitK = 32/bits values of k from k0 =
// u*unitK: byte 4*c+r holds in bit field f (two's complement, f < 8/bits)
// the code of B[k0+4*f+r][16*q+c]. At 8 bits this is VPDPBUSD's operand
// (16 dwords of 4 consecutive k: one zmm, or two ymm of 8 columns for
// AVXVNNI); at 4 and 2 bits 2 or 4 such groups share the bytes, and stay
// packed: kernels expand them in registers or, in Go, per element. Columns past N and k past K are zero codes. For 8-bit codes
// not all within [-64, 64] the AVX2 kernel reads an int16 copy (per 4 k
// and panel, 64 bytes of pairs (B[k0][c], B[k0+2][c]), then 64 of
// (B[k0+1][c], B[k0+3][c])), built by Pack when AVX2 is Selected, else on
// first forced use.
//
// # Convolutions
//
// GemmConv computes the same product with A the implicit im2col matrix of
// a convolution (Conv): each row's K values are window rows (segments)
// read from the sample itself, each padded by the caller's weights to a
// multiple of UnitK with zero codes, so no im2col rows are gathered. The
// AVX-512 VNNI kernels read the segments in place (their segs and skip
// arguments step the A offset from one window row to the next; their
// tiles argument runs an output row's whole row tiles in one call); the
// AVX2 and AVX-VNNI drivers copy window rows of 16 codes or more straight
// into the A buffer they fill anyway; otherwise (Generic, NEON, shorter
// rows) blocks of rows are gathered into a pooled buffer and multiplied
// by Gemm's kernels. ConvDirect reports which. The tests compare every
// kernel with im2col rows times the int64 reference.
//
// # Buffers and threads
//
// Gemm reads a only for i < m, k < K and writes c only for i < m, j < N
// (a guard-page test checks it), keeps no reference to either, and
// allocates nothing in steady state. Generic needs no buffer; AVX512VNNI
// reads A in place (its K tail through masked loads into its frame); AVX2
// and AVXVNNI copy each row block and k block of A into a 120 KiB buffer
// taken from a sync.Pool for the call; NEON reads A in place and stages
// its K tail and edge tiles on the stack. The assembly drivers' k blocks
// are at most 1024 values (later ones add to C), their column blocks at
// most 1 MiB (AVX512VNNI) or 256 KiB of B. A Packed owns its memory and
// ColSums and is read-only after Pack (the int16 copy is built under a
// sync.Once), so any number of goroutines may share it. Gemm runs on the calling goroutine;
// GemmParallel splits the rows or, when there are fewer row tiles than
// goroutines, the 16-column panels, never K: each element is one
// goroutine's exact sum, identical to Gemm's.
package qgemm
