package gemm

import (
	"sync"
	"unsafe"
)

// A kernelSet is one implementation of the micro-kernel with its register
// tile and cache blocks: kern computes tiles of up to mr×nr, nr being a
// multiple of the vector width nv (float32 lanes), over k blocks of at
// most kc; m is split into blocks of at most mc rows (a multiple of mr:
// only matters when A^T is packed) and n into blocks of at most nc
// columns (a multiple of nr), see the package doc. Packed op(B) panels
// are nr columns wide, padded to a multiple of nv.
type kernelSet struct {
	name       string // as Kernel reports it
	mr, nr     int
	nv         int
	kc, mc, nc int
	kern       microKernel
	// packBN reports whether op(B) = B, its rows ldb floats apart, is
	// packed (packBN) for a product with m rows, rather than read in
	// place; see packB.
	packBN func(m, ldb int) bool
	// packAT reports whether op(A) = A^T, its rows lda floats apart, is
	// packed (packAT) rather than read in place; see packA.
	packAT func(lda int) bool
	// transposes: packBT may call transposeBlock with this nv.
	transposes bool
}

// genericKernels is the pure-Go kernel set, always compiled.
var genericKernels = &kernelSet{
	name: "Generic", mr: genericMR, nr: genericNR, nv: 16, kc: 256, mc: 960, nc: 480,
	kern: kernelGeneric, packBN: func(int, int) bool { return true },
	packAT: func(lda int) bool { return lda >= 512 },
}

// kernelSets lists the kernel sets this CPU can run, fastest first; the
// last one is genericKernels. It is set once at initialisation.
var kernelSets = append(asmKernels(), genericKernels)

// active is the kernel set Sgemm uses, the fastest one; only tests change
// it (to run every set in kernelSets), and not while Sgemm runs.
var active = kernelSets[0]

// Kernel names the micro-kernels Sgemm uses on this machine, for
// benchmark and version output: on amd64 "AVX512" or "AVX2+FMA", else the
// name of the architecture's assembly set, or "Generic" (the pure-Go
// kernel: no assembly for this CPU or architecture, QAT_CPU switched it
// off, or the noasm tag).
func Kernel() string { return active.name }

// microKernel computes the h×w tile (h <= mr, w <= nr)
//
//	C[i*ldc+j] = alpha * sum_{p<k} A(i,p)*b[p*ldb+j] + beta*C[i*ldc+j]
//
// with A(i,p) = a[i*rsa+p*csa], where rsa == 1 (A^T in place or packed:
// the P kernels) or csa == 1 (A in place: the R kernels). beta == 0 does
// not read C. Columns past w of b and C are neither read nor written.
type microKernel func(h, w, k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32)

// The tile of the pure-Go micro-kernel.
const (
	genericMR = 8
	genericNR = 48
)

// kernelGeneric is the pure-Go micro-kernel. It accumulates 2×4 blocks
// of the tile in scalar variables (registers), the rest one row at a time.
func kernelGeneric(h, w, k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32) {
	const nr = genericNR
	var acc [genericMR * nr]float32
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
	storeTile(c, ldc, acc[:], nr, h, w, alpha, beta)
}

