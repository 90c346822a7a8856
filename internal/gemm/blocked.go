package gemm

import (
	"sync"
	"unsafe"
)

// Register tile and cache blocking. A micro-kernel computes an mr×nr tile
// of C (nr = 3 vectors of 16 float32) over kc steps of the k dimension;
// see the package doc for how the blocks map onto the caches.
const (
	mr = 8   // rows of a micro-tile (broadcast operand, op(A))
	nr = 48  // columns of a micro-tile (vector operand, op(B))
	nv = 16  // float32 lanes of a vector
	kc = 256 // k block: the depth of every kernel call
	mc = 960 // m block: rows of op(A) = A^T packed at a time
	nc = 480 // n block: columns of op(B) one A micro-panel sweeps (L2)
)

// microKernel computes the h×w tile (h <= mr, w <= nr)
//
//	C[i*ldc+j] = alpha * sum_{p<k} A(i,p)*b[p*ldb+j] + beta*C[i*ldc+j]
//
// with A(i,p) = a[i*rsa+p*csa], where rsa == 1 (A^T in place or packed:
// the P kernels) or csa == 1 (A in place: the R kernels). beta == 0 does
// not read C. Columns past w of b and C are neither read nor written.
type microKernel func(h, w, k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32)

// kernelGeneric is the pure-Go micro-kernel. It accumulates 2×4 blocks
// of the tile in scalar variables (registers), the rest one row at a time.
func kernelGeneric(h, w, k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32) {
	var acc [mr * nr]float32
	i := 0
	for ; i+2 <= h; i += 2 {
		a0, a1 := a[i*rsa:], a[(i+1)*rsa:]
		j := 0
		for ; j+4 <= w; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 float32
			for p := 0; p < k; p++ {
				bp := b[p*ldb+j : p*ldb+j+4]
				x, y := a0[p*csa], a1[p*csa]
				c00 += x * bp[0]
				c01 += x * bp[1]
				c02 += x * bp[2]
				c03 += x * bp[3]
				c10 += y * bp[0]
				c11 += y * bp[1]
				c12 += y * bp[2]
				c13 += y * bp[3]
			}
			r0, r1 := acc[i*nr+j:i*nr+j+4], acc[(i+1)*nr+j:(i+1)*nr+j+4]
			r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
			r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
		}
		for ; j < w; j++ {
			var c0, c1 float32
			for p := 0; p < k; p++ {
				bv := b[p*ldb+j]
				c0 += a0[p*csa] * bv
				c1 += a1[p*csa] * bv
			}
			acc[i*nr+j], acc[(i+1)*nr+j] = c0, c1
		}
	}
	for ; i < h; i++ {
		row := acc[i*nr : i*nr+w]
		for p := 0; p < k; p++ {
			av := a[i*rsa+p*csa]
			for j, bv := range b[p*ldb : p*ldb+w] {
				row[j] += av * bv
			}
		}
	}
	for i := 0; i < h; i++ {
		crow := c[i*ldc : i*ldc+w]
		row := acc[i*nr : i*nr+w]
		if beta == 0 {
			for j := range crow {
				crow[j] = alpha * row[j]
			}
		} else {
			for j := range crow {
				crow[j] = alpha*row[j] + beta*crow[j]
			}
		}
	}
}

// workspace holds the packing buffers of one Sgemm call. A call owns its
// workspace while it runs; between calls workspaces wait on a free list
// (a stack, not a sync.Pool, which the garbage collector empties), so
// steady-state calls do not allocate.
type workspace struct {
	a, b []float32
}

// maxFree bounds the workspaces kept: as many as calls ran at once, up to
// this many.
const maxFree = 8

var free struct {
	sync.Mutex
	ws []*workspace
}

func getWorkspace() *workspace {
	free.Lock()
	defer free.Unlock()
	if n := len(free.ws); n > 0 {
		ws := free.ws[n-1]
		free.ws = free.ws[:n-1]
		return ws
	}
	return new(workspace)
}

func putWorkspace(ws *workspace) {
	free.Lock()
	defer free.Unlock()
	if len(free.ws) < maxFree {
		free.ws = append(free.ws, ws)
	}
}

// aligned returns a 64-byte aligned slice of n float32 from *buf, growing
// it if needed.
func aligned(buf *[]float32, n int) []float32 {
	if cap(*buf) < n+nv {
		*buf = make([]float32, n+nv)
	}
	s := (*buf)[:cap(*buf)]
	off := int((-uintptr(unsafe.Pointer(&s[0])) & 63) / 4)
	return s[off : off+n]
}

// blocks splits n into the fewest blocks of at most max and returns the
// (equal up to rounding to a multiple of step) block size.
func blocks(n, max, step int) int {
	if n <= max {
		return n
	}
	nb := (n + max - 1) / max
	s := (n + nb - 1) / nb
	return (s + step - 1) / step * step
}

// Whether op(A) and op(B) are packed or read in place (measured on the
// shapes of BenchmarkSgemm).
//
// op(A) = A is always read in place: the R kernels walk mr rows of A.
// op(A) = A^T is read in place (mr contiguous values at stride lda) unless
// lda >= 512 floats, where those strided lines start to collide in L1;
// it is then copied into panels of mr rows (packAT).
//
// op(B) = B^T is always packed, transposed (packBT). With the assembly
// kernels op(B) = B is read in place, rows of nr floats at stride ldb:
// the hardware prefetchers keep up and copying it was slower on every
// shape tried, 1024³ included. The pure-Go kernel, which walks B four
// columns at a time, packs it (packBN).
func packA(transA bool, m, lda int) bool { return transA && lda >= 512 && m > mr }
func packB(transB, asm bool) bool        { return transB || !asm }

