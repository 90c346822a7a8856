//go:build amd64 && !noasm

package qgemm

// Cache blocking of the assembly kernels (see the package doc).
const (
	kcMax = 1024    // k values per k block
	mcMax = 256     // rows of A per row block
	nbMax = 1 << 20 // bytes of B per k block and column block (L2)
)

// gemmAsm computes the columns of panels p0..p1-1 of C (m > 0 rows) with
// the assembly kernel k.
//
// Loops, outermost first: row blocks of mcMax rows; k blocks of at most
// kcMax values (later blocks add to C); column blocks of at most nbMax
// bytes of B; row tiles (8 rows for VNNI, 4 for AVX2), whose rows of A
// for the k block (at most 8 KiB) stay in L1 while the column tiles (3
// panels for VNNI, 1 for AVX2) stream the column block of B from L2.
func gemmAsm(k Kernel, c []int32, ldc int, a []uint8, lda, m int, b *Packed, p0, p1 int) {
	vnni := k == AVX512VNNI
	mr, np := avx2MR, 1
	if vnni {
		mr, np = vnniMR, vnniNV
	}
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
			pbMax := max(np, nbMax/((nu+1)*unit))
			nbk := (p1 - p0 + pbMax - 1) / pbMax
			for bk := 0; bk < nbk; bk++ {
				jq, jq1 := p0+(p1-p0)*bk/nbk, p0+(p1-p0)*(bk+1)/nbk
				P := jq1 - jq
				tiles := (P + np - 1) / np
				tile := func(t, ir int) {
					q0, q1 := jq+P*t/tiles, jq+P*(t+1)/tiles
					w := min(panelCols*q1, b.n) - panelCols*q0 // columns of the tile
					nv, mask := q1-q0, 0
					if vnni {
						mask = 1<<(w-panelCols*(nv-1)) - 1
					} else {
						nv = (w + 7) / 8
						mask = w - 8*(nv-1)
					}
					h := min(mr, mb-ir)
					ap := &a[(ic+ir)*lda+u0*uk]
					bp := &b.data[q0*ps+u0*unit]
					cp := &c[(ic+ir)*ldc+q0*panelCols]
					if vnni {
						vnniCall(bits, h, nv, ap, lda, bp, ps, nu, tk, cp, ldc, mask, acc)
					} else {
						avx2Call(bits, h, nv, ap, lda, bp, ps, nu, tk, cp, ldc, mask, acc)
					}
				}
				for ir := 0; ir < mb; ir += mr {
					for t := 0; t < tiles; t++ {
						tile(t, ir)
					}
				}
			}
			if last {
				break
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
