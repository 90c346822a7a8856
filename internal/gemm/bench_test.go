package gemm

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the products of qat's trainers at batch 128, as
// ops/conv.go (per sample) and ops/linear.go (per batch) call Sgemm:
// conv* are lenet's convolutions, fc* mlp's linear layers (784-256-128-10),
// lenet_fc1 lenet's first linear layer (512-128; its second, 128-10, is
// fc3's shape); then squares of 256 and 1024.
var benchShapes = []struct {
	name    string
	tA, tB  bool
	m, n, k int
}{
	{"conv1_fwd", false, false, 16, 576, 25},
	{"conv1_dX", true, false, 25, 576, 16},
	{"conv1_dW", false, true, 16, 25, 576},
	{"conv2_fwd", false, false, 32, 64, 400},
	{"conv2_dX", true, false, 400, 64, 32},
	{"conv2_dW", false, true, 32, 400, 64},
	{"fc1_fwd", false, true, 128, 256, 784},
	{"fc1_dX", false, false, 128, 784, 256},
	{"fc1_dW", true, false, 256, 784, 128},
	{"fc2_fwd", false, true, 128, 128, 256},
	{"fc2_dX", false, false, 128, 256, 128},
	{"fc2_dW", true, false, 128, 256, 128},
	{"fc3_fwd", false, true, 128, 10, 128},
	{"fc3_dX", false, false, 128, 128, 10},
	{"fc3_dW", true, false, 10, 128, 128},
	{"lenet_fc1_fwd", false, true, 128, 128, 512},
	{"lenet_fc1_dX", false, false, 128, 512, 128},
	{"lenet_fc1_dW", true, false, 128, 512, 128},
	{"square_NN", false, false, 256, 256, 256},
	{"square_NT", false, true, 256, 256, 256},
	{"square_NN", false, false, 1024, 1024, 1024},
	{"square_NT", false, true, 1024, 1024, 1024},
	{"square_TN", true, false, 1024, 1024, 1024},
	{"square_TT", true, true, 1024, 1024, 1024},
}

// BenchmarkSgemm times Sgemm with each kernel set this CPU can run
// (avx512, avx2, generic: the same blocked driver around each
// micro-kernel) and gonum's Sgemm (gonum: parallel over GOMAXPROCS
// goroutines, kept here for comparison only), reporting GFLOP/s =
// 2*m*n*k / ns. Sub-benchmark names are shape_MxNxK/impl.
func BenchmarkSgemm(b *testing.B) {
	for _, s := range benchShapes {
		r := rand.New(rand.NewSource(1))
		lda, ldb := s.k, s.n
		if s.tA {
			lda = s.m
		}
		if s.tB {
			ldb = s.k
		}
		a := randSlice(r, s.m*s.k)
		bm := randSlice(r, s.k*s.n)
		c := randSlice(r, s.m*s.n)
		type impl struct {
			name string
			f    func()
		}
		var impls []impl
		for _, ks := range kernelSets {
			impls = append(impls, impl{benchName(ks), func() {
				sgemmWith(ks, c, s.n, s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0)
			}})
		}
		impls = append(impls, impl{"gonum", func() {
			gonum.Implementation{}.Sgemm(trans(s.tA), trans(s.tB), s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
		}})
		for _, im := range impls {
			// The slow implementations take about 0.4 s (generic) and
			// 0.25 s (gonum) per 1024³ product: run them on NN only, and
			// not at all with -short.
			slow := im.name == "generic" || im.name == "gonum"
			if slow && s.m*s.n*s.k >= 1<<30 && (testing.Short() || s.tA || s.tB) {
				continue
			}
			b.Run(fmt.Sprintf("%s_%dx%dx%d/%s", s.name, s.m, s.n, s.k, im.name), func(b *testing.B) {
				// Warm up (caches, buffers, the core's AVX-512 frequency
				// state) for about a millisecond so that short runs such as
				// -benchtime 200x time the steady state.
				for t0 := time.Now(); time.Since(t0) < time.Millisecond; {
					im.f()
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					im.f()
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "GFLOP/s")
			})
		}
	}
}

// benchName is the sub-benchmark name of a kernel set: avx512, avx2,
// generic (the name in lower case, without "+FMA").
func benchName(ks *kernelSet) string {
	return strings.ToLower(strings.TrimSuffix(ks.name, "+FMA"))
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}
