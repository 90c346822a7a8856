//go:build amd64 && !noasm

package qgemm

import (
	"sync"
	"unsafe"
)

// Cache blocking of the VNNI kernel (see the package doc).
const (
	kcMax = 1024    // k values per k block
	mcMax = 256     // rows of A per row block
	nbMax = 1 << 20 // bytes of B per k block and column block (L2)
)

// Cache blocking of the AVX2 and AVX-VNNI kernels (see the package doc).
const (
	avx2KC = 1024      // k values per k block, a multiple of 16
	avx2MC = 60        // rows per row block, a multiple of avx2MR, ubsMR and avxvnniMR
	avx2NB = 256 << 10 // bytes of B per k block and column block (L2)
	// avx2SmallA is the most bytes of A a row block may hold in the
	// buffer when K fits one k block and avx2MC rows hold less: row
	// blocks are then up to this size (a multiple of avx2MC rows).
	avx2SmallA = 32 << 10
	// avx2LoopPanels is the most panels of a column block for which the
	// kernel loops over the row tiles, panel by panel (measured on Zen 3:
	// 3% faster at N = 32, K = 400; 6% slower at N = K = 256 with 16
	// panels, where each tile's A is better kept in L1 across panels).
	avx2LoopPanels = 2
)

// avx2Buf holds A of one row block and k block as the ymm kernels read
// it: widened to int16 (VPMADDWD) with row r at element r*rs, or as bytes
// (VPMADDUBSW, AVX-VNNI) with row r at byte r*rs, rs = the k block's
// length rounded up to 16, zero-padded (see gemmAVX2). A buffer is taken from avx2Pool
// by one gemmAVX2 call, owned by it until it returns and put back then:
// concurrent calls use different buffers, and steady-state calls
// allocate nothing.
type avx2Buf [avx2MC * avx2KC]uint16

var avx2Pool = sync.Pool{New: func() any { return new(avx2Buf) }}

// convDirect reports whether GemmConv with kernel k on g runs in
// gemmConvAsm without a separate gather: in place (VNNI), or, for the ymm
// kernels, copying window rows of at least 16 codes straight into the
// copy of A they make anyway (shorter ones go through its slow path for
// rows under 16 bytes, a byte at a time: gathering whole rows first is
// faster).
func convDirect(k Kernel, g Conv) bool {
	return k == AVX512VNNI || (k == AVX2 || k == AVXVNNI) && g.SegLen >= 16
}

// gemmAsm computes the columns of panels p0..p1-1 of C (m > 0 rows) with
// the assembly kernel k.
func gemmAsm(k Kernel, c []int32, ldc int, a []uint8, lda, m int, b *Packed, p0, p1 int) {
	if k == AVX2 || k == AVXVNNI {
		gemmAVX2(k, c, ldc, a, lda, m, b, p0, p1)
		return
	}
	gemmVNNI(c, ldc, a, lda, m, b, p0, p1)
}

// gemmVNNI is gemmAsm for the VNNI kernel. Loops, outermost first: row
// blocks of mcMax rows; k blocks of at most kcMax values (later blocks
// add to C); column blocks of at most nbMax bytes of B; row tiles of 8
// rows, whose rows of A for the k block (at most 8 KiB) stay in L1 while
// the column tiles of 3 panels stream the column block of B from L2.
func gemmVNNI(c []int32, ldc int, a []uint8, lda, m int, b *Packed, p0, p1 int) {
	bits, uk, K, ps := b.bits, b.unitK(), b.k, b.panelStride()
	full := K / uk // whole units of A per row
	tailK := K - full*uk
	kcu := blocks(full, kcMax/uk)
	for ic := 0; ic < m; ic += mcMax {
		mb := min(mcMax, m-ic)
		for u0 := 0; ; u0 += kcu {
			nu := min(kcu, full-u0)
			last := u0+nu >= full
			tk, acc := 0, 0
			if last {
				tk = tailK
			}
			if u0 > 0 {
				acc = 1
			}
			// Column blocks: the fewest of at most nbMax bytes of B, of
			// equal size up to rounding.
			pbMax := max(vnniNV, nbMax/((nu+1)*unit))
			nbk := (p1 - p0 + pbMax - 1) / pbMax
			for bk := 0; bk < nbk; bk++ {
				jq, jq1 := p0+(p1-p0)*bk/nbk, p0+(p1-p0)*(bk+1)/nbk
				P := jq1 - jq
				tiles := (P + vnniNV - 1) / vnniNV
				for ir := 0; ir < mb; ir += vnniMR {
					h := min(vnniMR, mb-ir)
					for t := 0; t < tiles; t++ {
						q0, q1 := jq+P*t/tiles, jq+P*(t+1)/tiles
						nv := q1 - q0
						w := min(panelCols*q1, b.n) - panelCols*q0 // columns of the tile
						mask := 1<<(w-panelCols*(nv-1)) - 1
						vnniCall(bits, h, nv, &a[(ic+ir)*lda+u0*uk], lda, &b.data[q0*ps+u0*unit], ps, nu, tk,
							&c[(ic+ir)*ldc+q0*panelCols], ldc, mask, acc, 1, 0, 1)
					}
				}
			}
			if last {
				break
			}
		}
	}
}

