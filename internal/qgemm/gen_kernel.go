//go:build ignore

// gen_kernel writes kernel_amd64.s and zkernel_amd64.go, the assembly
// micro-kernels of Gemm. Run it with "go generate" in this directory.
//
// Every kernel computes one h×w tile of C = A·B exactly in int32,
//
//	C[i][j] (+)= sum_k A[i][k] * B[k][j]
//
// with the accumulators in registers for the whole k loop. A is read in
// place, row i at a + i*lda, 64-byte unit u of the k loop at offset
// u*unitK(bits) (unitK = 4, 8, 16 values for 8, 4, 2 bits). B is one or
// more 16-column panels of the packed layout (see pack.go): the unit u of
// panel v is the 64 bytes at b + v*ps + 64*u; byte 4*c+r of a unit holds,
// in its bit field f (bits f*bits .. f*bits+bits-1), the code of
// B[unitK*u + 4*f + r][c]. After the n units, if tk > 0, the kernel does
// one more unit with only the next tk < unitK bytes of every row of A,
// copied into its frame and zero-padded (B's unit is zero-padded by
// Pack): the K tail that is not a whole unit. So A is never read past
// column K. With acc = 1 the kernel adds the previous content of C (a
// later k block); with acc = 0 C is written without being read.
//
// Two families:
//
//	vnni: AVX-512 VNNI, h <= 8 rows, nv <= 3 zmm vectors of 16 columns
//	      (one panel each). Per 4 k: one VPBROADCASTD of 4 A bytes per
//	      row, one B vector per panel, h*nv VPDPBUSD. Sub-byte codes are
//	      moved to the top of their byte (VPSLLW, VPANDD with 0xF0 or
//	      0xC0), which makes the byte the signed code times 16 or 64; the
//	      sums are shifted back (VPSRAD) before the store. The scaled
//	      partial sums stay below 2^31 under the same K limit as 8 bits.
//	      mask (16 bits) selects the valid columns of the last vector;
//	      loads and stores of C are masked by it. The K tail is read
//	      with byte-masked loads (VMOVDQU8).
//	avx2: AVX2, h <= 4 rows, nv <= 2 ymm vectors of 8 columns (the two
//	      halves of one panel). B codes are sign-extended into int16
//	      words holding the even (k = 4g, 4g+2) and odd (4g+1, 4g+3)
//	      codes of each column, the broadcast A bytes zero-extended the
//	      same way (VPAND 0x00FF, VPSRLW 8), and two VPMADDWD per vector
//	      and row give the exact int32 sum of 4 products. mask is the
//	      number (1..8) of valid columns of the last vector; loads and
//	      stores of C are masked by it (VPMASKMOVD). The K tail is
//	      copied one byte at a time.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
	"strings"
)

const (
	vnniMR = 8 // rows of a VNNI tile
	vnniNV = 3 // zmm vectors (panels) of a VNNI tile
	avx2MR = 4 // rows of an AVX2 tile
	avx2NV = 2 // ymm vectors (half panels) of an AVX2 tile
)

var allBits = []int{8, 4, 2}

var out bytes.Buffer

func p(format string, args ...any) {
	fmt.Fprintf(&out, format, args...)
	out.WriteByte('\n')
}

const args = "a *uint8, lda int, b *byte, ps int, n int, tk int, c *int32, ldc int, mask int, acc int"

func vnniName(bits, h, nv int) string { return fmt.Sprintf("vnniB%dR%dV%d", bits, h, nv) }
func avx2Name(bits, h, nv int) string { return fmt.Sprintf("avx2B%dR%dV%d", bits, h, nv) }

var rowRegs = []string{"R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"}

// unitK is the number of k values in a 64-byte unit of a 16-column panel.
func unitK(bits int) int { return 32 / bits }

// disp formats a displacement (empty for 0).
func disp(d int) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprint(d)
}

