package qgemm

import (
	"fmt"
	"sync"
)

// Kernel names an implementation.
type Kernel int

const (
	Generic    Kernel = iota // pure Go reference, always available
	AVX2                     // AVX2 assembly (VPMADDWD on ymm)
	AVX512VNNI               // AVX-512 VNNI assembly (VPDPBUSD on zmm)
	NEON                     // arm64 NEON assembly (MUL and SADALP on int16)
	NEONDot                  // arm64 NEON dot-product assembly (SDOT)
	AVXVNNI                  // AVX-VNNI assembly (VEX-encoded VPDPBUSD on ymm)
)

// String returns the kernel's name.
func (k Kernel) String() string {
	switch k {
	case Generic:
		return "Generic"
	case AVX2:
		return "AVX2"
	case AVX512VNNI:
		return "AVX512VNNI"
	case NEON:
		return "NEON"
	case NEONDot:
		return "NEONDot"
	case AVXVNNI:
		return "AVXVNNI"
	}
	return fmt.Sprintf("Kernel(%d)", int(k))
}

// available reports whether kernel k can run on this CPU and build.
func available(k Kernel) bool {
	switch k {
	case Generic:
		return true
	case AVX2:
		return hasAVX2
	case AVX512VNNI:
		return hasVNNI
	case AVXVNNI:
		return hasAVXVNNI
	case NEON:
		return hasNEON
	case NEONDot:
		return hasNEONDot
	}
	return false
}

// Available returns the kernels that can run here, Generic first and the
// best last: Generic always, AVX2, AVXVNNI and AVX512VNNI (amd64) or
// NEON and NEONDot (arm64) when the CPU (and OS) support them and the
// build has assembly (no noasm tag).
func Available() []Kernel {
	ks := []Kernel{Generic}
	for _, k := range []Kernel{AVX2, AVXVNNI, AVX512VNNI, NEON, NEONDot} {
		if available(k) {
			ks = append(ks, k)
		}
	}
	return ks
}

// Selected returns the kernel Gemm uses: the best available.
func Selected() Kernel { return selected }

var selected = func() Kernel {
	ks := Available()
	return ks[len(ks)-1]
}()

// Gemm writes C (m x N, row stride ldc >= N) = A (m x K, row stride lda
// >= K) times B with the best kernel for this CPU: c[i*ldc+j] = sum_k
// a[i*lda+k] * B[k][j] for i < m, j < N, exactly. Only those elements of
// c are written and only a[i*lda+k] for i < m, k < K are read.
//
// Gemm panics if m < 0, b is nil, lda < K, ldc < N, or a or c is too
// short for the rows described (len(a) < (m-1)*lda+K, len(c) < (m-1)*ldc+N
// when m > 0): these are programming errors.
func Gemm(c []int32, ldc int, a []uint8, lda, m int, b *Packed) {
	check(c, ldc, a, lda, m, b)
	gemmKernel(selected, c, ldc, a, lda, m, b, 0, b.panels())
}

// GemmWith is Gemm with kernel k forced (tests, benchmarks). It panics
// if k is not available, and like Gemm on bad arguments.
func GemmWith(k Kernel, c []int32, ldc int, a []uint8, lda, m int, b *Packed) {
	if !available(k) {
		panic(fmt.Sprintf("qgemm: kernel %v not available", k))
	}
	check(c, ldc, a, lda, m, b)
	gemmKernel(k, c, ldc, a, lda, m, b, 0, b.panels())
}

// GemmParallel is Gemm split across `threads` goroutines, by blocks of
// rows, or by blocks of 16-column panels when m is too small to give
// every goroutine a full tile of rows; threads <= 1 is Gemm. The result
// is identical to Gemm's. It returns when all goroutines are done.
func GemmParallel(c []int32, ldc int, a []uint8, lda, m int, b *Packed, threads int) {
	check(c, ldc, a, lda, m, b)
	kern := selected
	mr := tileRows(kern)
	panels := b.panels()
	rowTiles := (m + mr - 1) / mr
	if threads > rowTiles && threads > panels {
		threads = max(rowTiles, panels)
	}
	if threads <= 1 || m == 0 {
		gemmKernel(kern, c, ldc, a, lda, m, b, 0, panels)
		return
	}
	var wg sync.WaitGroup
	if rowTiles >= threads {
		// Row blocks: whole tiles, as even as possible.
		for t := 0; t < threads; t++ {
			r0 := rowTiles * t / threads * mr
			r1 := min(m, rowTiles*(t+1)/threads*mr)
			if r0 >= r1 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				gemmKernel(kern, c[r0*ldc:], ldc, a[r0*lda:], lda, r1-r0, b, 0, panels)
			}()
		}
	} else {
		for t := 0; t < threads; t++ {
			p0, p1 := panels*t/threads, panels*(t+1)/threads
			if p0 >= p1 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				gemmKernel(kern, c, ldc, a, lda, m, b, p0, p1)
			}()
		}
	}
	wg.Wait()
}

