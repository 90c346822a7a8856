//go:build ignore

// gen_kernel writes kernel_amd64.s and zkernel_amd64.go, the assembly
// micro-kernels of Gemm. Run it with "go generate" in this directory.
//
// Every kernel computes one h×w tile of C = A·B exactly in int32,
//
//	C[i][j] (+)= sum_k A[i][k] * B[k][j]
//
// with the accumulators in registers for the whole k loop, over n units
// of k (unitK = 4, 8, 16 values for 8, 4, 2 bits). B is one or more
// 16-column panels: the packed layout (see pack.go), where byte 4*c+r of
// the 64-byte unit u holds, in its bit field f (bits f*bits ..
// f*bits+bits-1), the code of B[unitK*u + 4*f + r][c], or, for the
// VPMADDWD kernels, its int16 copy (Packed.wide). With acc = 1 the
// kernel adds the previous content of C (a later k block); with acc = 0
// C is written without being read.
//
// Four families:
//
//	vnni: AVX-512 VNNI, h <= 8 rows, nv <= 3 zmm vectors of 16 columns
//	      (one panel each), A read in place, row i at a + i*lda, unit u
//	      of segment s at offset u*unitK + s*(n*unitK + skip) (segs
//	      segments of n units: an implicit im2col matrix, each segment a
//	      window row; segs = 1 for a plain GEMM), panel v of unit u
//	      (counted across segments) at b + v*ps + 64*u; tiles >= 1 such
//	      tiles, each h rows of A and C below the previous one. Per 4
//	      k: one VPBROADCASTD of 4 A bytes per row, one B vector per
//	      panel, h*nv VPDPBUSD. Sub-byte codes are moved to the top of
//	      their byte (VPSLLW, VPANDD with 0xF0 or 0xC0), which makes the
//	      byte the signed code times 16 or 64; the sums are shifted back
//	      (VPSRAD) before the store. The scaled partial sums stay below
//	      2^31 under the same K limit as 8 bits. mask (16 bits) selects
//	      the valid columns of the last vector; loads and stores of C are
//	      masked by it. After the n units, if tk > 0, the kernel does one
//	      more unit with only the next tk < unitK bytes of every row of A,
//	      read with byte-masked loads (VMOVDQU8) into its frame and
//	      zero-padded (B's unit is zero-padded by Pack), so A is never
//	      read past column K.
//	avx2: AVX2 VPMADDWD, 8 bits, h <= 5 rows, nv <= 2 ymm vectors of 8
//	      columns (the two halves of one panel). A is the int16 copy
//	      made by avx2WidenA (zero-padded: no K tail), B the int16 copy
//	      of the codes; see avx2Kernel.
//	ubs:  AVX2 VPMADDUBSW, h <= 6 rows, nv <= 2 ymm vectors, for 4- and
//	      2-bit codes and 8-bit codes within [-64, 64]: A is the byte
//	      copy made by ubsCopyA, B the packed codes; see ubsKernel.
//	avxvnni: AVX-VNNI, the VEX-encoded VPDPBUSD on ymm, h <= 6 rows,
//	      nv <= 2 ymm vectors, for all codes: A and B as for ubs; see
//	      avxvnniKernel.
//
// In the three ymm families mask is the number (1..8) of valid columns
// of the last vector; only when it is below 8 are the loads and stores
// of that vector masked (VPMASKMOVD).
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
	avx2MR = 5 // rows of a VPMADDWD tile
	ubsMR  = 6 // rows of a VPMADDUBSW tile
	avx2NV = 2 // ymm vectors (half panels) of an AVX2 or AVX-VNNI tile
	// avxvnniMR is the rows of an AVX-VNNI tile: 12 accumulators, 2 B
	// vectors, the broadcast A and the field mask fill the 16 ymm
	// registers.
	avxvnniMR = 6
)

var allBits = []int{8, 4, 2}

var out bytes.Buffer

func p(format string, args ...any) {
	fmt.Fprintf(&out, format, args...)
	out.WriteByte('\n')
}

// args are the arguments of the VNNI kernels.
const args = "a *uint8, lda int, b *byte, ps int, n int, tk int, c *int32, ldc int, mask int, acc int, segs int, skip int, tiles int"

func vnniName(bits, h, nv int) string { return fmt.Sprintf("vnniB%dR%dV%d", bits, h, nv) }

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

