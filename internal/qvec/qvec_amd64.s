//go:build amd64 && !noasm

#include "textflag.h"

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
// 32 bytes at a time with VPMAXUB, then the n%32 tail a byte at a time.
// Each block is loaded before it is stored, so dst may alias a or b.
TEXT ·maxBytesAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), BX
	MOVQ n+24(FP), CX
	XORQ AX, AX // index i
	MOVQ CX, R10
	ANDQ $~31, R10 // bytes in whole 32-byte blocks
	JZ   bytes

block:
	VMOVDQU (SI)(AX*1), Y0
	VPMAXUB (BX)(AX*1), Y0, Y0
	VMOVDQU Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, R10
	JLT     block
	VZEROUPPER

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
