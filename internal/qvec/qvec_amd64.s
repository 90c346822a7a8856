//go:build amd64 && !noasm

#include "textflag.h"

// Constants of the AVX2 epilogues.
//
// tailmask<>+4*(8-t) is a VPMASKMOVD mask enabling the first t dwords.
DATA tailmask<>+0(SB)/8, $-1
DATA tailmask<>+8(SB)/8, $-1
DATA tailmask<>+16(SB)/8, $-1
DATA tailmask<>+24(SB)/8, $-1
DATA tailmask<>+32(SB)/8, $0
DATA tailmask<>+40(SB)/8, $0
DATA tailmask<>+48(SB)/8, $0
DATA tailmask<>+56(SB)/8, $0
GLOBL tailmask<>(SB), RODATA|NOPTR, $64

// lowbytes<> (VPSHUFB) gathers the low byte of each dword of a 128-bit
// lane into the lane's first four bytes; lowperm<> (VPERMD) then joins
// the two lanes' first dwords, so that the low bytes of the eight dwords
// end up, in order, in the register's first eight bytes.
DATA lowbytes<>+0(SB)/8, $0x808080800c080400
DATA lowbytes<>+8(SB)/8, $0x8080808080808080
DATA lowbytes<>+16(SB)/8, $0x808080800c080400
DATA lowbytes<>+24(SB)/8, $0x8080808080808080
GLOBL lowbytes<>(SB), RODATA|NOPTR, $32

DATA lowperm<>+0(SB)/8, $0x0000000400000000
DATA lowperm<>+8(SB)/8, $0
DATA lowperm<>+16(SB)/8, $0
DATA lowperm<>+24(SB)/8, $0
GLOBL lowperm<>(SB), RODATA|NOPTR, $32

// TAILMASK sets Y15 to the mask of the first CX (1 to 7) dwords; it
// clobbers R12 and R13.
#define TAILMASK \
	MOVQ    $8, R12; \
	SUBQ    CX, R12; \
	LEAQ    tailmask<>(SB), R13; \
	VMOVDQU (R13)(R12*4), Y15

// LSHIFT(a, x, t, u) adds the block's bias (0(SP)) to the accumulators in
// a and shifts them left by the block's ls (96(SP)), saturating, with
// Y13 MaxInt32; it clobbers x, t and u.
#define LSHIFT(a, x, t, u) \
	VPADDD    0(SP), a, a; \
	VPSLLVD   96(SP), a, x; \
	VPSRAVD   96(SP), x, t; \
	VPCMPEQD  a, t, t; \
	VPSRAD    $31, a, u; \
	VPXOR     Y13, u, u; \
	VPBLENDVB t, x, u, a

// FIXEDMUL(a, x, t, u) turns the shifted values in a into codes in x's
// dwords, with the block's constants in the frame (see requantFixedAVX2),
// Y8 vlo, Y9 vhi, Y10 zp, Y12 MinInt32 and Y14 2^30 in each qword; it
// clobbers t and u.
#define FIXEDMUL(a, x, t, u) \
	VPMULDQ   32(SP), a, x; \
	VPSRLQ    $32, a, t; \
	VPMULDQ   64(SP), t, t; \
	VPADDQ    Y14, x, x; \
	VPADDQ    Y14, t, t; \
	VPSRLQ    $31, x, x; \
	VPSLLQ    $1, t, t; \
	VPBLENDD  $0xaa, t, x, x; \
	VPCMPEQD  Y12, x, t; \
	VPXOR     t, x, x; \
	VPAND     160(SP), x, t; \
	VPSRLD    $31, x, u; \
	VPADDD    192(SP), u, u; \
	VPCMPGTD  u, t, t; \
	VPSRAVD   128(SP), x, x; \
	VPSUBD    t, x, x; \
	VPMAXSD   Y8, x, x; \
	VPMINSD   Y9, x, x; \
	VPADDD    Y10, x, x