// header emits the prologue common to both families: row pointers, B
// pointer, unit count and A offset.
func header(name string, h int) {
	p("// func %s(%s)", name, args)
	p("TEXT ·%s(SB), NOSPLIT, $%d-80", name, tailW*h)
	p("\tMOVQ a+0(FP), R8")
	p("\tMOVQ lda+8(FP), AX")
	for i := 1; i < h; i++ {
		p("\tLEAQ (%s)(AX*1), %s", rowRegs[i-1], rowRegs[i])
	}
	p("\tMOVQ b+16(FP), BX")
	p("\tMOVQ ps+24(FP), DX")
	p("\tMOVQ n+32(FP), CX")
	p("\tXORQ SI, SI")
}

// loops emits the k loop: units unrolled by un, then one at a time, then
// the optional tail unit. step(u) emits unit u of an unrolled group (B at
// BX + 64u, A at offset SI + u*unitK).
func loops(h, bits, un int, step func(u int), tail func()) {
	uk := unitK(bits)
	if un > 1 {
		p("\tCMPQ CX, $%d", un)
		p("\tJLT one")
		p("\tPCALIGN $64")
		p("loopn:")
		for u := 0; u < un; u++ {
			step(u)
		}
		p("\tADDQ $%d, BX", 64*un)
		p("\tADDQ $%d, SI", uk*un)
		p("\tSUBQ $%d, CX", un)
		p("\tCMPQ CX, $%d", un)
		p("\tJGE loopn")
		p("one:")
	}
	p("\tTESTQ CX, CX")
	p("\tJZ tail")
	p("loop1:")
	step(0)
	p("\tADDQ $64, BX")
	p("\tADDQ $%d, SI", uk)
	p("\tDECQ CX")
	p("\tJNZ loop1")
	p("tail:")
	p("\tMOVQ tk+40(FP), CX")
	p("\tTESTQ CX, CX")
	p("\tJZ store")
	// Copy the tk bytes at offset SI of every row to the frame, zero
	// padded to tailW bytes, and do one more unit from there.
	tail()
	for i := 0; i < h; i++ {
		p("\tLEAQ %s, %s", frameRow(h, i), rowRegs[i])
	}
	p("\tXORQ SI, SI")
	step(0)
	p("store:")
}

// tailW is the size of a row of the K-tail copy in a kernel's frame: the
// largest unit, 16 bytes of A.
const tailW = 16

// frameRow is the address of the K-tail copy of row i in the frame.
func frameRow(h, i int) string { return fmt.Sprintf("t%d-%d(SP)", i, tailW*(h-i)) }

// aAddr is the address of the 4 A bytes of row i at byte offset off of
// the current unit.
func aAddr(i, off int) string { return fmt.Sprintf("%s(%s)(SI*1)", disp(off), rowRegs[i]) }

// ---- AVX-512 VNNI ----

// vnniBAddr is the address of panel v of the unit at BX + d.
func vnniBAddr(v, d int) string {
	return disp(d) + [...]string{"(BX)", "(BX)(DX*1)", "(BX)(DX*2)"}[v]
}

func vnniAcc(nv, i, v int) string { return fmt.Sprintf("Z%d", i*nv+v) }

