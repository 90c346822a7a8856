//go:build ignore

// gen_kernel_arm64 writes kernel_arm64.s and zkernel_arm64.go, the arm64
// NEON micro-kernels of Gemm. Run it with "go run gen_kernel_arm64.go"
// in this directory (or "go generate" on arm64).
//
// Every kernel computes one tile of mr rows x 16 columns (one panel) of
//
//	C[i][j] = init[i][j] + sum_k A[i][k] * B[k][j]
//
// exactly (modulo 2^32, see below) over nu whole 64-byte units
// of the panel, with the 16*mr accumulators in registers for the whole k
// loop. Row i of A starts at rows[i] (mr pointers: rows past the tile's
// height point at a valid row, their results go to a scratch tile); the
// kernel reads exactly nu*unitK bytes from each (unitK = 4, 8, 16 for 8,
// 4, 2 bits), never more: the dot kernels in steps of 16 bytes while
// whole steps remain, then of 4 (8 bits) or 8 (4 bits) bytes, the wide
// kernels 4 bytes at a time. b is the first unit; byte
// 4*c+r of a unit holds in its bit field f the code of
// B[unitK*u + 4*f + r][c] (pack.go). init has row stride ldi (0: one row
// for all), C row stride ldc, both in int32; init may be C itself.
//
// Sub-byte codes are moved to the top of their byte (SHL, AND with 0xF0
// or 0xC0), which makes the byte the signed code times s = 16 or 64; the
// sums are shifted back (SSHR by 4 or 6) before init is added. Every
// product is exact (|a| <= 255 or |a-128| <= 128, |s*b| <= 128) and so
// is every partial sum: at most 255*128 per k in magnitude, below 2^31
// for K <= MaxK, so the shift is exact too. Adding init is exact modulo
// 2^32; as the true result lies in int32, it is exact.
//
// Two families:
//
//	dot:  SDOT (FEAT_DotProd), mr = 4. A is mapped to signed, a-128 (EOR
//	      0x80), and loaded 16 bytes (4 groups of 4 k) per row; one
//	      SDOT by element per row, 4 columns and 4 k. The driver passes
//	      init = 128*ColSums (the correction sum_k 128*B[k][j]) for the
//	      first k block, C for later ones.
//	wide: plain NEON, mr = 2. 4 bytes of A per row are broadcast (LD1R)
//	      and zero-extended to int16 (a0 a1 a2 a3 a0 a1 a2 a3); each B
//	      vector is sign-extended (SXTL, SXTL2) to the int16 codes of 2
//	      columns x 4 k; MUL gives the exact int16 products (|a*b| <=
//	      255*128 < 2^15) and SADALP adds adjacent pairs into int32
//	      lanes, 2 per column, which ADDP combines at the end.
//
// The Go assembler lacks SDOT, SSHR, SXTL, MUL and SADALP on vectors:
// they are emitted as WORD encodings, with the instruction in a comment.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
)

const (
	dotMR  = 4 // rows of a dot tile
	wideMR = 2 // rows of a wide tile
)

var out bytes.Buffer

func emit(format string, args ...any) { fmt.Fprintf(&out, "\t"+format+"\n", args...) }

func label(l string) { fmt.Fprintf(&out, "%s:\n", l) }

// word emits an instruction by its encoding.
func word(enc uint32, asm string, args ...any) {
	emit("WORD $0x%08x // %s", enc, fmt.Sprintf(asm, args...))
}

// sdot: SDOT Vd.4S, Vn.16B, Vm.4B[lane].
func sdot(d, n, m, lane int) {
	enc := uint32(0x4f80e000) | uint32(lane&1)<<21 | uint32(m)<<16 | uint32(lane>>1)<<11 | uint32(n)<<5 | uint32(d)
	word(enc, "sdot v%d.4s, v%d.16b, v%d.4b[%d]", d, n, m, lane)
}

// sshr: SSHR Vd.4S, Vn.4S, #sh (1 <= sh <= 32).
func sshr(d, n, sh int) {
	word(0x4f000400|uint32(64-sh)<<16|uint32(n)<<5|uint32(d), "sshr v%d.4s, v%d.4s, #%d", d, n, sh)
}

// sxtl: SXTL Vd.8H, Vn.8B (hi: SXTL2 from Vn.16B).
func sxtl(d, n int, hi bool) {
	if hi {
		word(0x4f08a400|uint32(n)<<5|uint32(d), "sxtl2 v%d.8h, v%d.16b", d, n)
	} else {
		word(0x0f08a400|uint32(n)<<5|uint32(d), "sxtl v%d.8h, v%d.8b", d, n)
	}
}

