//go:build amd64 && !noasm

package gemm

import (
	"slices"
	"testing"

	"qat/internal/cpufeat"
)

// TestKernelDispatchAMD64 checks that the kernel sets follow cpufeat:
// AVX512 where it reports AVX-512, then AVX2+FMA where it reports AVX2
// (so that QAT_CPU=avx512 selects AVX2 and QAT_CPU=avx2 or asm the pure-Go
// kernel), then Generic.
func TestKernelDispatchAMD64(t *testing.T) {
	var want []string
	if cpufeat.X86.AVX512 {
		want = append(want, "AVX512")
	}
	if cpufeat.X86.AVX2 {
		want = append(want, "AVX2+FMA")
	}
	want = append(want, "Generic")
	var got []string
	for _, ks := range kernelSets {
		got = append(got, ks.name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("kernel sets %v, want %v (cpufeat: %s)", got, want, cpufeat.String())
	}
}