// LOWBYTES(x) moves the low bytes of x's eight dwords into its first
// eight bytes, in order (Y7 lowbytes<>, Y6 lowperm<>).
#define LOWBYTES(x) \
	VPSHUFB Y7, x, x; \
	VPERMD  x, Y6, x

// func requantFloatAVX512(dst *uint8, acc, bias *int32, mult *float32, rows, n int, flo, fhi float32, zp int32)
//
// Per row, 16 columns at a time (the n%16 tail under mask K1, whose loads
// suppress faults and whose store writes only the enabled bytes):
//
//	v = acc + bias                 VPADDD (wraps)
//	f = float32(v) * mult          VCVTDQ2PS (half to even), VMULPS
//	f = min(max(f, flo), fhi)      VMAXPS, VMINPS
//	q = roundHalfEven(f) + zp      VCVTPS2DQ (MXCSR: nearest even), VPADDD
//	dst = uint8(q)                 VPMOVDB (q is in [lo, hi], no truncation)
TEXT ·requantFloatAVX512(SB), NOSPLIT, $0-60
	MOVQ dst+0(FP), DI
	MOVQ acc+8(FP), SI
	MOVQ bias+16(FP), BX
	MOVQ mult+24(FP), DX
	MOVQ rows+32(FP), R8
	MOVQ n+40(FP), R9
	VBROADCASTSS flo+48(FP), Z1
	VBROADCASTSS fhi+52(FP), Z2
	MOVL         zp+56(FP), AX
	VPBROADCASTD AX, Z3

	// R10 = columns in whole 16-lane blocks; K1 enables the n%16 tail lanes.
	MOVQ R9, R10
	ANDQ $~15, R10
	MOVQ R9, CX
	ANDQ $15, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1

row:
	XORQ R11, R11 // column j

	CMPQ R11, R10
	JGE  tail

block:
	VMOVDQU32 (SI)(R11*4), Z0
	VPADDD    (BX)(R11*4), Z0, Z0
	VCVTDQ2PS Z0, Z0
	VMULPS    (DX)(R11*4), Z0, Z0
	VMAXPS    Z1, Z0, Z0
	VMINPS    Z2, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPADDD    Z3, Z0, Z0
	VPMOVDB   Z0, (DI)(R11*1)
	ADDQ      $16, R11
	CMPQ      R11, R10
	JLT       block

tail:
	TESTQ CX, CX
	JZ    next
	VMOVDQU32.Z (SI)(R11*4), K1, Z0
	VPADDD.Z    (BX)(R11*4), Z0, K1, Z0
	VCVTDQ2PS   Z0, Z0
	VMULPS.Z    (DX)(R11*4), Z0, K1, Z0
	VMAXPS      Z1, Z0, Z0
	VMINPS      Z2, Z0, Z0
	VCVTPS2DQ   Z0, Z0
	VPADDD      Z3, Z0, Z0
	VPMOVDB     Z0, K1, (DI)(R11*1)

next:
	LEAQ (SI)(R9*4), SI
	ADDQ R9, DI
	DECQ R8
	JNZ  row

	VZEROUPPER
	RET

// func maxBytesAVX2(dst, a, b *uint8, n int)
//
// 32 bytes at a time with VPMAXUB, then one 16-byte and one 8-byte step
// for the n%32 tail, then the last n%8 bytes one at a time. Each block is
// loaded before it is stored, so dst may alias a or b.
TEXT ·maxBytesAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), BX
	MOVQ n+24(FP), CX
	XORQ AX, AX // index i
	MOVQ CX, R10
	ANDQ $~31, R10 // bytes in whole 32-byte blocks
	JZ   half

block:
	VMOVDQU (SI)(AX*1), Y0
	VPMAXUB (BX)(AX*1), Y0, Y0
	VMOVDQU Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, R10
	JLT     block
	VZEROUPPER

half:
	TESTQ $16, CX
	JZ    quarter
	VMOVDQU (SI)(AX*1), X0
	VPMAXUB (BX)(AX*1), X0, X0
	VMOVDQU X0, (DI)(AX*1)
	ADDQ    $16, AX