// mul8h: MUL Vd.8H, Vn.8H, Vm.8H.
func mul8h(d, n, m int) {
	word(0x4e609c00|uint32(m)<<16|uint32(n)<<5|uint32(d), "mul v%d.8h, v%d.8h, v%d.8h", d, n, m)
}

// sadalp: SADALP Vd.4S, Vn.8H.
func sadalp(d, n int) { word(0x4e606800|uint32(n)<<5|uint32(d), "sadalp v%d.4s, v%d.8h", d, n) }

// Registers common to both families: R0..R3 the rows of A, R4 B, R5 the
// units left, R6 init, R7 ldi in bytes, R8 C, R9 ldc in bytes; V28 the
// field mask, V20..V23 the raw B unit, V24..V27 an unpacked field.
const (
	vMask = 28
	vRaw  = 20
	vTmp  = 24
)

func header(name string, mr int) {
	fmt.Fprintf(&out, "\n// func %s(rows *[4]*uint8, b *byte, nu int, init *int32, ldi int, c *int32, ldc int)\n", name)
	fmt.Fprintf(&out, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	emit("MOVD rows+0(FP), R10")
	for r := 0; r < mr; r++ {
		emit("MOVD %d(R10), R%d", 8*r, r)
	}
	emit("MOVD b+8(FP), R4")
	emit("MOVD nu+16(FP), R5")
	emit("MOVD init+24(FP), R6")
	emit("MOVD ldi+32(FP), R7")
	emit("LSL $2, R7")
	emit("MOVD c+40(FP), R8")
	emit("MOVD ldc+48(FP), R9")
	emit("LSL $2, R9")
	for i := 0; i < 16; i++ {
		emit("VEOR V%d.B16, V%d.B16, V%d.B16", i, i, i)
	}
}

// loadRaw loads the next B unit into V20..V23.
func loadRaw() { emit("VLD1.P 64(R4), [V20.B16, V21.B16, V22.B16, V23.B16]") }

// field leaves field f of the raw unit, times 2^(8-bits), in V24..V27
// (or in V20..V23 for the top field, which is masked in place) and
// returns the first register.
func field(bits, f int) int {
	if bits == 8 {
		return vRaw
	}
	sl := 8 - bits - f*bits
	if sl == 0 {
		for v := 0; v < 4; v++ {
			emit("VAND V%d.B16, V%d.B16, V%d.B16", vMask, vRaw+v, vRaw+v)
		}
		return vRaw
	}
	for v := 0; v < 4; v++ {
		emit("VSHL $%d, V%d.B16, V%d.B16", sl, vRaw+v, vTmp+v)
		if f > 0 {
			emit("VAND V%d.B16, V%d.B16, V%d.B16", vMask, vTmp+v, vTmp+v)
		}
	}
	return vTmp
}

func setMask(bits int) {
	if bits < 8 {
		emit("VMOVI $%d, V%d.B16", 0xff<<(8-bits)&0xff, vMask)
	}
}

// epilogue shifts the accumulators V(4r+v) back, adds init and stores
// rows 0..mr-1 (accumulators in V0..V(4*mr-1), 4 per row).
func epilogue(bits, mr, first int) {
	for r := 0; r < mr; r++ {
		base := first + 4*r
		if bits < 8 {
			for v := 0; v < 4; v++ {
				sshr(base+v, base+v, 8-bits)
			}
		}
		emit("VLD1 (R6), [V28.S4, V29.S4, V30.S4, V31.S4]")
		emit("ADD R7, R6")
		for v := 0; v < 4; v++ {
			emit("VADD V%d.S4, V%d.S4, V%d.S4", 28+v, base+v, base+v)
		}
		emit("VST1 [V%d.S4, V%d.S4, V%d.S4, V%d.S4], (R8)", base, base+1, base+2, base+3)
		emit("ADD R9, R8")
	}
	emit("RET")
}

// dot writes the SDOT kernel for bits. Accumulator of row r, columns
// 4v..4v+3: V(4r+v); A of row r: V(16+r), mapped to signed by EOR with
// V29 = 0x80.
func dot(bits int) {
	name := fmt.Sprintf("dot%d", bits)
	header(name, dotMR)
	setMask(bits)
	emit("VMOVI $128, V29.B16")
	fields := 8 / bits
	step := 16 / (4 * fields) // units per 16 bytes of A: 4, 2, 1
	sdots := func(bv, lane int) {
		for r := 0; r < dotMR; r++ {
			for v := 0; v < 4; v++ {
				sdot(4*r+v, bv+v, 16+r, lane)
			}
		}
	}
	loadA := func(op string, n int) {
		for r := 0; r < dotMR; r++ {
			emit("%s %d(R%d), %s", op, n, r, map[int]string{16: fmt.Sprintf("[V%d.B16]", 16+r), 8: fmt.Sprintf("F%d", 16+r), 4: fmt.Sprintf("F%d", 16+r)}[n])
			emit("VEOR V29.B16, V%d.B16, V%d.B16", 16+r, 16+r)
		}
	}
	// Steps of 16 bytes of A per row.
	label(name + "step")
	emit("CMP $%d, R5", step)
	emit("BLT %stail", name)
	loadA("VLD1.P", 16)
	for u := 0; u < step; u++ {
		loadRaw()
		for f := 0; f < fields; f++ {
			sdots(field(bits, f), u*fields+f)
		}
	}
	emit("SUB $%d, R5", step)
	emit("B %sstep", name)
	label(name + "tail")
	if step > 1 {
		// Single units: 4 (8 bits) or 8 (4 bits) bytes of A per row.
		emit("CBZ R5, %sdone", name)
		op := map[int]string{8: "FMOVS.P", 4: "FMOVD.P"}[bits]
		loadA(op, 4*fields)
		loadRaw()
		for f := 0; f < fields; f++ {
			sdots(field(bits, f), f)
		}
		emit("SUB $1, R5")
		emit("B %stail", name)
		label(name + "done")
	}
	epilogue(bits, dotMR, 0)
}

// wide writes the widening kernel for bits. Row r accumulates columns
// 4v, 4v+1 in V(8r+2v) and 4v+2, 4v+3 in V(8r+2v+1), two int32 lanes per
// column; A of row r in V(16+r) as int16, the widened B codes in V18, V19,
// products in V30, V31.
func wide(bits int) {
	name := fmt.Sprintf("wide%d", bits)
	header(name, wideMR)
	setMask(bits)
	label(name + "unit")
	emit("CBZ R5, %sdone", name)
	loadRaw()
	for f := 0; f < 8/bits; f++ {
		bv := field(bits, f)
		for r := 0; r < wideMR; r++ {
			emit("VLD1R.P 4(R%d), [V%d.S4]", r, 16+r)
			emit("VUXTL V%d.B8, V%d.H8", 16+r, 16+r)
		}
		for v := 0; v < 4; v++ {
			sxtl(18, bv+v, false)
			sxtl(19, bv+v, true)
			for r := 0; r < wideMR; r++ {
				mul8h(30, 18, 16+r)
				sadalp(8*r+2*v, 30)
				mul8h(31, 19, 16+r)
				sadalp(8*r+2*v+1, 31)
			}
		}
	}
	emit("SUB $1, R5")
	emit("B %sunit", name)
	label(name + "done")
	// Pairwise sums into V16+4r+v: columns 4v..4v+3 of row r.
	for r := 0; r < wideMR; r++ {
		for v := 0; v < 4; v++ {
			emit("VADDP V%d.S4, V%d.S4, V%d.S4", 8*r+2*v+1, 8*r+2*v, 16+4*r+v)
		}
	}
	epilogue(bits, wideMR, 16)
}

const goHeader = `// Code generated by gen_kernel_arm64.go; DO NOT EDIT.

//go:build arm64 && !noasm

package qgemm

// Tile heights of the NEON kernels.
const (
	dotMR  = %d // rows of a dot (SDOT) tile
	wideMR = %d // rows of a wide (MUL, SADALP) tile
)
`

func main() {
	out.WriteString("// Code generated by gen_kernel_arm64.go; DO NOT EDIT.\n\n//go:build arm64 && !noasm\n\n#include \"textflag.h\"\n")
	var decls bytes.Buffer
	fmt.Fprintf(&decls, goHeader, dotMR, wideMR)
	for _, bits := range []int{8, 4, 2} {
		dot(bits)
		wide(bits)
		for _, fam := range []string{"dot", "wide"} {
			fmt.Fprintf(&decls, "\n//go:noescape\nfunc %s%d(rows *[4]*uint8, b *byte, nu int, init *int32, ldi int, c *int32, ldc int)\n", fam, bits)
		}
	}
	src, err := format.Source(decls.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("kernel_arm64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("zkernel_arm64.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
