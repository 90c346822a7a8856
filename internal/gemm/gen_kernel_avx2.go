//go:build ignore

// gen_kernel_avx2 writes kernel_avx2_amd64.s and zkernel_avx2_amd64.go,
// the AVX2+FMA micro-kernels of Sgemm. Run it with "go generate" in this
// directory.
//
// Each kernel computes one h×w tile of C (h <= mr = 6 rows, w <= nr = 16
// columns, held as nv = ceil(w/8) ymm vectors per row) as
//
//	C[i][j] = alpha * sum_p A(i,p)*B(p,j) + beta*C[i][j]
//
// with the accumulators in registers (Y0..Y11) for the whole k loop: per
// k step two B vectors (Y12, Y13), one broadcast of A (Y14) per row and
// 2*h VFMADD231PS, the 6×16 tile of the BLIS/OpenBLAS Haswell kernels.
// B(p, j) is at b[p*ldb + j] (a packed panel or B itself); A comes in the
// two layouts of the AVX-512 kernels (gen_kernel.go), one family each:
//
//	R ("rows"):  A(i,p) = a[i*lda + p]   (op(A) = A, read in place)
//	P ("panel"): A(i,p) = a[p*lda + i]   (op(A) = A^T in place, or packed)
//
// AVX2 has no cheap per-lane masks on every instruction, so each shape
// comes twice: avx2Fhxv (F the family) for w a multiple of 8, with plain loads and
// stores, and avx2Fhxvm, which loads and stores the last vector of every
// row (of B and of C) with VMASKMOVPS under the mask vector Y15 (lane j
// all ones iff column j of that vector is in the tile): a kernel never
// reads or writes past column w. C is read only when loadc != 0 (the
// caller passes 0 for beta == 0), so NaN in C cannot leak into the result.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
)

const (
	mr    = 6
	maxNV = 2
)

var out bytes.Buffer

func p(format string, args ...any) {
	fmt.Fprintf(&out, format, args...)
	out.WriteByte('\n')
}

func name(fam byte, h, nv int, masked bool) string {
	s := fmt.Sprintf("avx2%c%dx%d", fam, h, nv)
	if masked {
		s += "m"
	}
	return s
}

// acc returns the accumulator register for row i, vector v.
func acc(nv, i, v int) string { return fmt.Sprintf("Y%d", i*nv+v) }

var rowRegs = []string{"R8", "R9", "R10", "R11", "R12", "R13"}

// bAddr is the address of vector v of B row u (u < 4) of an unrolled step,
// B's base in BX, its stride in bytes in DX and 3*stride in DI.
func bAddr(u, v int) string {
	idx := [...]string{"(BX)", "(BX)(DX*1)", "(BX)(DX*2)", "(BX)(DI*1)"}[u]
	if v == 0 {
		return idx
	}
	return fmt.Sprintf("%d%s", 32*v, idx)
}

// aAddr is the address of A(i, p+u).
func aAddr(fam byte, i, u int) string {
	if fam == 'R' {
		// row i in rowRegs[i], column index in SI.
		if u == 0 {
			return fmt.Sprintf("(%s)(SI*4)", rowRegs[i])
		}
		return fmt.Sprintf("%d(%s)(SI*4)", 4*u, rowRegs[i])
	}
	// P: base SI, p stride R8 bytes, R9 = 3*R8.
	idx := [...]string{"(SI)", "(SI)(R8*1)", "(SI)(R8*2)", "(SI)(R9*1)"}[u]
	if i == 0 {
		return idx
	}
	return fmt.Sprintf("%d%s", 4*i, idx)
}

// step emits one k step (row u of an unrolled group).
func step(fam byte, h, nv, u int, masked bool) {
	for v := 0; v < nv; v++ {
		if masked && v == nv-1 {
			p("\tVMASKMOVPS %s, Y15, Y%d", bAddr(u, v), 12+v)
		} else {
			p("\tVMOVUPS %s, Y%d", bAddr(u, v), 12+v)
		}
	}
	for i := 0; i < h; i++ {
		p("\tVBROADCASTSS %s, Y14", aAddr(fam, i, u))
		for v := 0; v < nv; v++ {
			p("\tVFMADD231PS Y%d, Y14, %s", 12+v, acc(nv, i, v))
		}
	}
}

