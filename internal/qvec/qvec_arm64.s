//go:build arm64 && !noasm

#include "textflag.h"

// Vector float instructions the Go assembler lacks, on 4 float32 lanes
// (d = n op m), as their encodings.
#define SCVTF4S(n, d) WORD $(0x4e21d800 | (n)<<5 | (d))
#define FCVTZS4S(n, d) WORD $(0x4ea1b800 | (n)<<5 | (d))
#define FMUL4S(m, n, d) WORD $(0x6e20dc00 | (m)<<16 | (n)<<5 | (d))
#define FADD4S(m, n, d) WORD $(0x4e20d400 | (m)<<16 | (n)<<5 | (d))
#define FSUB4S(m, n, d) WORD $(0x4ea0d400 | (m)<<16 | (n)<<5 | (d))
#define FMAX4S(m, n, d) WORD $(0x4e20f400 | (m)<<16 | (n)<<5 | (d))
#define FMIN4S(m, n, d) WORD $(0x4ea0f400 | (m)<<16 | (n)<<5 | (d))

// REQUANT(v) turns the accumulators plus bias in Vv into int32 codes:
// V(v+8) mult, V20 flo, V21 fhi, V22 1.5*2^23, V23 zp.
#define REQUANT(v) \
	SCVTF4S(v, v); \
	FMUL4S(v+8, v, v); \
	FMAX4S(20, v, v); \
	FMIN4S(21, v, v); \
	FADD4S(22, v, v); \
	FSUB4S(22, v, v); \
	FCVTZS4S(v, v)

// func requantFloatNEON(dst *uint8, acc, bias *int32, mult *float32, rows, n, n4 int, flo, fhi float32, zp int32)
TEXT ·requantFloatNEON(SB), NOSPLIT, $0-68
	MOVD  dst+0(FP), R0
	MOVD  acc+8(FP), R1
	MOVD  rows+32(FP), R4
	MOVD  n+40(FP), R5
	MOVD  n4+48(FP), R6
	FMOVS flo+56(FP), F20
	VDUP  V20.S[0], V20.S4
	FMOVS fhi+60(FP), F21
	VDUP  V21.S[0], V21.S4
	MOVW  $0x4b400000, R7 // 1.5*2^23
	VDUP  R7, V22.S4
	MOVW  zp+64(FP), R7
	VDUP  R7, V23.S4
	SUB   R6, R5, R9      // columns left to Go per row

row:
	MOVD bias+16(FP), R2
	MOVD mult+24(FP), R3
	MOVD R6, R10

col16:
	CMP    $16, R10
	BLT    col4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P 64(R3), [V8.S4, V9.S4, V10.S4, V11.S4]
	VADD   V4.S4, V0.S4, V0.S4
	VADD   V5.S4, V1.S4, V1.S4
	VADD   V6.S4, V2.S4, V2.S4
	VADD   V7.S4, V3.S4, V3.S4
	REQUANT(0)
	REQUANT(1)
	REQUANT(2)
	REQUANT(3)
	VADD   V23.S4, V0.S4, V0.S4
	VADD   V23.S4, V1.S4, V1.S4
	VADD   V23.S4, V2.S4, V2.S4
	VADD   V23.S4, V3.S4, V3.S4
	VUZP1  V1.H8, V0.H8, V0.H8
	VUZP1  V3.H8, V2.H8, V2.H8
	VUZP1  V2.B16, V0.B16, V0.B16
	VST1.P [V0.B16], 16(R0)
	SUB    $16, R10
	B      col16

col4:
	CBZ     R10, rowend
	VLD1.P  16(R1), [V0.S4]
	VLD1.P  16(R2), [V4.S4]
	VLD1.P  16(R3), [V8.S4]
	VADD    V4.S4, V0.S4, V0.S4
	REQUANT(0)
	VADD    V23.S4, V0.S4, V0.S4
	VUZP1   V0.H8, V0.H8, V0.H8
	VUZP1   V0.B16, V0.B16, V0.B16
	FMOVS.P F0, 4(R0)
	SUB     $4, R10
	B       col4

rowend:
	ADD  R9<<2, R1, R1
	ADD  R9, R0, R0
	SUBS $1, R4
	BNE  row
	RET

// func maxBytesNEON(dst, a, b *uint8, n int)
TEXT ·maxBytesNEON(SB), NOSPLIT, $0-32
	MOVD dst+0(FP), R0
	MOVD a+8(FP), R1
	MOVD b+16(FP), R2
	MOVD n+24(FP), R3

loop64:
	CMP    $64, R3
	BLT    loop16
	VLD1.P 64(R1), [V0.B16, V1.B16, V2.B16, V3.B16]
	VLD1.P 64(R2), [V4.B16, V5.B16, V6.B16, V7.B16]
	VUMAX  V4.B16, V0.B16, V0.B16
	VUMAX  V5.B16, V1.B16, V1.B16
	VUMAX  V6.B16, V2.B16, V2.B16
	VUMAX  V7.B16, V3.B16, V3.B16
	VST1.P [V0.B16, V1.B16, V2.B16, V3.B16], 64(R0)
	SUB    $64, R3
	B      loop64

loop16:
	CBZ    R3, done
	VLD1.P 16(R1), [V0.B16]
	VLD1.P 16(R2), [V4.B16]
	VUMAX  V4.B16, V0.B16, V0.B16
	VST1.P [V0.B16], 16(R0)
	SUB    $16, R3
	B      loop16

done:
	RET
