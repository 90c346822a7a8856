//go:build amd64 && !noasm

#include "textflag.h"

// func rowAVX512(acc, x, w *int32, off *int, taps, c, ow, colStep int)
//
// For each block of 16 channels (the last one under the mask K1), for each
// tap: the tap's weights in Z1, then for each output column acc (+)= x *
// w by VPMADDWD (the weight's high half is zero), the first tap storing
// the products without reading acc.
TEXT ·rowAVX512(SB), NOSPLIT, $0-64
	MOVQ acc+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	MOVQ off+24(FP), R12
	MOVQ taps+32(FP), R10
	MOVQ c+40(FP), R13
	MOVQ ow+48(FP), R9
	MOVQ colStep+56(FP), R11
	SHLQ $2, R11                     // bytes between output columns in x
	SHLQ $2, R13                     // bytes per pixel, c lanes
	XORQ BX, BX                      // the block's first channel, in bytes

zblock:
	MOVQ R13, CX
	SUBQ BX, CX
	SHRQ $2, CX                      // channels left
	MOVL $0xFFFF, AX
	CMPQ CX, $16
	JGE  zmask
	MOVL $1, AX
	SHLL CX, AX
	DECL AX

zmask:
	KMOVW AX, K1
	XORQ  AX, AX                     // tap

ztap:
	MOVQ        (R12)(AX*8), R15     // the tap's offset, in values
	SHLQ        $2, R15
	ADDQ        SI, R15
	ADDQ        BX, R15              // x of column 0, this block
	MOVQ        AX, CX
	IMULQ       R13, CX
	ADDQ        DX, CX
	VMOVDQU32.Z (CX)(BX*1), K1, Z1   // the tap's weights
	LEAQ        (DI)(BX*1), R14      // acc of column 0, this block
	MOVQ        R9, CX               // columns
	TESTQ       AX, AX
	JNZ         zadd

zfirst:
	VMOVDQU32.Z (R15), K1, Z0
	VPMADDWD    Z1, Z0, Z0
	VMOVDQU32   Z0, K1, (R14)
	ADDQ        R11, R15
	ADDQ        R13, R14
	DECQ        CX
	JNZ         zfirst
	JMP         znexttap

zadd:
	VMOVDQU32.Z (R15), K1, Z0
	VPMADDWD    Z1, Z0, Z0
	VPADDD      (R14), Z0, K1, Z0
	VMOVDQU32   Z0, K1, (R14)
	ADDQ        R11, R15
	ADDQ        R13, R14
	DECQ        CX
	JNZ         zadd

znexttap:
	INCQ AX
	CMPQ AX, R10
	JLT  ztap
	ADDQ $64, BX
	CMPQ BX, R13
	JLT  zblock
	VZEROUPPER
	RET

// func rowAVX2(acc, x, w *int32, off *int, taps, c, ow, colStep int)
//
// rowAVX512 with 8 channels a ymm register, for the whole blocks of 8
// channels only (c here is their count; the caller does the rest).
TEXT ·rowAVX2(SB), NOSPLIT, $0-64
	MOVQ acc+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	MOVQ off+24(FP), R12
	MOVQ taps+32(FP), R10
	MOVQ c+40(FP), R8
	MOVQ ow+48(FP), R9
	MOVQ colStep+56(FP), R11
	SHLQ $2, R11                     // bytes between output columns in x
	MOVQ R8, R13
	SHLQ $2, R13                     // bytes per pixel
	ANDQ $~7, R8
	SHLQ $2, R8                      // bytes of the whole blocks
	XORQ BX, BX

yblock:
	XORQ AX, AX

ytap:
	MOVQ    (R12)(AX*8), R15
	SHLQ    $2, R15
	ADDQ    SI, R15
	ADDQ    BX, R15
	MOVQ    AX, CX
	IMULQ   R13, CX
	ADDQ    DX, CX
	VMOVDQU (CX)(BX*1), Y1
	LEAQ    (DI)(BX*1), R14
	MOVQ    R9, CX
	TESTQ   AX, AX
	JNZ     yadd

yfirst:
	VPMADDWD (R15), Y1, Y0
	VMOVDQU  Y0, (R14)
	ADDQ     R11, R15
	ADDQ     R13, R14
	DECQ     CX
	JNZ      yfirst
	JMP      ynexttap

yadd:
	VPMADDWD (R15), Y1, Y0
	VPADDD   (R14), Y0, Y0
	VMOVDQU  Y0, (R14)
	ADDQ     R11, R15
	ADDQ     R13, R14
	DECQ     CX
	JNZ      yadd

ynexttap:
	INCQ AX
	CMPQ AX, R10
	JLT  ytap
	ADDQ $32, BX
	CMPQ BX, R8
	JLT  yblock
	VZEROUPPER
	RET

// func centerAVX512(dst *int32, src *uint8, n int, z int32)
TEXT ·centerAVX512(SB), NOSPLIT, $0-28
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	MOVL         z+24(FP), AX
	VMOVD        AX, X1
	VPBROADCASTD X1, Z1

zcenter:
	VPMOVZXBD (SI), Z0
	VPSUBD    Z1, Z0, Z0
	VMOVDQU32 Z0, (DI)
	ADDQ      $16, SI
	ADDQ      $64, DI
	SUBQ      $16, CX
	JNZ       zcenter
	VZEROUPPER
	RET

// func centerAVX2(dst *int32, src *uint8, n int, z int32)
TEXT ·centerAVX2(SB), NOSPLIT, $0-28
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	MOVL         z+24(FP), AX
	VMOVD        AX, X1
	VPBROADCASTD X1, Y1

ycenter:
	VPMOVZXBD (SI), Y0
	VPSUBD    Y1, Y0, Y0
	VMOVDQU   Y0, (DI)
	ADDQ      $8, SI
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       ycenter
	VZEROUPPER
	RET