func vnniKernel(bits, h, nv int) {
	name := vnniName(bits, h, nv)
	header(name, h)
	nacc := h * nv
	for i := 0; i < nacc; i++ {
		p("\tVPXORD Z%d, Z%d, Z%d", i, i, i)
	}
	const bReg = 24 // Z24..Z26: B vectors
	// Z27..Z30: broadcast A (rotating), Z31: field mask.
	if bits < 8 {
		top := byte(0xF0)
		if bits == 2 {
			top = 0xC0
		}
		t := uint32(top) * 0x01010101
		p("\tMOVL $0x%08X, DI", t)
		p("\tVPBROADCASTD DI, Z31")
	}
	fields := 8 / bits
	bc := 0
	step := func(u int) {
		for f := 0; f < fields; f++ {
			// B vectors of k group f of the unit, each byte's code at the
			// top of the byte (scaled by 2^(8-bits)).
			shift := 8 - bits - f*bits
			for v := 0; v < nv; v++ {
				src := vnniBAddr(v, 64*u)
				dst := fmt.Sprintf("Z%d", bReg+v)
				switch {
				case bits == 8:
					p("\tVMOVDQU32 %s, %s", src, dst)
				case shift == 0:
					p("\tVPANDD %s, Z31, %s", src, dst)
				default:
					p("\tVPSLLW $%d, %s, %s", shift, src, dst)
					p("\tVPANDD Z31, %s, %s", dst, dst)
				}
			}
			for i := 0; i < h; i++ {
				a := fmt.Sprintf("Z%d", 27+bc%4)
				bc++
				p("\tVPBROADCASTD %s, %s", aAddr(i, unitK(bits)*u+4*f), a)
				for v := 0; v < nv; v++ {
					p("\tVPDPBUSD Z%d, %s, %s", bReg+v, a, vnniAcc(nv, i, v))
				}
			}
		}
	}
	un := map[int]int{8: 4, 4: 2, 2: 1}[bits]
	loops(h, bits, un, step, func() {
		// K4 enables the first tk bytes: a masked load reads no byte
		// past them.
		p("\tMOVL $1, AX")
		p("\tSHLL CX, AX")
		p("\tDECL AX")
		p("\tKMOVW AX, K4")
		for i := 0; i < h; i++ {
			p("\tVMOVDQU8.Z (%s)(SI*1), K4, X27", rowRegs[i])
			p("\tVMOVDQU32 X27, %s", frameRow(h, i))
		}
	})
	// Masks: K1 the valid columns of the last vector (store), K2 = K1 or 0
	// (load C of the last vector), K3 = 0xffff or 0 (load C, full vectors).
	p("\tMOVQ mask+64(FP), AX")
	p("\tKMOVW AX, K1")
	p("\tMOVQ acc+72(FP), BX")
	p("\tNEGQ BX")
	p("\tANDQ BX, AX")
	p("\tKMOVW AX, K2")
	p("\tKMOVW BX, K3")
	p("\tMOVQ c+48(FP), AX")
	p("\tMOVQ ldc+56(FP), CX")
	p("\tSHLQ $2, CX")
	for i := 0; i < h; i++ {
		for v := 0; v < nv; v++ {
			z := vnniAcc(nv, i, v)
			off := disp(64 * v)
			if bits < 8 {
				p("\tVPSRAD $%d, %s, %s", 8-bits, z, z)
			}
			if v == nv-1 {
				p("\tVMOVDQU32.Z %s(AX), K2, Z30", off)
				p("\tVPADDD Z30, %s, %s", z, z)
				p("\tVMOVDQU32 %s, K1, %s(AX)", z, off)
			} else {
				p("\tVMOVDQU32.Z %s(AX), K3, Z30", off)
				p("\tVPADDD Z30, %s, %s", z, z)
				p("\tVMOVDQU32 %s, %s(AX)", z, off)
			}
		}
		if i < h-1 {
			p("\tADDQ CX, AX")
		}
	}
	// VZEROUPPER clears the upper halves of Z0..Z15 only: writing the
	// X form of Z16..Z31 clears theirs, so that the core returns to the
	// clean upper state and later SSE code (Go's runtime and compiled
	// code use it) runs without the dirty-upper penalty.
	for r := 16; r < 32; r++ {
		p("\tVPXORD X%d, X%d, X%d", r, r, r)
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// ---- AVX2 ----

func avx2Acc(nv, i, v int) string { return fmt.Sprintf("Y%d", i*nv+v) }

// avx2Field emits the even (lo) and odd (hi) int16 codes of field f of the
// 32 bytes at src: lo = Y(8+2v), hi = Y(9+2v). A word holds bytes 4c+r,
// 4c+r+1 (r = 0 or 2); the field of the low byte starts at bit f*bits,
// that of the high byte at 8 + f*bits; each is shifted to the top of the
// word and shifted back arithmetically (sign extension).
func avx2Field(bits, f, v int, src string) {
	lo, hi := fmt.Sprintf("Y%d", 8+2*v), fmt.Sprintf("Y%d", 9+2*v)
	pos := f * bits
	p("\tVMOVDQU %s, %s", src, hi)
	p("\tVPSLLW $%d, %s, %s", 16-bits-pos, hi, lo)
	p("\tVPSRAW $%d, %s, %s", 16-bits, lo, lo)
	if s := 8 - bits - pos; s > 0 {
		p("\tVPSLLW $%d, %s, %s", s, hi, hi)
	}
	p("\tVPSRAW $%d, %s, %s", 16-bits, hi, hi)
}

func avx2Kernel(bits, h, nv int) {
	name := avx2Name(bits, h, nv)
	header(name, h)
	for i := 0; i < h*nv; i++ {
		p("\tVPXOR Y%d, Y%d, Y%d", i, i, i)
	}
	fields := 8 / bits
	step := func(u int) {
		for f := 0; f < fields; f++ {
			for v := 0; v < nv; v++ {
				avx2Field(bits, f, v, fmt.Sprintf("%s(BX)", disp(64*u+32*v)))
			}
			for i := 0; i < h; i++ {
				// Y12 = A bytes of row i broadcast; Y13 = even bytes, Y12 =
				// odd bytes, zero-extended to words.
				p("\tVPBROADCASTD %s, Y12", aAddr(i, unitK(bits)*u+4*f))
				p("\tVPAND ·wordLowByte<>(SB), Y12, Y13")
				p("\tVPSRLW $8, Y12, Y12")
				for v := 0; v < nv; v++ {
					z := avx2Acc(nv, i, v)
					p("\tVPMADDWD Y%d, Y13, Y14", 8+2*v)
					p("\tVPADDD Y14, %s, %s", z, z)
					p("\tVPMADDWD Y%d, Y12, Y15", 9+2*v)
					p("\tVPADDD Y15, %s, %s", z, z)
				}
			}
		}
	}
	un := map[int]int{8: 2, 4: 1, 2: 1}[bits]
	loops(h, bits, un, step, func() {
		// Zero the rows of the frame, then copy tk bytes of each row one
		// at a time (AVX2 has no byte-masked load).
		p("\tVPXOR X12, X12, X12")
		for i := 0; i < h; i++ {
			p("\tVMOVDQU X12, %s", frameRow(h, i))
		}
		for i := 0; i < h; i++ {
			p("\tLEAQ %s, DI", frameRow(h, i))
			p("\tADDQ SI, %s", rowRegs[i])
			p("\tXORQ AX, AX")
			p("tcopy%d:", i)
			p("\tMOVB (%s)(AX*1), DX", rowRegs[i])
			p("\tMOVB DX, (DI)(AX*1)")
			p("\tINCQ AX")
			p("\tCMPQ AX, CX")
			p("\tJLT tcopy%d", i)
		}
	})
	// Y14: store mask of the last vector (first mask lanes set), Y13: its
	// load mask (Y14 or 0), Y15: load mask of full vectors (ones or 0).
	p("\tMOVQ mask+64(FP), AX")
	p("\tNEGQ AX")
	p("\tLEAQ ·laneMask<>(SB), DX")
	p("\tVMOVDQU 32(DX)(AX*4), Y14")
	p("\tMOVQ acc+72(FP), BX")
	p("\tNEGQ BX")
	p("\tVMOVQ BX, X15")
	p("\tVPBROADCASTQ X15, Y15")
	p("\tVPAND Y14, Y15, Y13")
	p("\tMOVQ c+48(FP), AX")
	p("\tMOVQ ldc+56(FP), CX")
	p("\tSHLQ $2, CX")
	for i := 0; i < h; i++ {
		for v := 0; v < nv; v++ {
			z := avx2Acc(nv, i, v)
			off := disp(32 * v)
			if v == nv-1 {
				p("\tVPMASKMOVD %s(AX), Y13, Y12", off)
				p("\tVPADDD Y12, %s, %s", z, z)
				p("\tVPMASKMOVD %s, Y14, %s(AX)", z, off)
			} else {
				p("\tVPMASKMOVD %s(AX), Y15, Y12", off)
				p("\tVPADDD Y12, %s, %s", z, z)
				p("\tVMOVDQU %s, %s(AX)", z, off)
			}
		}
		if i < h-1 {
			p("\tADDQ CX, AX")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

func avx2Data() {
	p("// wordLowByte is 0x00FF in every 16-bit word.")
	for i := 0; i < 4; i++ {
		p("DATA ·wordLowByte<>+%d(SB)/8, $0x00ff00ff00ff00ff", 8*i)
	}
	p("GLOBL ·wordLowByte<>(SB), RODATA|NOPTR, $32")
	p("")
	p("// laneMask is 8 words of all ones then 8 of zeros: the 32 bytes at")
	p("// laneMask + 32 - 4w enable the first w of 8 int32 lanes.")
	for i := 0; i < 8; i++ {
		v := "$0xffffffffffffffff"
		if i >= 4 {
			v = "$0"
		}
		p("DATA ·laneMask<>+%d(SB)/8, %s", 8*i, v)
	}
	p("GLOBL ·laneMask<>(SB), RODATA|NOPTR, $64")
	p("")
}

// dispatch emits the Go switch that calls family fam's kernel for bits,
// h and nv.
func dispatch(fam string, name func(bits, h, nv int) string, mr, maxNV int) {
	p("// %sCall calls the %s kernel for bits, an h-row tile and nv vectors.", fam, fam)
	p("func %sCall(bits, h, nv int, %s) {", fam, args)
	p("\tswitch bits<<8 | h<<4 | nv {")
	for _, bits := range allBits {
		for h := 1; h <= mr; h++ {
			for nv := 1; nv <= maxNV; nv++ {
				p("\tcase %d:", bits<<8|h<<4|nv)
				p("\t\t%s(a, lda, b, ps, n, tk, c, ldc, mask, acc)", name(bits, h, nv))
				p("\t\treturn")
			}
		}
	}
	p("\t}")
	p("\tpanic(\"qgemm: bad %s kernel shape\")", fam)
	p("}")
	p("")
}

func main() {
	p("// Code generated by gen_kernel.go; DO NOT EDIT.")
	p("")
	p("//go:build amd64 && !noasm")
	p("")
	p("#include \"textflag.h\"")
	p("")
	avx2Data()
	for _, bits := range allBits {
		for h := 1; h <= vnniMR; h++ {
			for nv := 1; nv <= vnniNV; nv++ {
				vnniKernel(bits, h, nv)
			}
		}
	}
	for _, bits := range allBits {
		for h := 1; h <= avx2MR; h++ {
			for nv := 1; nv <= avx2NV; nv++ {
				avx2Kernel(bits, h, nv)
			}
		}
	}
	asm := strings.TrimRight(out.String(), "\n") + "\n"
	if err := os.WriteFile("kernel_amd64.s", []byte(asm), 0o644); err != nil {
		log.Fatal(err)
	}

	out.Reset()
	p("// Code generated by gen_kernel.go; DO NOT EDIT.")
	p("")
	p("//go:build amd64 && !noasm")
	p("")
	p("package qgemm")
	p("")
	p("// Tile sizes of the kernels.")
	p("const (")
	p("\tvnniMR = %d // rows of a VNNI tile", vnniMR)
	p("\tvnniNV = %d // 16-column panels of a VNNI tile", vnniNV)
	p("\tavx2MR = %d // rows of an AVX2 tile", avx2MR)
	p("\tavx2NV = %d // 8-column half panels of an AVX2 tile (one panel)", avx2NV)
	p(")")
	p("")
	for _, bits := range allBits {
		for h := 1; h <= vnniMR; h++ {
			for nv := 1; nv <= vnniNV; nv++ {
				p("//go:noescape")
				p("func %s(%s)", vnniName(bits, h, nv), args)
				p("")
			}
		}
	}
	for _, bits := range allBits {
		for h := 1; h <= avx2MR; h++ {
			for nv := 1; nv <= avx2NV; nv++ {
				p("//go:noescape")
				p("func %s(%s)", avx2Name(bits, h, nv), args)
				p("")
			}
		}
	}
	dispatch("vnni", vnniName, vnniMR, vnniNV)
	dispatch("avx2", avx2Name, avx2MR, avx2NV)
	src, err := format.Source(out.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("zkernel_amd64.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
