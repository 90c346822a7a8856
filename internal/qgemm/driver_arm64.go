//go:build arm64 && !noasm

package qgemm

// Cache blocking of the NEON kernels (see the package doc).
const (
	neonKC  = 1024      // k values per k block
	neonNB  = 256 << 10 // bytes of B per k block and column block (L2)
	tailMax = 16        // bytes of the padded A tail of a row (unitK at 2 bits)
)

// gemmAsm computes the columns of panels p0..p1-1 of C (m > 0 rows) with
// the NEON kernel k (NEON or NEONDot).
//
// Loops, outermost first: k blocks of at most neonKC values (later
// blocks add to C); column blocks of at most neonNB bytes of B; row
// tiles (4 rows for NEONDot, 2 for NEON), whose rows of A for the k block
// (at most 4 KiB) stay in L1 while the panels stream the column block of
// B from L2; panels. A is read in place but for the K tail that is not a
// whole unit, which is copied once per row tile into a zero-padded
// buffer and done by one more kernel call over one unit (B's padding
// codes are zero). Tiles of fewer than the kernel's rows (rows past the
// height repeat the last one) or of fewer than 16 columns are computed
// into a scratch tile and copied to C, so nothing outside C is written.
//
// NEONDot computes sum_k (a-128)*b, so the first k block starts from
// init = 128*ColSums of the panel: sum_k a*b = sum_k (a-128)*b +
// 128*sum_k b. NEON starts from zero.
func gemmAsm(k Kernel, c []int32, ldc int, a []uint8, lda, m int, b *Packed, p0, p1 int) {
	dot := k == NEONDot
	mr := tileRows(k)
	bits, uk, K, ps := b.bits, b.unitK(), b.k, b.panelStride()
	full := K / uk // whole units of A per row
	tailK := K - full*uk
	kcu := neonBlocks(full, neonKC/uk)
	var (
		rows, trows [4]*uint8
		tail        [4][tailMax]byte
		bias        [panelCols]int32
		scratch     [4 * panelCols]int32
	)
	for u0 := 0; ; u0 += kcu {
		nu := min(kcu, full-u0)
		last := u0+nu >= full
		pb := max(1, neonNB/((nu+1)*unit)) // panels per column block
		for q0 := p0; q0 < p1; q0 += pb {
			q1 := min(p1, q0+pb)
			for i0 := 0; i0 < m; i0 += mr {
				h := min(mr, m-i0)
				for r := 0; r < mr; r++ {
					row := (i0 + min(r, h-1)) * lda
					if nu > 0 {
						rows[r] = &a[row+u0*uk]
					}
					if last && tailK > 0 {
						copy(tail[r][:], a[row+full*uk:row+K])
						trows[r] = &tail[r][0]
					}
				}
				for q := q0; q < q1; q++ {
					w := min(panelCols, b.n-q*panelCols)
					cp, ldo := &c[i0*ldc+q*panelCols], ldc
					edge := h < mr || w < panelCols
					if edge {
						cp, ldo = &scratch[0], panelCols
					}
					init, ldi := cp, ldo
					switch {
					case u0 == 0:
						for j := range bias {
							bias[j] = 0
							if dot && j < w {
								bias[j] = 128 * b.colSums[q*panelCols+j]
							}
						}
						init, ldi = &bias[0], 0
					case edge:
						for i := 0; i < h; i++ {
							copy(scratch[i*panelCols:i*panelCols+w], c[(i0+i)*ldc+q*panelCols:])
						}
					}
					if nu > 0 {
						neonCall(dot, bits, &rows, &b.data[q*ps+u0*unit], nu, init, ldi, cp, ldo)
						init, ldi = cp, ldo
					}
					if last && tailK > 0 {
						neonCall(dot, bits, &trows, &b.data[q*ps+full*unit], 1, init, ldi, cp, ldo)
					}
					if edge {
						for i := 0; i < h; i++ {
							copy(c[(i0+i)*ldc+q*panelCols:(i0+i)*ldc+q*panelCols+w], scratch[i*panelCols:])
						}
					}
				}
			}
		}
		if last {
			break
		}
	}
}

// neonCall runs the kernel of the family (dot or wide) and bits on one
// tile (see gen_kernel_arm64.go). The calls are direct so that rows,
// init and c, on gemmAsm's stack, do not escape.
func neonCall(dot bool, bits int, rows *[4]*uint8, b *byte, nu int, init *int32, ldi int, c *int32, ldc int) {
	switch {
	case dot && bits == 8:
		dot8(rows, b, nu, init, ldi, c, ldc)
	case dot && bits == 4:
		dot4(rows, b, nu, init, ldi, c, ldc)
	case dot:
		dot2(rows, b, nu, init, ldi, c, ldc)
	case bits == 8:
		wide8(rows, b, nu, init, ldi, c, ldc)
	case bits == 4:
		wide4(rows, b, nu, init, ldi, c, ldc)
	default:
		wide2(rows, b, nu, init, ldi, c, ldc)
	}
}

// neonBlocks returns the size of the blocks that split n units into the
// fewest blocks of at most max (equal up to rounding; the last may be
// smaller).
func neonBlocks(n, max int) int {
	if n <= max {
		return max
	}
	nb := (n + max - 1) / max
	return (n + nb - 1) / nb
}