quarter:
	TESTQ $8, CX
	JZ    bytes
	MOVQ    (SI)(AX*1), X0
	MOVQ    (BX)(AX*1), X1
	VPMAXUB X1, X0, X0
	MOVQ    X0, (DI)(AX*1)
	ADDQ    $8, AX

bytes:
	CMPQ AX, CX
	JGE  done

byte:
	MOVBLZX (SI)(AX*1), R8
	MOVBLZX (BX)(AX*1), R9
	CMPL    R8, R9
	CMOVLCS R9, R8 // R8 < R9 (unsigned): take R9
	MOVB    R8, (DI)(AX*1)
	INCQ    AX
	CMPQ    AX, CX
	JLT     byte

done:
	RET

// func requantFloatAVX2(dst *uint8, acc, bias *int32, mult *float32, rows, n int, flo, fhi float32, zp int32)
//
// Eight columns at a time, and for each block of columns every row, so
// that the block's bias and mult stay in registers:
//
//	v = acc + bias                 VPADDD (wraps)
//	f = float32(v) * mult          VCVTDQ2PS (half to even), VMULPS
//	f = min(max(f, flo), fhi)      VMAXPS, VMINPS
//	q = roundHalfEven(f) + zp      VCVTPS2DQ (MXCSR: nearest even), VPADDD
//	dst = uint8(q)                 the low bytes (q is in [lo, hi])
//
// The last n%8 columns are loaded under a VPMASKMOVD mask (masked-out
// lanes are neither read nor faulted on, and read as 0) and stored a byte
// at a time, so nothing outside the slices is touched.
TEXT ·requantFloatAVX2(SB), NOSPLIT, $0-60
	MOVQ         dst+0(FP), R8
	MOVQ         acc+8(FP), R9
	MOVQ         n+40(FP), R11
	VBROADCASTSS flo+48(FP), Y8
	VBROADCASTSS fhi+52(FP), Y9
	MOVL         zp+56(FP), AX
	MOVQ         AX, X10
	VPBROADCASTD X10, Y10
	VMOVDQU      lowbytes<>(SB), Y7
	VMOVDQU      lowperm<>(SB), Y6
	XORQ         R10, R10            // first column j of the block

fblock:
	MOVQ R11, CX
	SUBQ R10, CX                     // columns left
	MOVQ bias+16(FP), BX
	MOVQ mult+24(FP), DX
	MOVQ rows+32(FP), R14
	LEAQ (R9)(R10*4), SI
	LEAQ (R8)(R10*1), DI
	CMPQ CX, $8
	JLT  ftail
	VMOVDQU (BX)(R10*4), Y2
	VMOVUPS (DX)(R10*4), Y3

frow:
	VPADDD    (SI), Y2, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS    Y3, Y0, Y0
	VMAXPS    Y8, Y0, Y0
	VMINPS    Y9, Y0, Y0
	VCVTPS2DQ Y0, Y1
	VPADDD    Y10, Y1, Y1
	LOWBYTES(Y1)
	MOVQ      X1, (DI)
	LEAQ      (SI)(R11*4), SI
	ADDQ      R11, DI
	DECQ      R14
	JNZ       frow
	ADDQ      $8, R10
	CMPQ      R10, R11
	JLT       fblock
	VZEROUPPER
	RET

ftail:
	TAILMASK
	VPMASKMOVD (BX)(R10*4), Y15, Y2
	VMASKMOVPS (DX)(R10*4), Y15, Y3

ftrow:
	VPMASKMOVD (SI), Y15, Y0
	VPADDD     Y2, Y0, Y0
	VCVTDQ2PS  Y0, Y0
	VMULPS     Y3, Y0, Y0
	VMAXPS     Y8, Y0, Y0
	VMINPS     Y9, Y0, Y0
	VCVTPS2DQ  Y0, Y1
	VPADDD     Y10, Y1, Y1
	LOWBYTES(Y1)
	MOVQ       X1, AX
	XORQ       R12, R12

