//go:build ignore

// gen_kernel writes kernel_amd64.s and zkernel_amd64.go, the AVX-512
// micro-kernels of Sgemm. Run it with "go generate" in this directory.
//
// Each kernel computes one h×w tile of C (h <= mr = 8 rows, w <= nr = 48
// columns, held as nv = ceil(w/16) zmm vectors per row) as
//
//	C[i][j] = alpha * sum_p A(i,p)*B(p,j) + beta*C[i][j]
//
// with the accumulators in registers (Z0..Z23) for the whole k loop.
// B(p, j) is at b[p*ldb + j] (a packed panel or B itself); A comes in two
// layouts, one kernel family each:
//
//	R ("rows"):  A(i,p) = a[i*lda + p]   (op(A) = A, read in place)
//	P ("panel"): A(i,p) = a[p*lda + i]   (op(A) = A^T in place, or packed)
//
// The last vector of every row is loaded and stored under the mask K1 (the
// valid columns of the tile), so a kernel never reads or writes past
// column w; reading C is done under K2/K3, which are all-zero when beta == 0
// so that C is then never read (NaN in C cannot leak into the result).
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
)

const (
	mr    = 8
	maxNV = 3
)

var out bytes.Buffer

func p(format string, args ...any) {
	fmt.Fprintf(&out, format, args...)
	out.WriteByte('\n')
}

func name(fam byte, h, nv int) string { return fmt.Sprintf("kern%c%dx%d", fam, h, nv) }

// acc returns the accumulator register for row i, vector v.
func acc(nv, i, v int) string { return fmt.Sprintf("Z%d", i*nv+v) }

var rowRegs = []string{"R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"}