// ymmKernel is the ymm kernel gemmAVX2 and gemmConvAVX2 run for a
// kernel and a Packed: AVX-VNNI (vnni), VPMADDUBSW on the packed codes
// (ubs: A copied as bytes) or VPMADDWD on the int16 copy of B (A
// widened); its tile rows mr; and B as it reads it: data, the panel
// stride ps and the bytes ub per unit.
type ymmKernel struct {
	vnni, ubs bool
	mr        int
	data      []byte
	ps, ub    int
}

func ymmFor(k Kernel, b *Packed) ymmKernel {
	y := ymmKernel{vnni: k == AVXVNNI, mr: avx2MR, data: b.data, ps: b.panelStride(), ub: unit}
	y.ubs = y.vnni || b.ubs()
	switch {
	case y.vnni:
		y.mr = avxvnniMR
	case y.ubs:
		y.mr = ubsMR
	}
	if !y.ubs {
		y.data, y.ps, y.ub = b.wide(), 2*y.ps, 2*unit
	}
	return y
}

// call runs tiles tiles of h rows of A from row ir of buf (rs values a
// row) against panel q of B, units u0..u0+nu-1, into C at c.
func (y ymmKernel) call(buf *avx2Buf, ir, rs, h, tiles int, b *Packed, q, u0, nu int, c *int32, ldc, acc int) {
	w := min(panelCols, b.n-panelCols*q) // columns of the panel
	nv := (w + 7) / 8
	bp := &y.data[q*y.ps+u0*y.ub]
	bytesA := unsafe.Slice((*uint8)(unsafe.Pointer(&buf[0])), 2*len(buf))
	switch {
	case y.vnni:
		avxvnniCall(b.bits, h, nv, &bytesA[ir*rs], rs, bp, nu, c, ldc, w-8*(nv-1), acc, tiles)
	case y.ubs:
		ubsCall(b.bits, h, nv, &bytesA[ir*rs], rs, bp, nu, c, ldc, w-8*(nv-1), acc, tiles)
	default:
		avx2Call(h, nv, &buf[ir*rs], 2*rs, bp, nu, c, ldc, w-8*(nv-1), acc, tiles)
	}
}