ftbyte:
	MOVB AX, (DI)(R12*1)
	SHRQ $8, AX
	INCQ R12
	CMPQ R12, CX
	JLT  ftbyte
	LEAQ (SI)(R11*4), SI
	ADDQ R11, DI
	DECQ R14
	JNZ  ftrow
	VZEROUPPER
	RET

// func requantFixedAVX2(dst *uint8, acc, bias, m0, shift *int32, rows, n int, zp, vlo, vhi int32)
//
// Eight columns at a time, and for each block of columns every row, with
// the block's per-column constants in the frame: 0(SP) bias, 32 m0, 64 m0
// of the odd lanes moved to the even ones, 96 the left shift
// ls = max(-shift, 0), 128 the right shift e = max(shift, 0), 160
// mask = 2^e - 1 and 192 mask>>1. Per row:
//
//	a = acc + bias                     VPADDD (wraps)
//	x = a << ls, or MaxInt32 / MinInt32 (by the sign of a) where
//	    (a << ls) >> ls != a           VPSLLVD, VPSRAVD, VPBLENDVB
//	h = (x*m0 + 2^30) >> 31            VPMULDQ on the even and the odd
//	    lanes, the 64-bit sum shifted logically: its low 32 bits are
//	    floor((x*m0 + 2^30) / 2^31), which is srdhm's truncating division
//	    with its nudge, for either sign of x*m0; the one overflow,
//	    x = m0 = MinInt32, gives MinInt32, which srdhm never returns
//	    otherwise, and is turned into MaxInt32
//	v = (h >> e) + ((h & mask) > (mask >> 1) + (h < 0))
//	    RoundingDivideByPOT: VPSRAVD and VPSLLVD treat counts above 31 as
//	    32, which gives RoundingDivideByPOT's 0 for every h but MinInt32,
//	    which h is not
//	q = clamp(v, vlo, vhi) + zp        VPMAXSD, VPMINSD, VPADDD
//	dst = uint8(q)                     the low bytes (q is in [lo, hi])
//
// ls <= 32 (shift >= -32): a left shift by 32 saturates every nonzero a,
// as the reference's 64-bit shift does. The caller passes vlo and vhi such
// that the clamp keeps q in [lo, hi] (see requantFixed). A block of
// columns without left shifts (ls = 0 in every lane: x = a) skips the
// left-shift step; full blocks go two rows at a time. The n%8 tail is
// handled as in requantFloatAVX2.
TEXT ·requantFixedAVX2(SB), NOSPLIT, $224-68
	MOVQ         dst+0(FP), R8
	MOVQ         acc+8(FP), R9
	MOVQ         n+48(FP), R11
	MOVL         zp+56(FP), AX
	MOVQ         AX, X10
	VPBROADCASTD X10, Y10
	MOVL         vlo+60(FP), AX
	MOVQ         AX, X8
	VPBROADCASTD X8, Y8
	MOVL         vhi+64(FP), AX
	MOVQ         AX, X9
	VPBROADCASTD X9, Y9
	VMOVDQU      lowbytes<>(SB), Y7
	VMOVDQU      lowperm<>(SB), Y6
	VPCMPEQD     Y13, Y13, Y13
	VPSLLD       $31, Y13, Y12   // MinInt32
	VPSRLD       $1, Y13, Y13    // MaxInt32
	VPCMPEQD     Y14, Y14, Y14
	VPSRLQ       $63, Y14, Y14
	VPSLLQ       $30, Y14, Y14   // 2^30 in each qword
	XORQ         R10, R10        // first column j of the block

xblock:
	MOVQ R11, CX
	SUBQ R10, CX                 // columns left
	MOVQ bias+16(FP), BX
	MOVQ m0+24(FP), DX
	MOVQ shift+32(FP), AX
	LEAQ (BX)(R10*4), BX
	LEAQ (DX)(R10*4), DX
	LEAQ (AX)(R10*4), AX
	CMPQ CX, $8
	JLT  xtailconst
	VMOVDQU (BX), Y2
	VMOVDQU (DX), Y3
	VMOVDQU (AX), Y5
	JMP     xconst