// header emits the prologue of the VNNI kernels: the frame's tile
// state (A and C of the current tile, tiles left), then, at label tile,
// each tile's row pointers, B pointer, unit count and A offset.
func header(name string, h int) {
	p("// func %s(%s)", name, args)
	p("TEXT ·%s(SB), NOSPLIT, $%d-104", name, tailW*h+24)
	p("\tMOVQ a+0(FP), AX")
	p("\tMOVQ AX, %s", frameSlot(h, "abase", 1))
	p("\tMOVQ c+48(FP), AX")
	p("\tMOVQ AX, %s", frameSlot(h, "cbase", 2))
	p("\tMOVQ tiles+96(FP), AX")
	p("\tMOVQ AX, %s", frameSlot(h, "tleft", 3))
}

// tileStart emits the start of a tile: its row pointers, B pointer, unit
// count and A offset.
func tileStart(h int) {
	p("tile:")
	p("\tMOVQ %s, R8", frameSlot(h, "abase", 1))
	p("\tMOVQ lda+8(FP), AX")
	for i := 1; i < h; i++ {
		p("\tLEAQ (%s)(AX*1), %s", rowRegs[i-1], rowRegs[i])
	}
	p("\tMOVQ b+16(FP), BX")
	p("\tMOVQ ps+24(FP), DX")
	p("\tMOVQ n+32(FP), CX")
	p("\tXORQ SI, SI")
}

// tileEnd emits the move to the next tile, h rows of A and C further on,
// while tiles are left.
func tileEnd(h int) {
	p("\tDECQ %s", frameSlot(h, "tleft", 3))
	p("\tJZ done")
	p("\tMOVQ ldc+56(FP), CX")
	p("\tIMULQ $%d, CX", 4*h)
	p("\tADDQ CX, %s", frameSlot(h, "cbase", 2))
	p("\tMOVQ lda+8(FP), CX")
	p("\tIMULQ $%d, CX", h)
	p("\tADDQ CX, %s", frameSlot(h, "abase", 1))
	p("\tJMP tile")
	p("done:")
}

// frameSlot is the address of the i-th 8-byte slot of the tile state,
// below the K-tail rows of the frame.
func frameSlot(h int, name string, i int) string { return fmt.Sprintf("%s-%d(SP)", name, tailW*h+8*i) }