// store emits the stores of the h×nv accumulators: C = alpha*acc +
// beta*C if loadc, else C = alpha*acc. Alpha is in Y12, beta in Y13, C's
// address in AX and its stride in bytes in CX.
func store(h, nv int, masked, loadc bool) {
	for i := 0; i < h; i++ {
		for v := 0; v < nv; v++ {
			addr := "(AX)"
			if v > 0 {
				addr = fmt.Sprintf("%d(AX)", 32*v)
			}
			last := masked && v == nv-1
			z := acc(nv, i, v)
			if loadc {
				if last {
					p("\tVMASKMOVPS %s, Y15, Y14", addr)
				} else {
					p("\tVMOVUPS %s, Y14", addr)
				}
				p("\tVMULPS Y13, Y14, Y14")
				p("\tVFMADD231PS Y12, %s, Y14", z)
			} else {
				p("\tVMULPS Y12, %s, Y14", z)
			}
			if last {
				p("\tVMASKMOVPS Y14, Y15, %s", addr)
			} else {
				p("\tVMOVUPS Y14, %s", addr)
			}
		}
		if i < h-1 {
			p("\tADDQ CX, AX")
		}
	}
}

func kernel(fam byte, h, nv int, masked bool) {
	n := name(fam, h, nv, masked)
	p("// func %s(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32, mask *int32, loadc int)", n)
	p("TEXT ·%s(SB), NOSPLIT, $0-80", n)
	if masked {
		p("\tMOVQ mask+64(FP), AX")
		p("\tVMOVDQU (AX), Y15")
	}
	for i := 0; i < h*nv; i++ {
		p("\tVXORPS Y%d, Y%d, Y%d", i, i, i)
	}
	p("\tMOVQ b+24(FP), BX")
	p("\tMOVQ ldb+32(FP), DX")
	p("\tSHLQ $2, DX")
	p("\tLEAQ (DX)(DX*2), DI")
	p("\tMOVQ lda+16(FP), AX")
	p("\tSHLQ $2, AX")
	if fam == 'R' {
		p("\tMOVQ a+8(FP), R8")
		for i := 1; i < h; i++ {
			p("\tLEAQ (%s)(AX*1), %s", rowRegs[i-1], rowRegs[i])
		}
		p("\tXORQ SI, SI")
	} else {
		p("\tMOVQ a+8(FP), SI")
		p("\tMOVQ AX, R8")
		p("\tLEAQ (AX)(AX*2), R9")
	}
	p("\tMOVQ k+0(FP), CX")
	p("\tMOVQ CX, AX")
	p("\tSHRQ $2, CX")
	p("\tJZ tail")
	p("loop4:")
	for u := 0; u < 4; u++ {
		step(fam, h, nv, u, masked)
	}
	if fam == 'R' {
		p("\tADDQ $4, SI")
	} else {
		p("\tLEAQ (SI)(R8*4), SI")
	}
	p("\tLEAQ (BX)(DX*4), BX")
	p("\tDECQ CX")
	p("\tJNZ loop4")
	p("tail:")
	p("\tANDQ $3, AX")
	p("\tJZ store")
	p("loop1:")
	step(fam, h, nv, 0, masked)
	if fam == 'R' {
		p("\tINCQ SI")
	} else {
		p("\tADDQ R8, SI")
	}
	p("\tADDQ DX, BX")
	p("\tDECQ AX")
	p("\tJNZ loop1")
	p("store:")
	p("\tVBROADCASTSS alpha+56(FP), Y12")
	p("\tMOVQ c+40(FP), AX")
	p("\tMOVQ ldc+48(FP), CX")
	p("\tSHLQ $2, CX")
	p("\tMOVQ loadc+72(FP), DX")
	p("\tTESTQ DX, DX")
	p("\tJZ nobeta")
	p("\tVBROADCASTSS beta+60(FP), Y13")
	store(h, nv, masked, true)
	p("\tVZEROUPPER")
	p("\tRET")
	p("nobeta:")
	store(h, nv, masked, false)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// transpose8 emits func avx2Transpose8(dst *float32, ldd int, rows
// *[8]*float32, k8 int): for each block of 8 columns p, it loads 8 rows,
// transposes them in registers (unpack ps, shuffle ps, 128-bit lane
// permutes: 24 shuffles per 64 values) and stores the 8 columns at
// dst + p*ldd.
func transpose8() {
	p("// func avx2Transpose8(dst *float32, ldd int, rows *[8]*float32, k8 int)")
	p("TEXT ·avx2Transpose8(SB), NOSPLIT, $0-32")
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ ldd+8(FP), DX")
	p("\tSHLQ $2, DX")
	p("\tLEAQ (DX)(DX*2), R8")
	p("\tMOVQ rows+16(FP), AX")
	p("\tMOVQ k8+24(FP), CX")
	p("\tXORQ SI, SI")
	p("\tTESTQ CX, CX")
	p("\tJZ done")
	p("tloop:")
	for r := 0; r < 8; r++ {
		p("\tMOVQ %d(AX), R11", 8*r)
		p("\tVMOVUPS (R11)(SI*1), Y%d", r)
	}
	// Stage 1: t[2q], t[2q+1] = unpacklo/hi(r[2q], r[2q+1]) in Y8..Y15:
	// in each 128-bit lane, pairs (row 2q, row 2q+1) of two columns.
	for q := 0; q < 4; q++ {
		p("\tVUNPCKLPS Y%d, Y%d, Y%d", 2*q+1, 2*q, 8+2*q)
		p("\tVUNPCKHPS Y%d, Y%d, Y%d", 2*q+1, 2*q, 8+2*q+1)
	}
	// Stage 2: s[4g+e] in Y0..Y7 (g = row group of 4, e < 4): lane l
	// holds rows 4g..4g+3 of column 4l+e.
	for g := 0; g < 2; g++ {
		t := 8 + 4*g
		p("\tVSHUFPS $0x44, Y%d, Y%d, Y%d", t+2, t, 4*g+0)
		p("\tVSHUFPS $0xEE, Y%d, Y%d, Y%d", t+2, t, 4*g+1)
		p("\tVSHUFPS $0x44, Y%d, Y%d, Y%d", t+3, t+1, 4*g+2)
		p("\tVSHUFPS $0xEE, Y%d, Y%d, Y%d", t+3, t+1, 4*g+3)
	}
	// Stage 3: column e (lanes 0 of s[e], s[4+e]) and column 4+e (lanes
	// 1) into Y8+e and Y12+e.
	for e := 0; e < 4; e++ {
		p("\tVPERM2F128 $0x20, Y%d, Y%d, Y%d", 4+e, e, 8+e)
		p("\tVPERM2F128 $0x31, Y%d, Y%d, Y%d", 4+e, e, 12+e)
	}
	// Column q is in Y(8+q); store it at dst + q*ldd.
	for q := 0; q < 8; q++ {
		if q == 4 {
			p("\tLEAQ (DI)(DX*4), DI")
		}
		addr := [...]string{"(DI)", "(DI)(DX*1)", "(DI)(DX*2)", "(DI)(R8*1)"}[q%4]
		p("\tVMOVUPS Y%d, %s", 8+q, addr)
	}
	p("\tLEAQ (DI)(DX*4), DI")
	p("\tADDQ $32, SI")
	p("\tDECQ CX")
	p("\tJNZ tloop")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

func main() {
	p("// Code generated by gen_kernel_avx2.go; DO NOT EDIT.")
	p("")
	p("//go:build amd64 && !noasm")
	p("")
	p("#include \"textflag.h\"")
	p("")
	for _, fam := range []byte{'R', 'P'} {
		for h := 1; h <= mr; h++ {
			for nv := 1; nv <= maxNV; nv++ {
				kernel(fam, h, nv, false)
				kernel(fam, h, nv, true)
			}
		}
	}
	transpose8()
	if err := os.WriteFile("kernel_avx2_amd64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}

	out.Reset()
	p("// Code generated by gen_kernel_avx2.go; DO NOT EDIT.")
	p("")
	p("//go:build amd64 && !noasm")
	p("")
	p("package gemm")
	p("")
	for _, fam := range []byte{'R', 'P'} {
		for h := 1; h <= mr; h++ {
			for nv := 1; nv <= maxNV; nv++ {
				for _, m := range []bool{false, true} {
					p("//go:noescape")
					p("func %s(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32, mask *int32, loadc int)", name(fam, h, nv, m))
					p("")
				}
			}
		}
	}
	p("// avx2Transpose8 stores the 8×8k block rows[r][p] (r < 8, p < 8*k8) of")
	p("// 8 rows at dst[p*ldd + r]: it packs 8 columns of op(B) = B^T.")
	p("//")
	p("//go:noescape")
	p("func avx2Transpose8(dst *float32, ldd int, rows *[8]*float32, k8 int)")
	p("")
	p("// avx2Kern calls the kernel for an h×nv tile. rows selects family R,")
	p("// masked the kernels that load and store the last vector under mask.")
	p("func avx2Kern(rows, masked bool, h, nv, k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32, mask *int32, loadc int) {")
	for _, fam := range []byte{'R', 'P'} {
		if fam == 'R' {
			p("\tif rows {")
		} else {
			p("\t} else {")
		}
		p("\t\tswitch h*8 + nv*2 + b2i(masked) {")
		for h := 1; h <= mr; h++ {
			for nv := 1; nv <= maxNV; nv++ {
				for mi, m := range []bool{false, true} {
					p("\t\tcase %d:", h*8+nv*2+mi)
					p("\t\t\t%s(k, a, lda, b, ldb, c, ldc, alpha, beta, mask, loadc)", name(fam, h, nv, m))
					p("\t\t\treturn")
				}
			}
		}
		p("\t\t}")
	}
	p("\t}")
	p("\tpanic(\"gemm: bad kernel shape\")")
	p("}")
	p("")
	p("func b2i(b bool) int {")
	p("\tif b {")
	p("\t\treturn 1")
	p("\t}")
	p("\treturn 0")
	p("}")
	src, err := format.Source(out.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("zkernel_avx2_amd64.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
