//go:build amd64 && !noasm

package qvec

import "testing"

// TestAddCodesAVX2 runs the AVX2 kernel itself (AddCodes takes the
// AVX-512 one where the CPU has it) on every pair of codes against the
// Go definition.
func TestAddCodesAVX2(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	a, b := make([]uint8, 1<<16), make([]uint8, 1<<16)
	for i := range a {
		a[i], b[i] = uint8(i>>8), uint8(i)
	}
	for _, p := range addCases {
		if !p.noNaN() {
			continue
		}
		want, got := make([]uint8, len(a)), make([]uint8, len(a))
		addCodesGo(want, a, b, p)
		k := addConsts{p.ZA, p.ZB, p.SA, p.SB, p.Inv, float32(p.Lo - p.ZP), float32(p.Hi - p.ZP), p.ZP}
		addCodesAVX2(&got[0], &a[0], &b[0], len(a), &k)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%+v: codes %d + %d gave %d, want %d", p, a[i], b[i], got[i], want[i])
			}
		}
	}
}
