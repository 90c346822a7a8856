package qvec

import (
	"math"
	"testing"

	"qat/quant"
)

// addCases are AddParams of typical residual adds (scales within a few
// times of each other), one input far finer than the other, zero points
// at 0, in the middle and at 255, ReLU and ReLU6-like clamps, sums
// exactly on rounding ties (scales 0.5 and 0.25 with Inv 1 and 2) and
// scales whose products overflow float32 (the Go path must take them).
var addCases = []AddParams{
	{ZA: 3, ZB: 120, SA: 0.021, SB: 0.034, Inv: 1 / float32(0.05), ZP: 7, Lo: 0, Hi: 255},
	{ZA: 0, ZB: 0, SA: 0.5, SB: 0.25, Inv: 1, ZP: 0, Lo: 0, Hi: 255},
	{ZA: 128, ZB: 128, SA: 0.5, SB: 0.5, Inv: 2, ZP: 128, Lo: 0, Hi: 255},
	{ZA: 255, ZB: 1, SA: 1e-4, SB: 0.7, Inv: 1 / float32(0.9), ZP: 255, Lo: 255, Hi: 255},
	{ZA: 17, ZB: 200, SA: 0.11, SB: 0.013, Inv: 1 / float32(0.07), ZP: 40, Lo: 40, Hi: 125},
	{ZA: 9, ZB: 9, SA: 3e38, SB: 3e38, Inv: 1e-38, ZP: 5, Lo: 0, Hi: 255},
	{ZA: 0, ZB: 255, SA: 1, SB: 1, Inv: 0, ZP: 3, Lo: 0, Hi: 9},
}

// TestAddCodes checks AddCodes on every pair of codes, in blocks whose
// lengths cover the vector blocks and the Go tail, against its definition
// written out with quant.Code.
func TestAddCodes(t *testing.T) {
	a, b := make([]uint8, 1<<16), make([]uint8, 1<<16)
	for i := range a {
		a[i], b[i] = uint8(i>>8), uint8(i)
	}
	for _, p := range addCases {
		want := make([]uint8, len(a))
		for i := range want {
			x := float32(float32(int32(a[i])-p.ZA)*p.SA) + float32(float32(int32(b[i])-p.ZB)*p.SB)
			q, _ := quant.Code(x, p.Inv, p.ZP, p.Lo, p.Hi)
			want[i] = uint8(q)
		}
		got := make([]uint8, len(a))
		for at, n := 0, 1; at < len(a); at, n = at+n, n%37+1 {
			end := min(len(a), at+n)
			AddCodes(got[at:end], a[at:end], b[at:end], p)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%+v: codes %d + %d gave %d, want %d", p, a[i], b[i], got[i], want[i])
			}
		}
		// In place, in one call.
		c := append([]uint8(nil), a...)
		AddCodes(c, c, b, p)
		for i := range want {
			if c[i] != want[i] {
				t.Fatalf("%+v in place: codes %d + %d gave %d, want %d", p, a[i], b[i], c[i], want[i])
			}
		}
	}
	if (AddParams{SA: math.MaxFloat32, SB: 1, Inv: 1}).noNaN() {
		t.Error("noNaN accepts a scale whose products overflow")
	}
}

func TestAddCodesPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AddCodes of unequal lengths did not panic")
		}
	}()
	AddCodes(make([]uint8, 3), make([]uint8, 3), make([]uint8, 2), AddParams{})
}