// check panics on invalid Gemm arguments (see Gemm).
func check(c []int32, ldc int, a []uint8, lda, m int, b *Packed) {
	switch {
	case b == nil:
		panic("qgemm: nil Packed")
	case m < 0:
		panic(fmt.Sprintf("qgemm: m = %d < 0", m))
	case lda < b.k:
		panic(fmt.Sprintf("qgemm: lda = %d < K = %d", lda, b.k))
	case ldc < b.n:
		panic(fmt.Sprintf("qgemm: ldc = %d < N = %d", ldc, b.n))
	case m == 0:
		return
	case len(a) < (m-1)*lda+b.k:
		panic(fmt.Sprintf("qgemm: len(a) = %d < (m-1)*lda+K = %d", len(a), (m-1)*lda+b.k))
	case len(c) < (m-1)*ldc+b.n:
		panic(fmt.Sprintf("qgemm: len(c) = %d < (m-1)*ldc+N = %d", len(c), (m-1)*ldc+b.n))
	}
}

// gemmKernel computes the columns of panels p0..p1-1 of C with kernel k.
func gemmKernel(k Kernel, c []int32, ldc int, a []uint8, lda, m int, b *Packed, p0, p1 int) {
	check(c, ldc, a, lda, m, b)
	if m == 0 || p0 >= p1 {
		return
	}
	if k == Generic {
		gemmGeneric(c, ldc, a, lda, m, b, p0, p1)
		return
	}
	gemmAsm(k, c, ldc, a, lda, m, b, p0, p1)
}

// gemmGeneric is the pure-Go kernel: for each 16-column panel and row of
// A it accumulates 16 int32 sums, 4 values of k at a time, decoding every
// code from its packed byte where it is used.
func gemmGeneric(c []int32, ldc int, a []uint8, lda, m int, b *Packed, p0, p1 int) {
	bits, uk, ps, K := uint(b.bits), b.unitK(), b.panelStride(), b.k
	sr := 8 - bits
	for q := p0; q < p1; q++ {
		cols := min(panelCols, b.n-q*panelCols)
		panel := b.data[q*ps : (q+1)*ps]
		for i := 0; i < m; i++ {
			var acc [panelCols]int32
			row := a[i*lda : i*lda+K]
			for k0 := 0; k0 < K; k0 += 4 {
				// x: A[i][k0..k0+3], zero past K.
				var x [4]int32
				if k0+4 <= K {
					r := row[k0 : k0+4]
					x = [4]int32{int32(r[0]), int32(r[1]), int32(r[2]), int32(r[3])}
				} else {
					for r := k0; r < K; r++ {
						x[r-k0] = int32(row[r])
					}
				}
				if x == [4]int32{} {
					continue
				}
				// Bytes 4*j+r of unit k0/uk hold the codes of k0+r in field
				// f: moved to the top of the byte, then shifted back with
				// sign extension.
				u := k0 / uk
				sl := 8 - bits - uint(k0%uk/4)*bits
				ub := (*[unit]byte)(panel[u*unit : u*unit+unit])
				for j := range acc {
					w := ub[4*j : 4*j+4 : 4*j+4]
					acc[j] += x[0]*int32(int8(w[0]<<sl)>>sr) + x[1]*int32(int8(w[1]<<sl)>>sr) +
						x[2]*int32(int8(w[2]<<sl)>>sr) + x[3]*int32(int8(w[3]<<sl)>>sr)
				}
			}
			copy(c[i*ldc+q*panelCols:i*ldc+q*panelCols+cols], acc[:cols])
		}
	}
}