// gemmAVX2 is gemmAsm for the ymm kernels: for k = AVXVNNI the AVX-VNNI
// kernel (avxvnniCall) on the packed codes of every Packed; for AVX2
// VPMADDUBSW (ubsCall) where b.ubs(), VPMADDWD (avx2Call) on the int16
// copy of B otherwise. Loops, outermost first: row blocks of avx2MC
// rows; k blocks of at most avx2KC values (later blocks add to C), whose
// A is first copied into a pooled avx2Buf (avx2WidenA or ubsCopyA, which
// read no byte of a row past K); column blocks of at most avx2NB bytes of
// B (L2); row tiles of avx2MR, ubsMR or avxvnniMR rows, whose A (at most
// 10 KiB) stays in L1; panels.
func gemmAVX2(k Kernel, c []int32, ldc int, a []uint8, lda, m int, b *Packed, p0, p1 int) {
	buf := avx2Pool.Get().(*avx2Buf)
	defer avx2Pool.Put(buf)
	uk, K := b.unitK(), b.k
	y := ymmFor(k, b)
	ubs, mr := y.ubs, y.mr
	bytesA := unsafe.Slice((*uint8)(unsafe.Pointer(&buf[0])), 2*len(buf))
	units := b.units
	kcu := blocks(units, avx2KC/uk)
	mc := avx2MC
	if units <= kcu {
		// One k block of short rows: row blocks of up to avx2SmallA
		// bytes of A, so that fewer blocks (and kernel calls) share the
		// work.
		rb := (K + 15) &^ 15 // bytes of A per row in the buffer
		if !ubs {
			rb *= 2
		}
		mc = max(mc, avx2SmallA/rb/avx2MC*avx2MC)
	}
	for ic := 0; ic < m; ic += mc {
		mb := min(mc, m-ic)
		for u0 := 0; u0 < units; u0 += kcu {
			nu := min(kcu, units-u0)
			k0 := u0 * uk
			kl := min(K-k0, nu*uk)
			rs := (kl + 15) &^ 15
			if ubs {
				ubsCopyA(&bytesA[0], rs, &a[ic*lda+k0], lda, mb, kl)
			} else {
				avx2WidenA(&buf[0], 2*rs, &a[ic*lda+k0], lda, mb, kl)
			}
			acc := min(u0, 1)
			pbMax := max(1, avx2NB/(nu*y.ub))
			nbk := (p1 - p0 + pbMax - 1) / pbMax
			for bk := 0; bk < nbk; bk++ {
				jq, jq1 := p0+(p1-p0)*bk/nbk, p0+(p1-p0)*(bk+1)/nbk
				// call runs tiles tiles of h rows from row ir on panel q.
				call := func(ir, h, tiles, q int) {
					y.call(buf, ir, rs, h, tiles, b, q, u0, nu, &c[(ic+ir)*ldc+q*panelCols], ldc, acc)
				}
				if jq1-jq <= avx2LoopPanels {
					// Few panels: for each, the kernel loops over the
					// block's whole tiles itself (B's panel stays in L1,
					// A is read once per panel), then the last, shorter
					// tile.
					for q := jq; q < jq1; q++ {
						if full := mb / mr; full > 0 {
							call(0, mr, full, q)
						}
						if ir := mb / mr * mr; ir < mb {
							call(ir, mb-ir, 1, q)
						}
					}
					continue
				}
				for ir := 0; ir < mb; ir += mr {
					h := min(mr, mb-ir)
					for q := jq; q < jq1; q++ {
						call(ir, h, 1, q)
					}
				}
			}
		}
	}
}

// blocks returns the size of the blocks that split n units into the
// fewest blocks of at most max (equal up to rounding; the last may be
// smaller).
func blocks(n, max int) int {
	if n <= max {
		return max
	}
	nb := (n + max - 1) / max
	return (n + nb - 1) / nb
}

// gemmConvAsm is GemmConv for the assembly kernels: the ymm ones by
// gemmConvAVX2, while the VNNI kernel reads the implicit matrix in place.
// Each VNNI tile's rows are up to vnniMR output columns of one output row
// (row stride g.ColStep), its k loop g's segments (window rows) one after
// another. Loops, outermost first: blocks of whole output rows (about
// mcMax rows of A); k blocks of whole segments (or, for segments longer
// than kcMax, of parts of one), later ones adding to C; column blocks of
// at most nbMax bytes of B; column tiles of up to vnniNV panels; output
// rows; row tiles (an output row's whole ones in one kernel call).
func gemmConvAsm(k Kernel, c []int32, ldc int, src []uint8, g Conv, b *Packed) {
	if k != AVX512VNNI {
		gemmConvAVX2(k, c, ldc, src, g, b)
		return
	}
	bits, uk, ps := b.bits, b.unitK(), b.panelStride()
	su := g.SegLen / uk // units per segment
	kcu := kcMax / uk   // most units per k block
	type kblock struct{ s0, ns, u0, nu int }
	var kbs []kblock
	if su <= kcu {
		per := kcu / su
		for s0 := 0; s0 < g.Segs; s0 += per {
			kbs = append(kbs, kblock{s0, min(per, g.Segs-s0), 0, su})
		}
	} else {
		chunk := blocks(su, kcu)
		for s := range g.Segs {
			for u0 := 0; u0 < su; u0 += chunk {
				kbs = append(kbs, kblock{s, 1, u0, min(chunk, su-u0)})
			}
		}
	}
	rb := max(1, mcMax/g.OW) // output rows per row block
	p0, p1 := 0, b.panels()
	for oy0 := 0; oy0 < g.OH; oy0 += rb {
		oy1 := min(g.OH, oy0+rb)
		for i, kb := range kbs {
			acc := min(i, 1)
			units := kb.ns * kb.nu
			skip := g.SegStride - kb.nu*uk
			pbMax := max(vnniNV, nbMax/((units+1)*unit))
			nbk := (p1 - p0 + pbMax - 1) / pbMax
			for bk := range nbk {
				jq, jq1 := p0+(p1-p0)*bk/nbk, p0+(p1-p0)*(bk+1)/nbk
				P := jq1 - jq
				tiles := (P + vnniNV - 1) / vnniNV
				for t := range tiles {
					q0, q1 := jq+P*t/tiles, jq+P*(t+1)/tiles
					nv := q1 - q0
					w := min(panelCols*q1, b.n) - panelCols*q0 // columns of the tile
					mask := 1<<(w-panelCols*(nv-1)) - 1
					bp := &b.data[q0*ps+(kb.s0*su+kb.u0)*unit]
					// The tiles' A and C, from the first row of the row
					// block (checkConv bounds every address formed).
					a0 := unsafe.Pointer(&src[oy0*g.RowStep+kb.s0*g.SegStride+kb.u0*uk])
					c0 := unsafe.Pointer(&c[oy0*g.OW*ldc+q0*panelCols])
					// Per output row: its whole row tiles in one call,
					// then the last, shorter one.
					full, rest := g.OW/vnniMR, g.OW%vnniMR
					for oy := range oy1 - oy0 {
						a := unsafe.Add(a0, oy*g.RowStep)
						cp := unsafe.Add(c0, 4*oy*g.OW*ldc)
						if full > 0 {
							vnniCall(bits, vnniMR, nv, (*uint8)(a), g.ColStep, bp, ps, kb.nu, 0, (*int32)(cp), ldc, mask, acc, kb.ns, skip, full)
						}
						if rest > 0 {
							ox := full * vnniMR
							vnniCall(bits, rest, nv, (*uint8)(unsafe.Add(a, ox*g.ColStep)), g.ColStep, bp, ps, kb.nu, 0,
								(*int32)(unsafe.Add(cp, 4*ox*ldc)), ldc, mask, acc, kb.ns, skip, 1)
						}
					}
				}
			}
		}
	}
}

