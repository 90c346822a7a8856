package qgemm

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// MaxK is the largest K Pack accepts: with |A| <= 255 and |B| <= 128 every
// entry of C, and every partial sum the kernels form, satisfies
// |C| <= 255*128*K < 2^31, so int32 accumulation is exact.
const MaxK = 65792

// Errors returned by Pack, wrapped with the details of the bad argument.
var (
	ErrBits  = errors.New("qgemm: unsupported bit width")
	ErrShape = errors.New("qgemm: bad shape")
	ErrCode  = errors.New("qgemm: weight code out of range")
)

// unit is the size in bytes of one k step of a 16-column panel: 16
// columns times 4 k values at 8 bits, 8 at 4 bits, 16 at 2 bits.
const unit = 64

// panelCols is the number of columns of a panel.
const panelCols = 16

// Packed is B (K x N, int8 codes of `bits` bits) packed once for every
// kernel; read-only after Pack, safe for concurrent use.
//
// Layout: B is cut into panels of 16 columns (the last one padded with
// zero columns), each panel stored contiguously as units of 64 bytes
// (zero codes pad K up to a whole unit). Unit u of panel q covers
// unitK = 32/bits values of k, k0 = u*unitK, and its byte 4*c+r (column
// c < 16, r < 4) holds in bit field f (bits f*bits .. f*bits+bits-1, two's
// complement) the code of B[k0+4*f+r][16*q+c], for f < 8/bits. At 8 bits
// this is the VPDPBUSD operand layout (16 dwords of 4 consecutive k), at 4
// and 2 bits the same with 2 or 4 such k groups stacked in the bit fields
// of each byte.
//
// For 8-bit codes not all within [-64, 64] the AVX2 kernel reads a second
// copy of them, widened to int16 (see wide): 128 bytes per unit of 4 k,
// twice the size of data.
type Packed struct {
	n, k, bits int
	units      int     // units per panel
	data       []byte  // panels*units*64 bytes, 64-byte aligned
	colSums    []int32 // sum over k of B[k][j]

	small bool // 8 bits, every code within [-64, 64]: see ubs

	wideOnce sync.Once
	wideData []byte // the int16 copy, set once by wideOnce
}

// Pack packs w, given row-major as [N][K] (row n = the K weights of
// output column n, PyTorch's weight layout), as B = w^T. bits is 8, 4 or
// 2: every code must lie in [-2^(bits-1), 2^(bits-1)-1] (error naming the
// first bad element otherwise). For bits 4 and 2 the packed form holds 2
// or 4 codes per byte and stays that way: kernels unpack them in
// registers (AVX) or per element (Go reference), never into an int8 or
// float copy of B. n and k must be positive, len(w) == n*k and k <=
// MaxK; w is not retained.
func Pack(w []int8, n, k, bits int) (*Packed, error) {
	if bits != 8 && bits != 4 && bits != 2 {
		return nil, fmt.Errorf("%w: %d (want 8, 4 or 2)", ErrBits, bits)
	}
	switch {
	case n <= 0 || k <= 0:
		return nil, fmt.Errorf("%w: n=%d, k=%d must be positive", ErrShape, n, k)
	case k > MaxK:
		return nil, fmt.Errorf("%w: k=%d exceeds %d, the limit of exact int32 accumulation", ErrShape, k, MaxK)
	case n > math.MaxInt/k:
		return nil, fmt.Errorf("%w: n*k=%d*%d overflows int", ErrShape, n, k)
	case len(w) != n*k:
		return nil, fmt.Errorf("%w: len(w)=%d, want n*k=%d*%d=%d", ErrShape, len(w), n, k, n*k)
	}
	lo, hi := int8(-1<<(bits-1)), int8(1<<(bits-1)-1)
	if bits < 8 {
		for i, v := range w {
			if v < lo || v > hi {
				return nil, fmt.Errorf("%w: w[%d] (row %d, column %d) = %d, want [%d, %d] for %d bits",
					ErrCode, i, i/k, i%k, v, lo, hi, bits)
			}
		}
	}
	uk := 32 / bits
	p := &Packed{n: n, k: k, bits: bits, units: (k + uk - 1) / uk}
	panels := (n + panelCols - 1) / panelCols
	p.data = alignedBytes(panels * p.units * unit)
	p.colSums = make([]int32, n)
	fmask := byte(1<<bits - 1)
	ps := p.units * unit
	for j := 0; j < n; j++ {
		row := w[j*k : j*k+k]
		panel := p.data[j/panelCols*ps : (j/panelCols+1)*ps]
		c := j % panelCols
		var s int32
		for kk, v := range row {
			s += int32(v)
			u, q := kk/uk, kk%uk
			f, r := q/4, q%4
			panel[u*unit+4*c+r] |= (byte(v) & fmask) << (f * bits)
		}
		p.colSums[j] = s
	}
	if bits == 8 {
		p.small = true
		for _, v := range w {
			if v < -64 || v > 64 {
				p.small = false
				break
			}
		}
	}
	if p.wideEager() {
		p.wide()
	}
	return p, nil
}