// loops emits the k loop: segs segments (at least 1) of n units each,
// unrolled by un, then one at a time, the A offset SI moving on by skip
// bytes after each segment but the last (B runs on unit after unit), then
// the optional tail unit. step(u) emits unit u of an unrolled group (B at
// BX + 64u, A at offset SI + u*unitK). It uses DI for the segment count.
func loops(h, bits, un int, step func(u int), tail func()) {
	uk := unitK(bits)
	p("\tMOVQ segs+80(FP), DI")
	p("seg:")
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
	p("\tJZ segend")
	p("loop1:")
	step(0)
	p("\tADDQ $64, BX")
	p("\tADDQ $%d, SI", uk)
	p("\tDECQ CX")
	p("\tJNZ loop1")
	p("segend:")
	p("\tDECQ DI")
	p("\tJLE tail")
	p("\tADDQ skip+88(FP), SI")
	p("\tMOVQ n+32(FP), CX")
	p("\tJMP seg")
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
	tileStart(h)
	nacc := h * nv
	for i := 0; i < nacc; i++ {
		p("\tVPXORD Z%d, Z%d, Z%d", i, i, i)
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
	p("\tMOVQ %s, AX", frameSlot(h, "cbase", 2))
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
	tileEnd(h)
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

// ---- AVX2, VPMADDWD (8 bits) ----

// avx2Name is the name of a VPMADDWD kernel (8-bit codes only).
func avx2Name(h, nv int) string { return fmt.Sprintf("avx2R%dV%d", h, nv) }

// avx2Args are the arguments of the VPMADDWD kernels: a is the widened A
// of the tile's first row (avx2WidenA), lda the byte stride of its rows;
// tiles >= 1 tiles of h rows are computed one after the other, on the
// same B, tile t from a + t*h*lda into c + t*h*ldc (avx2Store).
const avx2Args = "a *uint16, lda int, b *byte, n int, c *int32, ldc int, mask int, acc int, tiles int"

// avx2Acc is the accumulator of row i, vector v of an AVX2 tile.
func avx2Acc(nv, i, v int) string { return fmt.Sprintf("Y%d", i*nv+v) }

// avx2Kernel emits a VPMADDWD kernel: h <= 5 rows, nv <= 2 vectors of 8
// columns. Unit u (4 k) of B is 128 bytes of the int16 copy (the even-k
// pairs of the 16 columns, then the odd-k pairs), of A the 8 bytes of
// its widened, reordered row (two dwords: A[4u], A[4u+2] and A[4u+1],
// A[4u+3]). Per unit and parity: the B vectors are loaded, and for every
// row the A dword is broadcast (VBROADCASTSS, measured faster than
// VPBROADCASTD on Zen 3), multiplied (VPMADDWD: int32 sums of 2
// products, at most 2*255*128 in magnitude, exact) and added (VPADDD) one
// row later, so that the adds never wait for the multiply just issued
// (measured 4% faster than 6-row tiles without this). B is prefetched
// (PREFETCHT0) 8 units ahead. Registers: 10 accumulators, Y10-Y11 B,
// Y12-Y13 A and Y14-Y15 products, alternating by row.
func avx2Kernel(h, nv int) {
	name := avx2Name(h, nv)
	p("// func %s(%s)", name, avx2Args)
	p("TEXT ·%s(SB), NOSPLIT, $0-72", name)
	p("tile:")
	p("\tMOVQ a+0(FP), R8")
	p("\tMOVQ lda+8(FP), AX")
	for i := 1; i < h; i++ {
		p("\tLEAQ (%s)(AX*1), %s", rowRegs[i-1], rowRegs[i])
	}
	p("\tMOVQ b+16(FP), BX")
	p("\tMOVQ n+24(FP), CX")
	p("\tXORQ SI, SI")
	for i := 0; i < h*nv; i++ {
		p("\tVPXOR Y%d, Y%d, Y%d", i, i, i)
	}
	step := func(u int) {
		// B streams from L2: prefetch it 8 units ahead.
		p("\tPREFETCHT0 %d(BX)", 128*u+1024)
		p("\tPREFETCHT0 %d(BX)", 128*u+1024+64)
		for par := 0; par < 2; par++ {
			for v := 0; v < nv; v++ {
				p("\tVMOVDQU %s(BX), Y%d", disp(128*u+64*par+32*v), 10+v)
			}
			var pending []string
			for i := 0; i < h; i++ {
				a, t := fmt.Sprintf("Y%d", 12+i%2), fmt.Sprintf("Y%d", 14+i%2)
				p("\tVBROADCASTSS %s(%s)(SI*1), %s", disp(8*u+4*par), rowRegs[i], a)
				// The product of the last vector goes to the A register.
				prod := []string{t, a}[2-nv:]
				for v := 0; v < nv; v++ {
					p("\tVPMADDWD Y%d, %s, %s", 10+v, a, prod[v])
				}
				for _, s := range pending {
					p("%s", s)
				}
				pending = pending[:0]
				for v := 0; v < nv; v++ {
					z := avx2Acc(nv, i, v)
					pending = append(pending, fmt.Sprintf("\tVPADDD %s, %s, %s", prod[v], z, z))
				}
			}
			for _, s := range pending {
				p("%s", s)
			}
		}
	}
	kloop(2, 128, 8, step)
	avx2Store(h, nv)
}

// ---- AVX2, VPMADDUBSW ----

// ubsName is the name of a VPMADDUBSW kernel.
func ubsName(bits, h, nv int) string { return fmt.Sprintf("ubsB%dR%dV%d", bits, h, nv) }

// ubsArgs are the arguments of the VPMADDUBSW and AVX-VNNI kernels: a is
// the tile's first row of the copy of A (bytes, zero-padded), lda its row
// stride.
const ubsArgs = "a *uint8, lda int, b *byte, n int, c *int32, ldc int, mask int, acc int, tiles int"

// ubsDecode emits the signed bytes of fields f and f+1 of the 32 packed
// bytes at src into Y12 and Y13: each field is shifted to the bottom of
// its byte, masked and sign-extended by a VPSHUFB table lookup. Y14 is
// clobbered (the table).
func ubsDecode(bits, f int, src string) {
	tbl, msk := "·nibbleSext<>(SB)", "·nibbleMask<>(SB)"
	if bits == 2 {
		tbl, msk = "·crumbSext<>(SB)", "·crumbMask<>(SB)"
	}
	p("\tVMOVDQU %s, Y14", tbl)
	p("\tVMOVDQU %s, Y12", src)
	if f > 0 {
		p("\tVPSRLW $%d, Y12, Y12", f*bits)
	}
	p("\tVPSRLW $%d, Y12, Y13", bits)
	p("\tVPAND %s, Y13, Y13", msk)
	p("\tVPSHUFB Y13, Y14, Y13")
	p("\tVPAND %s, Y12, Y12", msk)
	p("\tVPSHUFB Y12, Y14, Y12")
}

// ubsKernel emits a VPMADDUBSW kernel: h <= 6 rows, nv <= 2 vectors of 8
// columns, A as unsigned bytes (a dword broadcast gives the 4 k of a
// column's dword of B), B as signed bytes: the 8-bit packed codes (all
// within [-64, 64]) or the 4- and 2-bit codes decoded by ubsDecode.
// VPMADDUBSW forms int16 sums of 2 products, which cannot saturate:
// 2*255*64 = 32640 at 8 bits, 2*255*8 and 2*255*2 for 4 and 2 bits,
// where two fields are summed (VPADDW) before the widening (at most
// 8160). VPMADDWD by ones widens to int32 sums of 4 or 8 products and
// VPADDD accumulates.
func ubsKernel(bits, h, nv int) {
	name := ubsName(bits, h, nv)
	p("// func %s(%s)", name, ubsArgs)
	p("TEXT ·%s(SB), NOSPLIT, $0-72", name)
	p("tile:")
	p("\tMOVQ a+0(FP), R8")
	p("\tMOVQ lda+8(FP), AX")
	for i := 1; i < h; i++ {
		p("\tLEAQ (%s)(AX*1), %s", rowRegs[i-1], rowRegs[i])
	}
	p("\tMOVQ b+16(FP), BX")
	p("\tMOVQ n+24(FP), CX")
	p("\tXORQ SI, SI")
	for i := 0; i < h*nv; i++ {
		p("\tVPXOR Y%d, Y%d, Y%d", i, i, i)
	}
	uk := unitK(bits)
	step := func(u int) {
		if bits == 8 {
			for v := 0; v < nv; v++ {
				p("\tVMOVDQU %s(BX), Y%d", disp(64*u+32*v), 12+v)
			}
			for i := 0; i < h; i++ {
				p("\tVBROADCASTSS %s(%s)(SI*1), Y14", disp(uk*u), rowRegs[i])
				for v := 0; v < nv; v++ {
					// The product of the last vector goes to Y14 (dead).
					d := "Y15"
					if v == nv-1 {
						d = "Y14"
					}
					z := avx2Acc(nv, i, v)
					p("\tVPMADDUBSW Y%d, Y14, %s", 12+v, d)
					p("\tVPMADDWD ·wordOnes<>(SB), %s, %s", d, d)
					p("\tVPADDD %s, %s, %s", d, z, z)
				}
			}
			return
		}
		for v := 0; v < nv; v++ {
			for f := 0; f < 8/bits; f += 2 {
				ubsDecode(bits, f, fmt.Sprintf("%s(BX)", disp(64*u+32*v)))
				for i := 0; i < h; i++ {
					z := avx2Acc(nv, i, v)
					p("\tVBROADCASTSS %s(%s)(SI*1), Y14", disp(uk*u+4*f), rowRegs[i])
					p("\tVBROADCASTSS %s(%s)(SI*1), Y15", disp(uk*u+4*f+4), rowRegs[i])
					p("\tVPMADDUBSW Y12, Y14, Y14")
					p("\tVPMADDUBSW Y13, Y15, Y15")
					p("\tVPADDW Y15, Y14, Y14")
					p("\tVPMADDWD ·wordOnes<>(SB), Y14, Y14")
					p("\tVPADDD Y14, %s, %s", z, z)
				}
			}
		}
	}
	un := map[int]int{8: 4, 4: 2, 2: 1}[bits]
	kloop(un, 64, uk, step)
	avx2Store(h, nv)
}

// ---- AVX-VNNI ----

// avxvnniName is the name of an AVX-VNNI kernel.
func avxvnniName(bits, h, nv int) string { return fmt.Sprintf("avxvnniB%dR%dV%d", bits, h, nv) }

// vexDPBUSD returns VPDPBUSD Yb, Ya, Yacc (Go's operand order: acc +=
// the int32 sums of 4 products of the unsigned bytes of Ya and the
// signed bytes of Yb) in its VEX encoding, VEX.256.66.0F38.W0 50 /r with
// acc in ModRM.reg, a in VEX.vvvv and b in ModRM.rm, as BYTE directives:
// Go's assembler knows only the EVEX form, which needs AVX-512 VL. The
// 3-byte VEX prefix is C4, then R X B (inverted bits 3 of reg, of an
// index, of rm) and the map 0F38 (00010), then W = 0, vvvv inverted, L =
// 1 (256 bits) and pp = 01 (66).
func vexDPBUSD(b, a, acc int) string {
	enc := []byte{
		0xc4,
		byte(^acc>>3&1)<<7 | 1<<6 | byte(^b>>3&1)<<5 | 0x02,
		byte(^a&15)<<3 | 1<<2 | 0x01,
		0x50,
		0xc0 | byte(acc&7)<<3 | byte(b&7),
	}
	var ds []string
	for _, x := range enc {
		ds = append(ds, fmt.Sprintf("BYTE $0x%02x", x))
	}
	return fmt.Sprintf("\t%s // VPDPBUSD Y%d, Y%d, Y%d", strings.Join(ds, "; "), b, a, acc)
}

// avxvnniKernel emits an AVX-VNNI kernel: h <= 6 rows, nv <= 2 vectors
// of 8 columns, A as unsigned bytes (a dword broadcast, VPBROADCASTD,
// gives the 4 k of a column's dword of B), B the packed codes, one
// VPDPBUSD per row and vector for every 4 k: int32 sums of 4 u8 x s8
// products added to the accumulator without saturation, exact for all
// codes. Sub-byte codes are moved to the top of their byte as in the
// VNNI kernels (VPSLLW, VPAND with 0xF0 or 0xC0, from Y15), the byte
// then being the code times 16 or 64, and the sums are shifted back
// (VPSRAD) before the store: the scaled sums are at most 255*128*K in
// magnitude, like 8-bit ones. Registers: 12 accumulators, Y12-Y13 B,
// Y14 A, Y15 the field mask.
func avxvnniKernel(bits, h, nv int) {
	name := avxvnniName(bits, h, nv)
	p("// func %s(%s)", name, ubsArgs)
	p("TEXT ·%s(SB), NOSPLIT, $0-72", name)
	p("tile:")
	if bits < 8 {
		// Set for every tile: avx2Store clobbers Y15.
		top := map[int]uint32{4: 0xF0, 2: 0xC0}[bits] * 0x01010101
		p("\tMOVL $0x%08X, DI", top)
		p("\tVMOVD DI, X15")
		p("\tVPBROADCASTD X15, Y15")
	}
	p("\tMOVQ a+0(FP), R8")
	p("\tMOVQ lda+8(FP), AX")
	for i := 1; i < h; i++ {
		p("\tLEAQ (%s)(AX*1), %s", rowRegs[i-1], rowRegs[i])
	}
	p("\tMOVQ b+16(FP), BX")
	p("\tMOVQ n+24(FP), CX")
	p("\tXORQ SI, SI")
	for i := 0; i < h*nv; i++ {
		p("\tVPXOR Y%d, Y%d, Y%d", i, i, i)
	}
	uk := unitK(bits)
	step := func(u int) {
		for f := 0; f < 8/bits; f++ {
			shift := 8 - bits - f*bits
			for v := 0; v < nv; v++ {
				src, dst := fmt.Sprintf("%s(BX)", disp(64*u+32*v)), fmt.Sprintf("Y%d", 12+v)
				switch {
				case bits == 8:
					p("\tVMOVDQU %s, %s", src, dst)
				case shift == 0:
					p("\tVPAND %s, Y15, %s", src, dst)
				default:
					p("\tVMOVDQU %s, %s", src, dst)
					p("\tVPSLLW $%d, %s, %s", shift, dst, dst)
					p("\tVPAND Y15, %s, %s", dst, dst)
				}
			}
			for i := 0; i < h; i++ {
				p("\tVPBROADCASTD %s(%s)(SI*1), Y14", disp(uk*u+4*f), rowRegs[i])
				for v := 0; v < nv; v++ {
					p("%s", vexDPBUSD(12+v, 14, i*nv+v))
				}
			}
		}
	}
	un := map[int]int{8: 4, 4: 2, 2: 1}[bits]
	kloop(un, 64, uk, step)
	if bits < 8 {
		for i := 0; i < h*nv; i++ {
			p("\tVPSRAD $%d, Y%d, Y%d", 8-bits, i, i)
		}
	}
	avx2Store(h, nv)
}

// kloop emits the k loop of the AVX2 kernels: n units (CX), unrolled by
// un, B advancing by bb and A by ab bytes per unit.
func kloop(un, bb, ab int, step func(u int)) {
	if un > 1 {
		p("\tCMPQ CX, $%d", un)
		p("\tJLT one")
		p("\tPCALIGN $32")
		p("loopn:")
		for u := 0; u < un; u++ {
			step(u)
		}
		p("\tADDQ $%d, BX", bb*un)
		p("\tADDQ $%d, SI", ab*un)
		p("\tSUBQ $%d, CX", un)
		p("\tCMPQ CX, $%d", un)
		p("\tJGE loopn")
		p("one:")
	}
	p("\tTESTQ CX, CX")
	p("\tJZ store")
	p("loop1:")
	step(0)
	p("\tADDQ $%d, BX", bb)
	p("\tADDQ $%d, SI", ab)
	p("\tDECQ CX")
	p("\tJNZ loop1")
	p("store:")
}

// avx2Store emits the store of the accumulators Y0.. of an AVX2 tile to
// C, added to C's previous content when acc = 1. When the last vector
// has all 8 columns (mask = 8) plain loads and stores are used; otherwise
// the last vector of each row is loaded and stored under the lane mask
// of its first mask columns (VPMASKMOVD, slow on AMD cores, so only at
// the right edge of C).
func avx2Store(h, nv int) {
	p("\tMOVQ c+32(FP), AX")
	p("\tMOVQ ldc+40(FP), CX")
	p("\tSHLQ $2, CX")
	p("\tMOVQ acc+56(FP), BX")
	p("\tMOVQ mask+48(FP), DX")
	p("\tCMPQ DX, $8")
	p("\tJNE partial")
	rows := func(f func(z, off string, last bool)) {
		for i := 0; i < h; i++ {
			for v := 0; v < nv; v++ {
				f(avx2Acc(nv, i, v), disp(32*v), v == nv-1)
			}
			if i < h-1 {
				p("\tADDQ CX, AX")
			}
		}
	}
	p("\tTESTQ BX, BX")
	p("\tJZ full0")
	rows(func(z, off string, _ bool) {
		p("\tVPADDD %s(AX), %s, %s", off, z, z)
		p("\tVMOVDQU %s, %s(AX)", z, off)
	})
	p("\tJMP done")
	p("full0:")
	rows(func(z, off string, _ bool) {
		p("\tVMOVDQU %s, %s(AX)", z, off)
	})
	p("\tJMP done")
	// Y14: store mask of the last vector (first mask lanes set), Y13: its
	// load mask (Y14 or 0).
	p("partial:")
	p("\tNEGQ DX")
	p("\tLEAQ ·laneMask<>(SB), DI")
	p("\tVMOVDQU 32(DI)(DX*4), Y14")
	p("\tNEGQ BX")
	p("\tVMOVQ BX, X15")
	p("\tVPBROADCASTQ X15, Y15")
	p("\tVPAND Y14, Y15, Y13")
	p("\tNEGQ BX")
	rows(func(z, off string, last bool) {
		if last {
			p("\tVPMASKMOVD %s(AX), Y13, Y12", off)
			p("\tVPADDD Y12, %s, %s", z, z)
			p("\tVPMASKMOVD %s, Y14, %s(AX)", z, off)
			return
		}
		p("\tTESTQ BX, BX")
		p("\tJZ 2(PC)")
		p("\tVPADDD %s(AX), %s, %s", off, z, z)
		p("\tVMOVDQU %s, %s(AX)", z, off)
	})
	// The next tile, if any: a and c, in the argument frame, move down h
	// rows, and the tile starts over.
	p("done:")
	p("\tMOVQ tiles+64(FP), DX")
	p("\tDECQ DX")
	p("\tJLE exit")
	p("\tMOVQ DX, tiles+64(FP)")
	p("\tMOVQ lda+8(FP), AX")
	p("\tIMUL3Q $%d, AX, AX", h)
	p("\tADDQ AX, a+0(FP)")
	p("\tMOVQ ldc+40(FP), AX")
	p("\tIMUL3Q $%d, AX, AX", 4*h)
	p("\tADDQ AX, c+32(FP)")
	p("\tJMP tile")
	p("exit:")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// aCopy emits avx2WidenA (widen) or ubsCopyA: rows > 0 rows of kl > 0
// bytes of A (row stride lda) to dst (row stride ds bytes), each row
// padded with zeros to a multiple of 16 values. Whole 16-byte pieces are
// loaded directly; the last kl mod 16 bytes are loaded as the 16 bytes
// ending at kl shifted down (VPSHUFB), or, in rows shorter than 16 bytes,
// copied one at a time to a zeroed 16-byte frame slot: no byte outside
// the row's kl bytes is read. widen
// zero-extends the values to int16 and reorders every group of 4 values
// 0, 2, 1, 3 (VPSHUFB, VPMOVZXBW), so that the dword at 8g holds A[4g],
// A[4g+2] and the one at 8g+4 holds A[4g+1], A[4g+3]: the pairs
// VPMADDWD multiplies with the even and odd B vectors.
func aCopy(name string, widen bool) {
	p("// func %s(dst *%s, ds int, src *uint8, lda int, rows int, kl int)", name, map[bool]string{true: "uint16", false: "uint8"}[widen])
	p("TEXT ·%s(SB), NOSPLIT, $16-48", name)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ ds+8(FP), R8")
	p("\tMOVQ src+16(FP), SI")
	p("\tMOVQ lda+24(FP), R9")
	p("\tMOVQ rows+32(FP), R10")
	p("\tMOVQ kl+40(FP), R11")
	p("\tLEAQ t-16(SP), R13")
	if widen {
		p("\tVMOVDQU ·widenPerm<>(SB), X2")
	}
	p("\tMOVQ R11, R12")
	p("\tSHRQ $4, R12")
	p("\tANDQ $15, R11")
	// store emits the 16 values in X0 at (BX).
	store := func() {
		if widen {
			p("\tVPSHUFB X2, X0, X0")
			p("\tVPMOVZXBW X0, Y0")
			p("\tVMOVDQU Y0, (BX)")
		} else {
			p("\tVMOVDQU X0, (BX)")
		}
	}
	step := 16
	if widen {
		step = 32
	}
	p("row:")
	p("\tMOVQ SI, AX")
	p("\tMOVQ DI, BX")
	p("\tMOVQ R12, CX")
	p("\tTESTQ CX, CX")
	p("\tJZ tail")
	p("chunk:")
	p("\tVMOVDQU (AX), X0")
	store()
	p("\tADDQ $16, AX")
	p("\tADDQ $%d, BX", step)
	p("\tDECQ CX")
	p("\tJNZ chunk")
	p("tail:")
	p("\tTESTQ R11, R11")
	p("\tJZ next")
	p("\tTESTQ R12, R12")
	p("\tJZ short")
	// A whole piece precedes the tail: load the 16 bytes that end at kl
	// and shift them down by 16 - tail bytes, zero-filling (VPSHUFB with
	// the window of tailShift at 16 - tail).
	p("\tLEAQ -16(AX)(R11*1), DX")
	p("\tVMOVDQU (DX), X0")
	p("\tMOVQ $16, DX")
	p("\tSUBQ R11, DX")
	p("\tLEAQ ·tailShift<>(SB), R14")
	p("\tVMOVDQU (R14)(DX*1), X1")
	p("\tVPSHUFB X1, X0, X0")
	store()
	p("\tJMP next")
	// A row shorter than 16 bytes: copied one byte at a time.
	p("short:")
	p("\tVPXOR X0, X0, X0")
	p("\tVMOVDQU X0, (R13)")
	p("\tXORQ CX, CX")
	p("tbyte:")
	p("\tMOVBLZX (AX)(CX*1), DX")
	p("\tMOVB DX, (R13)(CX*1)")
	p("\tINCQ CX")
	p("\tCMPQ CX, R11")
	p("\tJLT tbyte")
	p("\tVMOVDQU (R13), X0")
	store()
	p("next:")
	p("\tADDQ R9, SI")
	p("\tADDQ R8, DI")
	p("\tDECQ R10")
	p("\tJNZ row")
	if widen {
		p("\tVZEROUPPER")
	}
	p("\tRET")
	p("")
}

func avx2Data() {
	data32 := func(name, comment string, b func(i int) byte) {
		p("// %s", comment)
		for q := 0; q < 4; q++ {
			var v uint64
			for i := 7; i >= 0; i-- {
				v = v<<8 | uint64(b(8*q+i))
			}
			p("DATA ·%s<>+%d(SB)/8, $0x%016x", name, 8*q, v)
		}
		p("GLOBL ·%s<>(SB), RODATA|NOPTR, $32", name)
		p("")
	}
	data32("tailShift", "tailShift is 0, 1, ..., 15, then 16 bytes 0x80 (VPSHUFB: zero).", func(i int) byte {
		if i < 16 {
			return byte(i)
		}
		return 0x80
	})
	data32("wordOnes", "wordOnes is 1 in every 16-bit word.", func(i int) byte { return byte(1 - i%2) })
	data32("nibbleMask", "nibbleMask is 0x0F in every byte.", func(int) byte { return 0x0f })
	data32("crumbMask", "crumbMask is 0x03 in every byte.", func(int) byte { return 0x03 })
	data32("nibbleSext", "nibbleSext maps a 4-bit code (two's complement) to its int8 value, in both lanes.",
		func(i int) byte { return byte(int8(i%16<<4) >> 4) })
	data32("crumbSext", "crumbSext maps a 2-bit code (two's complement) to its int8 value, in both lanes.",
		func(i int) byte { return byte(int8(i%16<<6) >> 6) })
	p("// widenPerm reorders every group of 4 bytes 0, 2, 1, 3.")
	p("DATA ·widenPerm<>+0(SB)/8, $0x0705060403010200")
	p("DATA ·widenPerm<>+8(SB)/8, $0x0f0d0e0c0b090a08")
	p("GLOBL ·widenPerm<>(SB), RODATA|NOPTR, $16")
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

// dispatch emits the Go switch that calls family fam's kernel for an
// h-row tile of nv vectors and, if the family has more than one, for
// bits; params are the kernels' parameters.
func dispatch(fam string, bitsList []int, name func(bits, h, nv int) string, mr, maxNV int, params string) {
	var names []string
	for _, f := range strings.Split(params, ", ") {
		names = append(names, strings.Fields(f)[0])
	}
	if len(bitsList) == 1 {
		p("// %sCall calls the %s kernel for an h-row tile of nv vectors.", fam, fam)
		p("func %sCall(h, nv int, %s) {", fam, params)
		p("\tswitch h<<4 | nv {")
	} else {
		p("// %sCall calls the %s kernel for bits, an h-row tile and nv vectors.", fam, fam)
		p("func %sCall(bits, h, nv int, %s) {", fam, params)
		p("\tswitch bits<<8 | h<<4 | nv {")
	}
	for _, bits := range bitsList {
		for h := 1; h <= mr; h++ {
			for nv := 1; nv <= maxNV; nv++ {
				if len(bitsList) == 1 {
					p("\tcase %d:", h<<4|nv)
				} else {
					p("\tcase %d:", bits<<8|h<<4|nv)
				}
				p("\t\t%s(%s)", name(bits, h, nv), strings.Join(names, ", "))
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
	for h := 1; h <= avx2MR; h++ {
		for nv := 1; nv <= avx2NV; nv++ {
			avx2Kernel(h, nv)
		}
	}
	for _, bits := range allBits {
		for h := 1; h <= ubsMR; h++ {
			for nv := 1; nv <= avx2NV; nv++ {
				ubsKernel(bits, h, nv)
			}
		}
	}
	for _, bits := range allBits {
		for h := 1; h <= avxvnniMR; h++ {
			for nv := 1; nv <= avx2NV; nv++ {
				avxvnniKernel(bits, h, nv)
			}
		}
	}
	aCopy("avx2WidenA", true)
	aCopy("ubsCopyA", false)
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
	p("\tavx2MR = %d // rows of a VPMADDWD tile", avx2MR)
	p("\tubsMR  = %d // rows of a VPMADDUBSW tile", ubsMR)
	p("\tavx2NV = %d // 8-column half panels of an AVX2 or AVX-VNNI tile (one panel)", avx2NV)
	p("\tavxvnniMR = %d // rows of an AVX-VNNI tile", avxvnniMR)
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
	for h := 1; h <= avx2MR; h++ {
		for nv := 1; nv <= avx2NV; nv++ {
			p("//go:noescape")
			p("func %s(%s)", avx2Name(h, nv), avx2Args)
			p("")
		}
	}
	for _, bits := range allBits {
		for h := 1; h <= ubsMR; h++ {
			for nv := 1; nv <= avx2NV; nv++ {
				p("//go:noescape")
				p("func %s(%s)", ubsName(bits, h, nv), ubsArgs)
				p("")
			}
		}
	}
	for _, bits := range allBits {
		for h := 1; h <= avxvnniMR; h++ {
			for nv := 1; nv <= avx2NV; nv++ {
				p("//go:noescape")
				p("func %s(%s)", avxvnniName(bits, h, nv), ubsArgs)
				p("")
			}
		}
	}
	p("// avx2WidenA writes rows > 0 rows of kl > 0 bytes of A (stride lda)")
	p("// to dst (stride ds bytes) as int16, each group of 4 values reordered")
	p("// 0, 2, 1, 3, zero-padded to a multiple of 16 values. It reads no byte")
	p("// of a row past kl.")
	p("//")
	p("//go:noescape")
	p("func avx2WidenA(dst *uint16, ds int, src *uint8, lda int, rows int, kl int)")
	p("")
	p("// ubsCopyA copies rows > 0 rows of kl > 0 bytes of A (stride lda) to")
	p("// dst (stride ds bytes), zero-padded to a multiple of 16 bytes. It")
	p("// reads no byte of a row past kl.")
	p("//")
	p("//go:noescape")
	p("func ubsCopyA(dst *uint8, ds int, src *uint8, lda int, rows int, kl int)")
	p("")
	dispatch("vnni", allBits, vnniName, vnniMR, vnniNV, args)
	dispatch("avx2", []int{8}, func(_, h, nv int) string { return avx2Name(h, nv) }, avx2MR, avx2NV, avx2Args)
	dispatch("ubs", allBits, ubsName, ubsMR, avx2NV, ubsArgs)
	dispatch("avxvnni", allBits, avxvnniName, avxvnniMR, avx2NV, ubsArgs)
	src, err := format.Source(out.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("zkernel_amd64.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
