//go:build amd64 && !noasm

package qgemm

import (
	"testing"

	"qat/internal/cpufeat"
)

// TestX86Dispatch checks that the x86 kernels are available exactly when
// cpufeat allows them and that Gemm selects the best: AVX512VNNI, then
// AVXVNNI, then AVX2 (so QAT_CPU=avx512 selects AVXVNNI on a CPU with
// AVX-VNNI, QAT_CPU=avx512,vnni AVX2).
func TestX86Dispatch(t *testing.T) {
	x := cpufeat.X86
	for k, ok := range map[Kernel]bool{AVX2: x.AVX2, AVXVNNI: x.AVXVNNI, AVX512VNNI: x.AVX512VNNI} {
		if available(k) != ok {
			t.Errorf("available(%v) = %v, want %v (CPU %s)", k, available(k), ok, cpufeat.String())
		}
	}
	want := Generic
	switch {
	case x.AVX512VNNI:
		want = AVX512VNNI
	case x.AVXVNNI:
		want = AVXVNNI
	case x.AVX2:
		want = AVX2
	}
	if Selected() != want {
		t.Errorf("Selected() = %v, want %v (CPU %s)", Selected(), want, cpufeat.String())
	}
	t.Logf("CPU %s: available %v, selected %v", cpufeat.String(), Available(), Selected())
}