xtailconst:
	TAILMASK
	VPMASKMOVD (BX), Y15, Y2
	VPMASKMOVD (DX), Y15, Y3
	VPMASKMOVD (AX), Y15, Y5

xconst:
	VMOVDQU  Y2, 0(SP)
	VMOVDQU  Y3, 32(SP)
	VPSRLQ   $32, Y3, Y0
	VMOVDQU  Y0, 64(SP)
	VPXOR    Y0, Y0, Y0
	VPSUBD   Y5, Y0, Y1
	VPMAXSD  Y0, Y1, Y1
	VMOVDQU  Y1, 96(SP)     // ls
	XORL     DX, DX
	VPTEST   Y1, Y1
	JZ       2(PC)
	MOVL     $1, DX         // some left shift
	VPMAXSD  Y0, Y5, Y5
	VMOVDQU  Y5, 128(SP)    // e
	VPCMPEQD Y1, Y1, Y1
	VPSLLVD  Y5, Y1, Y2
	VPXOR    Y1, Y2, Y2
	VMOVDQU  Y2, 160(SP)    // mask
	VPSRLD   $1, Y2, Y2
	VMOVDQU  Y2, 192(SP)    // mask >> 1
	MOVQ     rows+40(FP), R14
	LEAQ     (R9)(R10*4), SI
	LEAQ     (R8)(R10*1), DI
	CMPQ     CX, $8
	JLT      xtrow

	// Two rows at a time, interleaved for the out-of-order core, without
	// the left shift where the block has none.
	SUBQ  $2, R14
	JLT   xrow1
	TESTL DX, DX
	JZ    xrow2r

xrow2:
	VMOVDQU (SI), Y0
	VMOVDQU (SI)(R11*4), Y4
	LSHIFT(Y0, Y1, Y2, Y3)
	LSHIFT(Y4, Y5, Y11, Y15)
	FIXEDMUL(Y0, Y1, Y2, Y3)
	FIXEDMUL(Y4, Y5, Y11, Y15)
	LOWBYTES(Y1)
	LOWBYTES(Y5)
	MOVQ    X1, (DI)
	MOVQ    X5, (DI)(R11*1)
	LEAQ    (SI)(R11*8), SI
	LEAQ    (DI)(R11*2), DI
	SUBQ    $2, R14
	JGE     xrow2
	JMP     xrow1

xrow2r:
	VMOVDQU (SI), Y0
	VMOVDQU (SI)(R11*4), Y4
	VPADDD  0(SP), Y0, Y0
	VPADDD  0(SP), Y4, Y4
	FIXEDMUL(Y0, Y1, Y2, Y3)
	FIXEDMUL(Y4, Y5, Y11, Y15)
	LOWBYTES(Y1)
	LOWBYTES(Y5)
	MOVQ    X1, (DI)
	MOVQ    X5, (DI)(R11*1)
	LEAQ    (SI)(R11*8), SI
	LEAQ    (DI)(R11*2), DI
	SUBQ    $2, R14
	JGE     xrow2r

xrow1:
	CMPQ    R14, $-1
	JNE     xnext
	VMOVDQU (SI), Y0
	LSHIFT(Y0, Y1, Y2, Y3)
	FIXEDMUL(Y0, Y1, Y2, Y3)
	LOWBYTES(Y1)
	MOVQ    X1, (DI)

xnext:
	ADDQ $8, R10
	CMPQ    R10, R11
	JLT     xblock
	VZEROUPPER
	RET

xtrow:
	VPMASKMOVD (SI), Y15, Y0
	LSHIFT(Y0, Y1, Y2, Y3)
	FIXEDMUL(Y0, Y1, Y2, Y3)
	LOWBYTES(Y1)
	MOVQ       X1, AX
	XORQ       R12, R12