// storeTile stores the h×w tile of sums acc (row i at acc[i*stride:]) as
// C[i*ldc+j] = alpha*acc + beta*C; beta == 0 does not read C.
func storeTile(c []float32, ldc int, acc []float32, stride, h, w int, alpha, beta float32) {
	for i := 0; i < h; i++ {
		crow := c[i*ldc : i*ldc+w]
		row := acc[i*stride : i*stride+w]
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
	if cap(*buf) < n+16 {
		*buf = make([]float32, n+16)
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
// the kernel set's packAT says those strided lines collide in L1 (lda >=
// 512 floats for all sets); it is then copied into panels of mr rows
// (packAT), for m > mr.
//
// op(B) = B^T is always packed, transposed (packBT). op(B) = B is packed
// (packBN) where the kernel set's packBN says so, else read in place,
// rows of nr floats at stride ldb; see the kernel sets for why.
func packA(transA bool, m, lda int, ks *kernelSet) bool {
	return transA && m > ks.mr && ks.packAT(lda)
}
func packB(transB bool, m, ldb int, ks *kernelSet) bool {
	return transB || ks.packBN(m, ldb)
}

// sgemmBlocked computes C = alpha*op(A)*op(B) + beta*C with m, n, k > 0
// and alpha != 0, with the kernel set ks.
func sgemmBlocked(c []float32, ldc int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, ks *kernelSet) {
	mr, nr, nv, kern := ks.mr, ks.nr, ks.nv, ks.kern
	pa, pb := packA(transA, m, lda, ks), packB(transB, m, ldb, ks)
	kb0 := blocks(k, ks.kc, 1)
	mb0 := blocks(m, ks.mc, mr)
	nb0 := blocks(n, ks.nc, nr)
	ws, abuf, bbuf := packBuffers(pa, pb, mb0, kb0, nb0, nv)
	if ws != nil {
		defer putWorkspace(ws)
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
				packAT(abuf, a, lda, pc, kb, ic, mb, mr)
			}
			for jc := 0; jc < n; jc += nb0 {
				nb := min(nb0, n-jc)
				if pb {
					packOpB(bbuf, b, ldb, transB, pc, kb, jc, nb, ks)
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

// packBuffers returns, when pa or pb, a workspace for the caller to put
// back, and in it the aligned buffers of packed op(A) blocks of mb0×kb0
// (when pa) and of packed op(B) blocks of kb0×nb0 with panels padded to
// multiples of nv (when pb); else nil buffers and no workspace.
func packBuffers(pa, pb bool, mb0, kb0, nb0, nv int) (ws *workspace, abuf, bbuf []float32) {
	if !pa && !pb {
		return nil, nil, nil
	}
	ws = getWorkspace()
	if pa {
		abuf = aligned(&ws.a, mb0*kb0)
	}
	if pb {
		bbuf = aligned(&ws.b, kb0*((nb0+nv-1)/nv*nv))
	}
	return ws, abuf, bbuf
}

// packOpB packs op(B), rows pc..pc+kb, columns jc..jc+nb, into dst in
// the layout of packBN: B^T through packBT, B through packBN.
func packOpB(dst, b []float32, ldb int, transB bool, pc, kb, jc, nb int, ks *kernelSet) {
	if transB {
		packBT(dst, b, ldb, pc, kb, jc, nb, ks)
		return
	}
	packBN(dst, b, ldb, pc, kb, jc, nb, ks.nr, ks.nv)
}

// packAT packs rows ic..ic+mb of op(A) = A^T, columns pc..pc+kb, into
// panels of mr rows (the last one h = mb%mr rows): panel ir holds
// A(ir+i, p) at dst[ir*kb + p*h + i].
func packAT(dst, a []float32, lda, pc, kb, ic, mb, mr int) {
	for ir := 0; ir < mb; ir += mr {
		h := min(mr, mb-ir)
		d := dst[ir*kb : ir*kb+h*kb]
		for p := 0; p < kb; p++ {
			s := a[(pc+p)*lda+ic+ir:]
			s = s[:h]
			t := d[p*h : p*h+h]
			for i, v := range s {
				t[i] = v
			}
		}
	}
}

// packBN packs op(B) = B, rows pc..pc+kb, columns jc..jc+nb, into panels
// of nr columns: panel jr (w columns, padded to wp, a multiple of nv)
// holds B(p, jc+jr+j) at dst[jr*kb + p*wp + j]. The padding is not
// written (kernels never read it). B is read a row at a time; full
// panels of 16 columns (the AVX2 tile) are copied as arrays, without a
// call to memmove.
func packBN(dst, b []float32, ldb, pc, kb, jc, nb, nr, nv int) {
	for p := 0; p < kb; p++ {
		src := b[(pc+p)*ldb+jc : (pc+p)*ldb+jc+nb]
		jr := 0
		if nr == 16 {
			for ; jr+16 <= nb; jr += 16 {
				*(*[16]float32)(dst[jr*kb+p*16:]) = [16]float32(src[jr:])
			}
		}
		for ; jr < nb; jr += nr {
			w := min(nr, nb-jr)
			wp := (w + nv - 1) / nv * nv
			copy(dst[jr*kb+p*wp:jr*kb+p*wp+w], src[jr:])
		}
	}
}

// packBT packs op(B) = B^T (B is n×k) into the layout of packBN. If the
// kernel set has vector transposes, whole blocks of nv×nv go through
// transposeBlock.
func packBT(dst, b []float32, ldb, pc, kb, jc, nb int, ks *kernelSet) {
	nr, nv := ks.nr, ks.nv
	kv := 0
	if ks.transposes {
		kv = kb / nv
	}
	for jr := 0; jr < nb; jr += nr {
		w := min(nr, nb-jr)
		wp := (w + nv - 1) / nv * nv
		d := dst[jr*kb : jr*kb+kb*wp]
		for g := 0; g < w; g += nv {
			gn := min(nv, w-g)
			if kv > 0 {
				// Rows past the panel repeat its last row: they fill
				// padding columns, which kernels never read.
				var rows [16]*float32
				for r := range nv {
					rows[r] = &b[(jc+jr+g+min(r, gn-1))*ldb+pc]
				}
				transposeBlock(nv, &d[g], wp, &rows, kv)
			}
			for j := g; j < g+gn; j++ {
				src := b[(jc+jr+j)*ldb+pc : (jc+jr+j)*ldb+pc+kb]
				for p := nv * kv; p < kb; p++ {
					d[p*wp+j] = src[p]
				}
			}
		}
	}
}
