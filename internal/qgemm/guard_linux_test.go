package qgemm

import (
	"fmt"
	"math/rand"
	"syscall"
	"testing"
	"unsafe"
)

// guarded returns a slice of n bytes that ends exactly where an
// inaccessible page begins, so that reading or writing past its end
// faults, and a function that unmaps it.
func guarded(t *testing.T, n int) ([]byte, func()) {
	t.Helper()
	ps := syscall.Getpagesize()
	size := (n+ps-1)/ps*ps + ps
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	if err := syscall.Mprotect(mem[size-ps:], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	return mem[size-ps-n : size-ps], func() { syscall.Munmap(mem) }
}

// TestGemmGuardPage runs every kernel with A and C ending right before an
// inaccessible page: a kernel that reads A past row m-1, column K-1 (the
// K tail that is not a multiple of 4 in particular) or touches C past the
// last row's column N-1 crashes the test.
func TestGemmGuardPage(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for _, kern := range Available() {
		for _, tc := range []struct{ bits, kind int }{{8, fillRandom}, {8, fillSmall}, {4, fillRandom}, {2, fillRandom}} {
			bits := tc.bits
			for _, s := range []shape{{1, 1, 1}, {1, 17, 3}, {3, 5, 5}, {8, 48, 7}, {9, 33, 17}, {17, 100, 31}, {5, 16, 65}, {2, 20, 1027}, {61, 9, 2070}} {
				for _, pad := range []int{0, 5} {
					lda, ldc := s.k+pad, s.n+pad
					a0, w := makeCase(r, s.m, s.n, s.k, lda, bits, tc.kind)
					a, freeA := guarded(t, len(a0))
					copy(a, a0)
					nc := (s.m-1)*ldc + s.n
					cb, freeC := guarded(t, 4*nc)
					c := unsafe.Slice((*int32)(unsafe.Pointer(&cb[0])), nc)
					p, err := Pack(w, s.n, s.k, bits)
					if err != nil {
						t.Fatal(err)
					}
					want := refGemm(t, a, lda, s.m, w, s.n, s.k)
					GemmWith(kern, c, ldc, a, lda, s.m, p)
					for i := 0; i < s.m; i++ {
						for j := 0; j < s.n; j++ {
							if c[i*ldc+j] != want[i*s.n+j] {
								t.Fatalf("%v bits=%d %v: C[%d][%d] = %d, want %d", kern, bits, s, i, j, c[i*ldc+j], want[i*s.n+j])
							}
						}
					}
					freeA()
					freeC()
				}
			}
		}
	}
}

// TestGemmConvGuardPage runs every kernel with the source ending exactly
// at the last byte A reads, followed by an inaccessible page: a kernel
// reading past a window row's SegLen bytes crashes the test.
func TestGemmConvGuardPage(t *testing.T) {
	r := rand.New(rand.NewSource(12))
	for _, cc := range convCases {
		for _, bits := range []int{8, 4, 2} {
			g := cc.geometry(bits)
			src0, w := convSource(r, cc, g, 33, bits, fillRandom)
			src, free := guarded(t, g.SrcLen())
			copy(src, src0)
			want, p := convRef(t, src0, cc, g, w, 33, bits)
			for _, kern := range Available() {
				checkConvCase(t, kern, src, g, p, want, 33, fmt.Sprintf("%v bits=%d guarded", cc, bits))
			}
			free()
		}
	}
}
