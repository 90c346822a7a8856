package qmodel

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// fixedRequant is the fixed-point requantization of docs/int8-model.md,
// section 5, transcribed step by step (before the zero point and clamp).
func fixedRequant(x int64, m, s int32) int64 {
	r := int64(s)
	if s < 0 {
		x = min(max(x<<-s, math.MinInt32), math.MaxInt32)
		r = 0
	}
	ab := x * int64(m)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - 1<<30
	}
	y := (ab + nudge) / (1 << 31) // Go's division truncates toward zero, as C's
	mask := int64(1)<<r - 1
	var neg int64
	if y < 0 {
		neg = 1
	}
	z := y >> r
	if y&mask > mask>>1+neg {
		z++
	}
	return z
}

// TestFixedRequantSpec checks the claims the specification makes about
// its fixed-point formula, against exact rational arithmetic: y is
// floor(x*M/2^31 + 1/2) and fits in an int32, and z is y/2^r rounded half
// away from zero (0 for r >= 32).
func TestFixedRequantSpec(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	xs := []int64{0, 1, -1, 2, -2, math.MaxInt32, -math.MaxInt32, 1 << 30, -(1 << 30), 3 << 29, -(3 << 29)}
	ms := []int32{MinFixedMultiplier, MaxFixedMultiplier, 1<<30 + 1, 3 << 29}
	for range 3000 {
		xs = append(xs, r.Int64N(1<<32)-(1<<31-1))
		ms = append(ms, MinFixedMultiplier+r.Int32N(1<<30))
	}
	half := big.NewRat(1, 2)
	for i, x := range xs {
		m := ms[i%len(ms)]
		for s := int32(MinShift); s <= MaxShift; s++ {
			got := fixedRequant(x, m, s)
			// The exact result: saturate the left shift, then
			// y = floor(x*M/2^31 + 1/2), z = round half away from zero of y/2^r.
			xx, rr := x, int64(s)
			if s < 0 {
				xx = min(max(x*(int64(1)<<-s), math.MinInt32), math.MaxInt32)
				rr = 0
			}
			v := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(xx), big.NewInt(int64(m))), new(big.Int).Lsh(big.NewInt(1), 31))
			v.Add(v, half)
			y := new(big.Int).Div(v.Num(), v.Denom()) // Euclidean division by a positive denominator: floor
			if !y.IsInt64() || y.Int64() > math.MaxInt32 || y.Int64() < -math.MaxInt32 {
				t.Fatalf("x %d M %d s %d: y = %v does not fit in an int32", x, m, s, y)
			}
			q := new(big.Rat).SetFrac(new(big.Int).Abs(y), new(big.Int).Lsh(big.NewInt(1), uint(rr)))
			q.Add(q, half)
			want := new(big.Int).Div(q.Num(), q.Denom()).Int64() // floor(|y|/2^r + 1/2)
			if y.Sign() < 0 {
				want = -want
			}
			if got != want {
				t.Fatalf("x %d M %d s %d: formula gives %d, exact rounding %d", x, m, s, got, want)
			}
		}
	}
}