xtbyte:
	MOVB AX, (DI)(R12*1)
	SHRQ $8, AX
	INCQ R12
	CMPQ R12, CX
	JLT  xtbyte
	LEAQ (SI)(R11*4), SI
	ADDQ R11, DI
	DECQ R14
	JNZ  xtrow
	VZEROUPPER
	RET

// func maxWindowsAVX2(dst, src *uint8, n, c, k, step int)
//
// For each of the n >= 1 windows: window i is k >= 1 chunks of c >= 1
// bytes, c apart, from src + i*step; their byte-wise maximum goes to
// dst + i*c. The chunks are reduced 32 bytes at a time with VPMAXUB, then
// one 16-byte and one 8-byte step, then a byte at a time, so nothing
// outside the windows and the outputs is read or written.
TEXT ·maxWindowsAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), R8
	MOVQ c+24(FP), CX
	MOVQ k+32(FP), R9
	MOVQ step+40(FP), R10
	DECQ R9              // chunks after the first
	MOVQ CX, R11
	ANDQ $~31, R11       // bytes in whole 32-byte blocks

window:
	XORQ AX, AX          // byte j of the chunk
	TESTQ R11, R11
	JZ    whalf

wblock:
	VMOVDQU (SI)(AX*1), Y0
	LEAQ    (SI)(AX*1), BX
	MOVQ    R9, DX
	TESTQ   DX, DX
	JZ      wblockst

wblockk:
	ADDQ    CX, BX
	VPMAXUB (BX), Y0, Y0
	DECQ    DX
	JNZ     wblockk

wblockst:
	VMOVDQU Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, R11
	JLT     wblock

whalf:
	TESTQ $16, CX
	JZ    wquarter
	VMOVDQU (SI)(AX*1), X0
	LEAQ    (SI)(AX*1), BX
	MOVQ    R9, DX
	TESTQ   DX, DX
	JZ      whalfst

whalfk:
	ADDQ    CX, BX
	VPMAXUB (BX), X0, X0
	DECQ    DX
	JNZ     whalfk

whalfst:
	VMOVDQU X0, (DI)(AX*1)
	ADDQ    $16, AX

wquarter:
	TESTQ $8, CX
	JZ    wbytes
	MOVQ  (SI)(AX*1), X0
	LEAQ  (SI)(AX*1), BX
	MOVQ  R9, DX
	TESTQ DX, DX
	JZ    wquarterst

wquarterk:
	ADDQ    CX, BX
	MOVQ    (BX), X1
	VPMAXUB X1, X0, X0
	DECQ    DX
	JNZ     wquarterk

wquarterst:
	MOVQ X0, (DI)(AX*1)
	ADDQ $8, AX

wbytes:
	CMPQ AX, CX
	JGE  wnext

wbyte:
	MOVBLZX (SI)(AX*1), R12
	LEAQ    (SI)(AX*1), BX
	MOVQ    R9, DX
	TESTQ   DX, DX
	JZ      wbytest

wbytek:
	ADDQ    CX, BX
	MOVBLZX (BX), R13
	CMPL    R12, R13
	CMOVLCS R13, R12 // R12 < R13 (unsigned): take R13
	DECQ    DX
	JNZ     wbytek

wbytest:
	MOVB R12, (DI)(AX*1)
	INCQ AX
	CMPQ AX, CX
	JLT  wbyte

wnext:
	ADDQ R10, SI
	ADDQ CX, DI
	DECQ R8
	JNZ  window
	VZEROUPPER
	RET

// func maxWindowsInt32AVX2(dst, src *int32, n, c, k, step int)
//
// MaxWindowsInt32 on n >= 1 windows (c, step in int32 elements): for each
// window, 8 channels at a time, VPMAXSD of the k chunks' dwords; the last
// c%8 channels are loaded and stored under a VPMASKMOVD mask (masked-out
// lanes are neither read, written nor faulted on), so nothing outside the
// slices is touched.
TEXT ·maxWindowsInt32AVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), R8
	MOVQ c+24(FP), R9
	MOVQ k+32(FP), R10
	MOVQ step+40(FP), R11
	MOVQ R9, R14
	ANDQ $~7, R14                    // channels in whole blocks of 8
	MOVQ R9, CX
	ANDQ $7, CX                      // tail channels
	JZ   iwindow
	TAILMASK

