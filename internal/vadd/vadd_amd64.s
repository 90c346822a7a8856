//go:build amd64 && !noasm

#include "textflag.h"

// func rowsAVX512(dst *float32, ds int, src *float32, ss int, rows, n int)
TEXT ·rowsAVX512(SB), NOSPLIT, $0-48
	MOVQ  dst+0(FP), DI
	MOVQ  ds+8(FP), R8
	MOVQ  src+16(FP), SI
	MOVQ  ss+24(FP), R9
	MOVQ  rows+32(FP), R10
	MOVQ  n+40(FP), R11
	SHLQ  $2, R8                     // strides in bytes
	SHLQ  $2, R9
	MOVQ  R11, R12
	ANDQ  $~15, R12                  // values in whole blocks of 16
	MOVQ  R11, CX
	ANDQ  $15, CX                    // tail values
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1

zrow:
	XORQ AX, AX                      // value offset, in values
	CMPQ AX, R12
	JGE  ztail

zblock:
	VMOVUPS (SI)(AX*4), Z0
	VADDPS  (DI)(AX*4), Z0, Z0
	VMOVUPS Z0, (DI)(AX*4)
	ADDQ    $16, AX
	CMPQ    AX, R12
	JLT     zblock

ztail:
	TESTQ     CX, CX
	JZ        znext
	VMOVUPS.Z (SI)(AX*4), K1, Z0
	VMOVUPS.Z (DI)(AX*4), K1, Z1
	VADDPS    Z1, Z0, Z0
	VMOVUPS   Z0, K1, (DI)(AX*4)

znext:
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ R10
	JNZ  zrow
	VZEROUPPER
	RET

// func rowsAVX2(dst *float32, ds int, src *float32, ss int, rows, n int)
TEXT ·rowsAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ ds+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ ss+24(FP), R9
	MOVQ rows+32(FP), R10
	MOVQ n+40(FP), R11
	SHLQ $2, R8
	SHLQ $2, R9
	MOVQ R11, R12
	ANDQ $~7, R12                    // values in whole blocks of 8

yrow:
	XORQ AX, AX
	CMPQ AX, R12
	JGE  ytail

yblock:
	VMOVUPS (SI)(AX*4), Y0
	VADDPS  (DI)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	CMPQ    AX, R12
	JLT     yblock

ytail:
	CMPQ AX, R11
	JGE  ynext
	VMOVSS (SI)(AX*4), X0
	VADDSS (DI)(AX*4), X0, X0
	VMOVSS X0, (DI)(AX*4)
	INCQ AX
	JMP  ytail

ynext:
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ R10
	JNZ  yrow
	VZEROUPPER
	RET