// sgemmBlocked computes C = alpha*op(A)*op(B) + beta*C with m, n, k > 0
// and alpha != 0, with the assembly kernels (and packing) if asm, else
// in pure Go.
func sgemmBlocked(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, asm bool) {
	kern := kernelGeneric
	if asm {
		kern = kernelAsm
	}
	pa, pb := packA(transA, m, lda), packB(transB, asm)
	var ws *workspace
	if pa || pb {
		ws = getWorkspace()
		defer putWorkspace(ws)
	}
	kb0 := blocks(k, kc, 1)
	mb0 := blocks(m, mc, mr)
	nb0 := blocks(n, nc, nr)
	var abuf, bbuf []float32
	if pa {
		abuf = aligned(&ws.a, mb0*kb0)
	}
	if pb {
		bbuf = aligned(&ws.b, kb0*((nb0+nv-1)/nv*nv))
	}
	for ic := 0; ic < m; ic += mb0 {
		mb := min(mb0, m-ic)
		for pc := 0; pc < k; pc += kb0 {
			kb := min(kb0, k-pc)
			be := beta
			if pc > 0 {
				be = 1
			}
			if pa {
				packAT(abuf, a, lda, pc, kb, ic, mb)
			}
			for jc := 0; jc < n; jc += nb0 {
				nb := min(nb0, n-jc)
				if pb {
					if transB {
						packBT(bbuf, b, ldb, pc, kb, jc, nb, asm)
					} else {
						packBN(bbuf, b, ldb, pc, kb, jc, nb)
					}
				}
				for ir := 0; ir < mb; ir += mr {
					h := min(mr, mb-ir)
					var ap []float32
					var rsa, csa int
					switch {
					case pa:
						ap, rsa, csa = abuf[ir*kb:], 1, h
					case transA:
						ap, rsa, csa = a[pc*lda+ic+ir:], 1, lda
					default:
						ap, rsa, csa = a[(ic+ir)*lda+pc:], lda, 1
					}
					cp := c[(ic+ir)*ldc+jc:]
					for jr := 0; jr < nb; jr += nr {
						w := min(nr, nb-jr)
						if pb {
							wp := (w + nv - 1) / nv * nv
							kern(h, w, kb, ap, rsa, csa, bbuf[jr*kb:], wp, cp[jr:], ldc, alpha, be)
						} else {
							kern(h, w, kb, ap, rsa, csa, b[pc*ldb+jc+jr:], ldb, cp[jr:], ldc, alpha, be)
						}
					}
				}
			}
		}
	}
}

// packAT packs rows ic..ic+mb of op(A) = A^T, columns pc..pc+kb, into
// panels of mr rows (the last one h = mb%mr rows): panel ir holds
// A(ir+i, p) at dst[ir*kb + p*h + i].
func packAT(dst, a []float32, lda, pc, kb, ic, mb int) {
	for ir := 0; ir < mb; ir += mr {
		h := min(mr, mb-ir)
		d := dst[ir*kb : ir*kb+h*kb]
		if h == mr {
			for p := 0; p < kb; p++ {
				s := a[(pc+p)*lda+ic+ir:]
				s = s[:mr]
				t := d[p*mr : p*mr+mr]
				t[0], t[1], t[2], t[3] = s[0], s[1], s[2], s[3]
				t[4], t[5], t[6], t[7] = s[4], s[5], s[6], s[7]
			}
			continue
		}
		for p := 0; p < kb; p++ {
			copy(d[p*h:p*h+h], a[(pc+p)*lda+ic+ir:])
		}
	}
}

// packBN packs op(B) = B, rows pc..pc+kb, columns jc..jc+nb, into panels
// of nr columns: panel jr (w columns, padded to wp, a multiple of nv)
// holds B(p, jc+jr+j) at dst[jr*kb + p*wp + j]. The padding is not
// written (kernels never read it).
func packBN(dst, b []float32, ldb, pc, kb, jc, nb int) {
	for jr := 0; jr < nb; jr += nr {
		w := min(nr, nb-jr)
		wp := (w + nv - 1) / nv * nv
		d := dst[jr*kb:]
		for p := 0; p < kb; p++ {
			copy(d[p*wp:p*wp+w], b[(pc+p)*ldb+jc+jr:])
		}
	}
}

// packBT packs op(B) = B^T (B is n×k) into the layout of packBN. With
// asm, whole blocks of 16×16 are transposed by transpose16.
func packBT(dst, b []float32, ldb, pc, kb, jc, nb int, asm bool) {
	k16 := 0
	if asm {
		k16 = kb / 16
	}
	for jr := 0; jr < nb; jr += nr {
		w := min(nr, nb-jr)
		wp := (w + nv - 1) / nv * nv
		d := dst[jr*kb : jr*kb+kb*wp]
		for g := 0; g < w; g += nv {
			gn := min(nv, w-g)
			if k16 > 0 {
				// Rows past the panel repeat its last row: they fill
				// padding columns, which kernels never read.
				var rows [16]*float32
				for r := range rows {
					rows[r] = &b[(jc+jr+g+min(r, gn-1))*ldb+pc]
				}
				transpose16(&d[g], wp, &rows, k16)
			}
			for j := g; j < g+gn; j++ {
				src := b[(jc+jr+j)*ldb+pc : (jc+jr+j)*ldb+pc+kb]
				for p := 16 * k16; p < kb; p++ {
					d[p*wp+j] = src[p]
				}
			}
		}
	}
}