// wideEager reports whether Pack builds the int16 copy of the codes: for
// 8-bit codes that the AVX2 kernel multiplies with VPMADDWD (!ubs), when
// AVX2 is the kernel Gemm selects. Elsewhere it is only built when
// GemmWith forces the AVX2 kernel (tests, benchmarks).
func (p *Packed) wideEager() bool { return p.bits == 8 && !p.ubs() && selected == AVX2 }

// ubs reports whether the AVX2 kernel multiplies p with VPMADDUBSW (int16
// sums of two u8 x s8 products, saturating beyond 32767): only where
// that cannot saturate, 4- and 2-bit codes (|code| <= 8) and 8-bit codes
// all within [-64, 64] (2*255*64 = 32640). Otherwise it widens to int16
// and uses VPMADDWD.
func (p *Packed) ubs() bool { return p.bits < 8 || p.small }

// wide returns the 8-bit codes widened to int16 for the AVX2 kernel's
// VPMADDWD, building them on first use (goroutine-safe; read-only
// afterwards). Panel q is the 2*panelStride() bytes at 2*q*panelStride();
// its 128-byte unit g (k0 = 4g) holds the int16 pairs (B[k0][c],
// B[k0+2][c]) of columns c = 0..15 in its first 64 bytes and the pairs
// (B[k0+1][c], B[k0+3][c]) in the next 64, pair c at byte 4c.
func (p *Packed) wide() []byte {
	p.wideOnce.Do(func() {
		w := alignedBytes(2 * len(p.data))
		ps := p.panelStride()
		for q := 0; q < p.panels(); q++ {
			src, dst := p.data[q*ps:(q+1)*ps], w[2*q*ps:2*(q+1)*ps]
			for g := 0; g < p.units; g++ {
				for c := 0; c < panelCols; c++ {
					for r := 0; r < 4; r++ {
						v := uint16(int16(int8(src[g*unit+4*c+r])))
						o := g*2*unit + r%2*unit + 4*c + r/2*2
						dst[o], dst[o+1] = byte(v), byte(v>>8)
					}
				}
			}
		}
		p.wideData = w
	})
	return p.wideData
}

// alignedBytes returns n zero bytes starting at a 64-byte boundary.
func alignedBytes(n int) []byte {
	buf := make([]byte, n+63)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(buf))) & 63)
	return buf[off : off+n : off+n]
}

// N returns the number of columns of B (rows of w).
func (p *Packed) N() int { return p.n }

// K returns the number of rows of B (columns of w).
func (p *Packed) K() int { return p.k }

// Bits returns the code width, 8, 4 or 2.
func (p *Packed) Bits() int { return p.bits }

// Bytes returns the resident size of the packed codes in bytes:
// ceil(N/16)*16 columns times K rounded up to a whole unit, at bits/8
// bytes per code, plus, when AVX2 is the selected kernel and the 8-bit
// codes are not all within [-64, 64], the int16 copy its VPMADDWD reads
// (twice as large). ColSums (4*N bytes) is not included.
func (p *Packed) Bytes() int {
	if p.wideEager() {
		return 3 * len(p.data)
	}
	return len(p.data)
}

// ColSums returns sum_k B[k][j] for each column j (for zero-point
// correction by the caller). The slice is owned by p: callers must not
// modify it.
func (p *Packed) ColSums() []int32 { return p.colSums }

// unitK returns the number of k values in a unit.
func (p *Packed) unitK() int { return 32 / p.bits }

// panelStride returns the size in bytes of one panel.
func (p *Packed) panelStride() int { return p.units * unit }

// panels returns the number of 16-column panels.
func (p *Packed) panels() int { return (p.n + panelCols - 1) / panelCols }