iwindow:
	XORQ AX, AX                      // channel
	TESTQ R14, R14
	JZ   itail

iblock:
	LEAQ    (SI)(AX*4), DX
	VMOVDQU (DX), Y0
	MOVQ    R10, R12
	DECQ    R12
	JZ      istore

ik:
	LEAQ    (DX)(R9*4), DX
	VPMAXSD (DX), Y0, Y0
	DECQ    R12
	JNZ     ik

istore:
	VMOVDQU Y0, (DI)(AX*4)
	ADDQ    $8, AX
	CMPQ    AX, R14
	JLT     iblock

itail:
	TESTQ      CX, CX
	JZ         inext
	LEAQ       (SI)(AX*4), DX
	VPMASKMOVD (DX), Y15, Y0
	MOVQ       R10, R12
	DECQ       R12
	JZ         itstore

itk:
	LEAQ       (DX)(R9*4), DX
	VPMASKMOVD (DX), Y15, Y1
	VPMAXSD    Y1, Y0, Y0
	DECQ       R12
	JNZ        itk

itstore:
	VPMASKMOVD Y0, Y15, (DI)(AX*4)

inext:
	LEAQ (SI)(R11*4), SI
	LEAQ (DI)(R9*4), DI
	DECQ R8
	JNZ  iwindow
	VZEROUPPER
	RET

// func maxWindowsInt32AVX512(dst, src *int32, n, c, k, step int)
//
// maxWindowsInt32AVX2 with 16 channels a zmm register; the last c%16
// channels are loaded and stored under the mask K1 (masked-out lanes are
// neither read, written nor faulted on).
TEXT ·maxWindowsInt32AVX512(SB), NOSPLIT, $0-48
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  n+16(FP), R8
	MOVQ  c+24(FP), R9
	MOVQ  k+32(FP), R10
	MOVQ  step+40(FP), R11
	MOVQ  R9, R14
	ANDQ  $~15, R14                  // channels in whole blocks of 16
	MOVQ  R9, CX
	ANDQ  $15, CX                    // tail channels
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1                     // the tail's lanes

zwindow:
	XORQ  AX, AX                     // channel
	TESTQ R14, R14
	JZ    ztail

zblock:
	LEAQ      (SI)(AX*4), DX
	VMOVDQU32 (DX), Z0
	MOVQ      R10, R12
	DECQ      R12
	JZ        zstore

zk:
	LEAQ    (DX)(R9*4), DX
	VPMAXSD (DX), Z0, Z0
	DECQ    R12
	JNZ     zk

zstore:
	VMOVDQU32 Z0, (DI)(AX*4)
	ADDQ      $16, AX
	CMPQ      AX, R14
	JLT       zblock

ztail:
	TESTQ       CX, CX
	JZ          znext
	LEAQ        (SI)(AX*4), DX
	VMOVDQU32.Z (DX), K1, Z0
	MOVQ        R10, R12
	DECQ        R12
	JZ          ztstore

ztk:
	LEAQ        (DX)(R9*4), DX
	VMOVDQU32.Z (DX), K1, Z1
	VPMAXSD     Z1, Z0, Z0
	DECQ        R12
	JNZ         ztk

ztstore:
	VMOVDQU32 Z0, K1, (DI)(AX*4)

znext:
	LEAQ (SI)(R11*4), SI
	LEAQ (DI)(R9*4), DI
	DECQ R8
	JNZ  zwindow
	VZEROUPPER
	RET

