package qgemm

import (
	"os"
	"testing"

	"qat/internal/cpufeat"
)

// TestNEONKernels checks the arm64 kernels' names and availability
// against cpufeat and, when QAT_EXPECT_KERNEL is set (CI sets it for each
// of its qemu runs: NEONDot, NEON with QAT_CPU=asimddp, Generic with
// QAT_CPU=asm), that Gemm selects that kernel, so that CI proves which
// path its tests ran.
func TestNEONKernels(t *testing.T) {
	for k, s := range map[Kernel]string{NEON: "NEON", NEONDot: "NEONDot"} {
		if k.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(k), k.String(), s)
		}
	}
	if available(NEON) && !cpufeat.ARM64.ASIMD || available(NEONDot) && !cpufeat.ARM64.ASIMDDP {
		t.Errorf("NEON, NEONDot available = %v, %v without the CPU features (%s)",
			available(NEON), available(NEONDot), cpufeat.String())
	}
	if want := os.Getenv("QAT_EXPECT_KERNEL"); want != "" && Selected().String() != want {
		t.Fatalf("QAT_EXPECT_KERNEL=%s, but Gemm selects %v (available %v, CPU %s)",
			want, Selected(), Available(), cpufeat.String())
	}
	t.Logf("CPU %s: available %v, selected %v", cpufeat.String(), Available(), Selected())
}
