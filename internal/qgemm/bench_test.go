package qgemm

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// benchShapes are M x K x N (the order of onnxruntime's MatMulInteger
// models in the peer benchmark): the MLP/LeNet products of qat's int8
// runtime at batch 128 and 64, and squares.
var benchShapes = []struct {
	m, k, n int
	bits    []int
}{
	{128, 784, 256, []int{8, 8 | small, 4, 2}},
	{1024, 1024, 1024, []int{8, 8 | small}},
	{256, 256, 256, []int{8}},
	{64, 512, 128, []int{8}},
	{576, 25, 16, []int{8}},
	{64, 400, 32, []int{8}},
	{250, 512, 128, []int{8}},
}

// small marks a benchShapes entry of 8-bit codes within [-64, 64] (which
// the AVX2 kernel multiplies with VPMADDUBSW): named b8s.
const small = 1 << 8

// BenchmarkGemm times GemmWith for every available kernel, single
// threaded, reporting GOPS = 2*M*K*N / seconds / 1e9. Names are
// bBITS_MxKxN/KERNEL. The Generic kernel (about 2 GOPS) is only run on
// products of at most 2^22 multiply-adds, so that -benchtime 200x stays
// short.
func BenchmarkGemm(b *testing.B) {
	for _, s := range benchShapes {
		for _, bits := range s.bits {
			kind, name := fillRandom, fmt.Sprint(bits)
			if bits&small != 0 {
				bits, kind, name = bits&^small, fillSmall, fmt.Sprint(bits&^small, "s")
			}
			r := rand.New(rand.NewSource(1))
			a, w := makeCase(r, s.m, s.n, s.k, s.k, bits, kind)
			p, err := Pack(w, s.n, s.k, bits)
			if err != nil {
				b.Fatal(err)
			}
			c := make([]int32, s.m*s.n)
			for _, kern := range Available() {
				if kern == Generic && s.m*s.n*s.k > 1<<22 {
					continue
				}
				b.Run(fmt.Sprintf("b%s_%dx%dx%d/%v", name, s.m, s.k, s.n, kern), func(b *testing.B) {
					// Warm up (caches, the core's AVX-512 frequency state)
					// so that short runs such as -benchtime 200x time the
					// steady state.
					for t0 := time.Now(); time.Since(t0) < 2*time.Millisecond; {
						GemmWith(kern, c, s.n, a, s.k, s.m, p)
					}
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						GemmWith(kern, c, s.n, a, s.k, s.m, p)
					}
					ops := 2 * float64(s.m) * float64(s.k) * float64(s.n) * float64(b.N)
					b.ReportMetric(ops/b.Elapsed().Seconds()/1e9, "GOPS")
				})
			}
		}
	}
}

// BenchmarkGemmParallel times GemmParallel with 2 threads on the square.
func BenchmarkGemmParallel(b *testing.B) {
	m, k, n := 1024, 1024, 1024
	r := rand.New(rand.NewSource(1))
	a, w := makeCase(r, m, n, k, k, 8, fillRandom)
	p, err := Pack(w, n, k, 8)
	if err != nil {
		b.Fatal(err)
	}
	c := make([]int32, m*n)
	for i := 0; i < b.N; i++ {
		GemmParallel(c, n, a, k, m, p, 2)
	}
	b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOPS")
}