// func addCodesAVX512(dst, a, b *uint8, n int, k *addConsts)
//
// 16 codes at a time: both inputs widened to int32, minus their zero
// points, converted (exactly) and multiplied by their scales, summed, each
// step rounded to float32 as addCodesGo rounds it; the sum times Inv is
// clamped to [Lo-ZP, Hi-ZP] and then rounded half to even (VCVTPS2DQ under
// Go's MXCSR), which gives quant.Code's rounding then clamp as the bounds
// are integers; plus ZP, narrowed to bytes.
TEXT ·addCodesAVX512(SB), NOSPLIT, $0-40
	MOVQ         dst+0(FP), DI
	MOVQ         a+8(FP), SI
	MOVQ         b+16(FP), DX
	MOVQ         n+24(FP), CX
	MOVQ         k+32(FP), R8
	VPBROADCASTD 0(R8), Z10          // za
	VPBROADCASTD 4(R8), Z11          // zb
	VBROADCASTSS 8(R8), Z12          // sa
	VBROADCASTSS 12(R8), Z13         // sb
	VBROADCASTSS 16(R8), Z14         // inv
	VBROADCASTSS 20(R8), Z15         // Lo-ZP
	VBROADCASTSS 24(R8), Z16         // Hi-ZP
	VPBROADCASTD 28(R8), Z17         // zp

zadd:
	VPMOVZXBD (SI), Z0
	VPMOVZXBD (DX), Z1
	VPSUBD    Z10, Z0, Z0
	VPSUBD    Z11, Z1, Z1
	VCVTDQ2PS Z0, Z0
	VCVTDQ2PS Z1, Z1
	VMULPS    Z12, Z0, Z0
	VMULPS    Z13, Z1, Z1
	VADDPS    Z1, Z0, Z0
	VMULPS    Z14, Z0, Z0
	VMAXPS    Z15, Z0, Z0
	VMINPS    Z16, Z0, Z0
	VCVTPS2DQ Z0, Z0
	VPADDD    Z17, Z0, Z0
	VPMOVDB   Z0, (DI)
	ADDQ      $16, SI
	ADDQ      $16, DX
	ADDQ      $16, DI
	SUBQ      $16, CX
	JNZ       zadd
	VPXORD    X16, X16, X16
	VPXORD    X17, X17, X17
	VZEROUPPER
	RET

// func addCodesAVX2(dst, a, b *uint8, n int, k *addConsts)
//
// addCodesAVX512 with 8 codes a ymm register, the int32 codes packed to
// bytes with unsigned saturation (they lie in [0, 255]).
TEXT ·addCodesAVX2(SB), NOSPLIT, $0-40
	MOVQ         dst+0(FP), DI
	MOVQ         a+8(FP), SI
	MOVQ         b+16(FP), DX
	MOVQ         n+24(FP), CX
	MOVQ         k+32(FP), R8
	VPBROADCASTD 0(R8), Y8
	VPBROADCASTD 4(R8), Y9
	VBROADCASTSS 8(R8), Y10
	VBROADCASTSS 12(R8), Y11
	VBROADCASTSS 16(R8), Y12
	VBROADCASTSS 20(R8), Y13
	VBROADCASTSS 24(R8), Y14
	VPBROADCASTD 28(R8), Y15

yadd:
	VPMOVZXBD    (SI), Y0
	VPMOVZXBD    (DX), Y1
	VPSUBD       Y8, Y0, Y0
	VPSUBD       Y9, Y1, Y1
	VCVTDQ2PS    Y0, Y0
	VCVTDQ2PS    Y1, Y1
	VMULPS       Y10, Y0, Y0
	VMULPS       Y11, Y1, Y1
	VADDPS       Y1, Y0, Y0
	VMULPS       Y12, Y0, Y0
	VMAXPS       Y13, Y0, Y0
	VMINPS       Y14, Y0, Y0
	VCVTPS2DQ    Y0, Y0
	VPADDD       Y15, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKUSDW    X1, X0, X0
	VPACKUSWB    X0, X0, X0
	MOVQ         X0, (DI)
	ADDQ         $8, SI
	ADDQ         $8, DX
	ADDQ         $8, DI
	SUBQ         $8, CX
	JNZ          yadd
	VZEROUPPER
	RET