// gemmConvAVX2 is GemmConv for the ymm kernels: gemmAVX2 with each row
// block's A copied (avx2WidenA or ubsCopyA) from the window rows, one
// output row's run of columns (row stride g.ColStep) and one window row
// (or the part of it in the k block) per copy, in k order. Each copy
// zero-pads its part to a multiple of 16 values, writing up to 15 values
// past it: into the next part of the same row, copied later, or, for
// the last, into the 16 values of slack each row of the buffer gets.
func gemmConvAVX2(k Kernel, c []int32, ldc int, src []uint8, g Conv, b *Packed) {
	buf := avx2Pool.Get().(*avx2Buf)
	defer avx2Pool.Put(buf)
	uk, K := b.unitK(), b.k
	y := ymmFor(k, b)
	ubs, mr := y.ubs, y.mr
	bytesA := unsafe.Slice((*uint8)(unsafe.Pointer(&buf[0])), 2*len(buf))
	units := b.units
	kcu := blocks(units, (avx2KC-16)/uk)
	m := g.rows()
	p0, p1 := 0, b.panels()
	for u0 := 0; u0 < units; u0 += kcu {
		nu := min(kcu, units-u0)
		k0 := u0 * uk
		kl := min(K-k0, nu*uk)
		rs := (kl+15)&^15 + 16 // values per row of the buffer, with slack
		mc := max(mr, len(buf)/rs/mr*mr)
		acc := min(u0, 1)
		for ic := 0; ic < m; ic += mc {
			mb := min(mc, m-ic)
			// Copy rows ic..ic+mb-1 of A's k block, run by run of one
			// output row, part by part of the window rows.
			for r := ic; r < ic+mb; {
				oy, ox := r/g.OW, r%g.OW
				run := min(g.OW-ox, ic+mb-r)
				at := oy*g.RowStep + ox*g.ColStep
				for s := k0 / g.SegLen; s < g.Segs && s*g.SegLen < k0+kl; s++ {
					lo, hi := max(k0, s*g.SegLen), min(k0+kl, (s+1)*g.SegLen)
					from := &src[at+s*g.SegStride+lo-s*g.SegLen]
					if ubs {
						ubsCopyA(&bytesA[(r-ic)*rs+lo-k0], rs, from, g.ColStep, run, hi-lo)
					} else {
						avx2WidenA(&buf[(r-ic)*rs+lo-k0], 2*rs, from, g.ColStep, run, hi-lo)
					}
				}
				r += run
			}
			pbMax := max(1, avx2NB/(nu*y.ub))
			nbk := (p1 - p0 + pbMax - 1) / pbMax
			for bk := range nbk {
				jq, jq1 := p0+(p1-p0)*bk/nbk, p0+(p1-p0)*(bk+1)/nbk
				for ir := 0; ir < mb; ir += mr {
					for q := jq; q < jq1; q++ {
						y.call(buf, ir, rs, min(mr, mb-ir), 1, b, q, u0, nu, &c[(ic+ir)*ldc+q*panelCols], ldc, acc)
					}
				}
			}
		}
	}
}