// bAddr is the address of vector v of B row u (u < 4) of an unrolled step,
// B's base in BX, its stride in bytes in DX and 3*stride in DI.
func bAddr(u, v int) string {
	idx := [...]string{"(BX)", "(BX)(DX*1)", "(BX)(DX*2)", "(BX)(DI*1)"}[u]
	if v == 0 {
		return idx
	}
	return fmt.Sprintf("%d%s", 64*v, idx)
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
func step(fam byte, h, nv, u int) {
	for v := 0; v < nv; v++ {
		if v == nv-1 {
			p("\tVMOVUPS.Z %s, K1, Z%d", bAddr(u, v), 24+v)
		} else {
			p("\tVMOVUPS %s, Z%d", bAddr(u, v), 24+v)
		}
	}
	for i := 0; i < h; i++ {
		if nv == 1 {
			p("\tVFMADD231PS.BCST %s, Z24, %s", aAddr(fam, i, u), acc(nv, i, 0))
			continue
		}
		bc := 27 + i%2
		p("\tVBROADCASTSS %s, Z%d", aAddr(fam, i, u), bc)
		for v := 0; v < nv; v++ {
			p("\tVFMADD231PS Z%d, Z%d, %s", 24+v, bc, acc(nv, i, v))
		}
	}
}

func kernel(fam byte, h, nv int) {
	n := name(fam, h, nv)
	p("// func %s(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32, mask, loadc int)", n)
	p("TEXT ·%s(SB), NOSPLIT, $0-80", n)
	// Masks: K1 valid columns of the last vector, K2 = K1 or 0 (load C),
	// K3 = 0xffff or 0 (load C, full vectors).
	p("\tMOVQ mask+64(FP), AX")
	p("\tKMOVW AX, K1")
	p("\tMOVQ loadc+72(FP), BX")
	p("\tNEGQ BX")
	p("\tANDQ BX, AX")
	p("\tKMOVW AX, K2")
	p("\tKMOVW BX, K3")
	for i := 0; i < h*nv; i++ {
		p("\tVPXORD Z%d, Z%d, Z%d", i, i, i)
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
		step(fam, h, nv, u)
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
	step(fam, h, nv, 0)
	if fam == 'R' {
		p("\tINCQ SI")
	} else {
		p("\tADDQ R8, SI")
	}
	p("\tADDQ DX, BX")
	p("\tDECQ AX")
	p("\tJNZ loop1")
	p("store:")
	p("\tVBROADCASTSS alpha+56(FP), Z29")
	p("\tVBROADCASTSS beta+60(FP), Z30")
	p("\tMOVQ c+40(FP), AX")
	p("\tMOVQ ldc+48(FP), CX")
	p("\tSHLQ $2, CX")
	for i := 0; i < h; i++ {
		for v := 0; v < nv; v++ {
			off := ""
			if v > 0 {
				off = fmt.Sprint(64 * v)
			}
			z := acc(nv, i, v)
			kl := "K3"
			if v == nv-1 {
				kl = "K2"
			}
			p("\tVMOVUPS.Z %s(AX), %s, Z31", off, kl)
			p("\tVMULPS Z30, Z31, Z31")
			p("\tVFMADD231PS Z29, %s, Z31", z)
			if v == nv-1 {
				p("\tVMOVUPS Z31, K1, %s(AX)", off)
			} else {
				p("\tVMOVUPS Z31, %s(AX)", off)
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

// transpose16 emits func transpose16(dst *float32, ldd int, rows
// *[16]*float32, k16 int): for each block of 16 columns p, it loads 16
// rows, transposes them in registers (unpack ps, unpack pd, two rounds of
// 128-bit lane shuffles: 64 shuffles per 256 values) and stores the 16
// columns at dst + p*ldd.
func transpose16() {
	p("// func transpose16(dst *float32, ldd int, rows *[16]*float32, k16 int)")
	p("TEXT ·transpose16(SB), NOSPLIT, $0-32")
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ ldd+8(FP), DX")
	p("\tSHLQ $2, DX")
	p("\tMOVQ rows+16(FP), AX")
	p("\tMOVQ k16+24(FP), CX")
	p("\tXORQ SI, SI")
	p("\tTESTQ CX, CX")
	p("\tJZ done")
	p("tloop:")
	for r := 0; r < 16; r++ {
		p("\tMOVQ %d(AX), R11", 8*r)
		p("\tVMOVUPS (R11)(SI*1), Z%d", r)
	}
	// Stage 1: t[2q], t[2q+1] = unpacklo/hi(r[2q], r[2q+1]) in Z16..Z31.
	for q := 0; q < 8; q++ {
		p("\tVUNPCKLPS Z%d, Z%d, Z%d", 2*q+1, 2*q, 16+2*q)
		p("\tVUNPCKHPS Z%d, Z%d, Z%d", 2*q+1, 2*q, 16+2*q+1)
	}
	// Stage 2: for each group g of 4 rows, u[4g+e] (e = column mod 4) in
	// Z0..Z15: lane l holds rows 4g..4g+3 of column 4l+e.
	for g := 0; g < 4; g++ {
		t := 16 + 4*g
		p("\tVUNPCKLPD Z%d, Z%d, Z%d", t+2, t, 4*g+0)
		p("\tVUNPCKHPD Z%d, Z%d, Z%d", t+2, t, 4*g+1)
		p("\tVUNPCKLPD Z%d, Z%d, Z%d", t+3, t+1, 4*g+2)
		p("\tVUNPCKHPD Z%d, Z%d, Z%d", t+3, t+1, 4*g+3)
	}
	// Stage 3: 4×4 transpose of 128-bit lanes of u[e], u[4+e], u[8+e],
	// u[12+e]; the result y_l, column 4l+e, replaces u[4l+e].
	for e := 0; e < 4; e++ {
		A, B, C, D := e, 4+e, 8+e, 12+e
		p("\tVSHUFF32X4 $0x44, Z%d, Z%d, Z16", B, A)
		p("\tVSHUFF32X4 $0xEE, Z%d, Z%d, Z17", B, A)
		p("\tVSHUFF32X4 $0x44, Z%d, Z%d, Z18", D, C)
		p("\tVSHUFF32X4 $0xEE, Z%d, Z%d, Z19", D, C)
		p("\tVSHUFF32X4 $0x88, Z18, Z16, Z%d", A)
		p("\tVSHUFF32X4 $0xDD, Z18, Z16, Z%d", B)
		p("\tVSHUFF32X4 $0x88, Z19, Z17, Z%d", C)
		p("\tVSHUFF32X4 $0xDD, Z19, Z17, Z%d", D)
	}
	// Column q is in Zq; store it at dst + q*ldd.
	p("\tLEAQ (DX)(DX*2), R8")
	for q := 0; q < 16; q++ {
		if q%4 == 0 && q > 0 {
			p("\tLEAQ (DI)(DX*4), DI")
		}
		addr := [...]string{"(DI)", "(DI)(DX*1)", "(DI)(DX*2)", "(DI)(R8*1)"}[q%4]
		p("\tVMOVUPS Z%d, %s", q, addr)
	}
	p("\tLEAQ (DI)(DX*4), DI")
	p("\tADDQ $64, SI")
	p("\tDECQ CX")
	p("\tJNZ tloop")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

func main() {
	p("// Code generated by gen_kernel.go; DO NOT EDIT.")
	p("")
	p("//go:build amd64 && !noasm")
	p("")
	p("#include \"textflag.h\"")
	p("")
	for _, fam := range []byte{'R', 'P'} {
		for h := 1; h <= mr; h++ {
			for nv := 1; nv <= maxNV; nv++ {
				kernel(fam, h, nv)
			}
		}
	}
	transpose16()
	if err := os.WriteFile("kernel_amd64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}

	out.Reset()
	p("// Code generated by gen_kernel.go; DO NOT EDIT.")
	p("")
	p("//go:build amd64 && !noasm")
	p("")
	p("package gemm")
	p("")
	for _, fam := range []byte{'R', 'P'} {
		for h := 1; h <= mr; h++ {
			for nv := 1; nv <= maxNV; nv++ {
				p("//go:noescape")
				p("func %s(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32, mask, loadc int)", name(fam, h, nv))
				p("")
			}
		}
	}
	p("// transpose16 stores the 16×16k block rows[r][p] (r < 16, p < 16*k16) of")
	p("// 16 rows at dst[p*ldd + r]: it packs 16 columns of op(B) = B^T.")
	p("//")
	p("//go:noescape")
	p("func transpose16(dst *float32, ldd int, rows *[16]*float32, k16 int)")
	p("")
	p("// kernAsm calls the kernel for an h×nv tile. rows selects family R.")
	p("func kernAsm(rows bool, h, nv, k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32, mask, loadc int) {")
	p("\tif rows {")
	p("\t\tswitch h*4 + nv {")
	for h := 1; h <= mr; h++ {
		for nv := 1; nv <= maxNV; nv++ {
			p("\t\tcase %d:", h*4+nv)
			p("\t\t\t%s(k, a, lda, b, ldb, c, ldc, alpha, beta, mask, loadc)", name('R', h, nv))
			p("\t\t\treturn")
		}
	}
	p("\t\t}")
	p("\t} else {")
	p("\t\tswitch h*4 + nv {")
	for h := 1; h <= mr; h++ {
		for nv := 1; nv <= maxNV; nv++ {
			p("\t\tcase %d:", h*4+nv)
			p("\t\t\t%s(k, a, lda, b, ldb, c, ldc, alpha, beta, mask, loadc)", name('P', h, nv))
			p("\t\t\treturn")
		}
	}
	p("\t\t}")
	p("\t}")
	p("\tpanic(\"gemm: bad kernel shape\")")
	p("}")
	src, err := format.Source(out.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("zkernel_amd64.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
}
