package fakequant_test

import (
	"fmt"
	"math"
	"testing"

	"gorgonia.org/gorgonia"

	"qat/fakequant"
	"qat/internal/par"
	"qat/quant"
)

// TestThreadsAreExact checks that an observing per-tensor quantizer (the
// observer's extrema, the fake-quant forward and the STE gradient, all
// split by par) gives the same bits with 1, 2, 3 and 7 threads, on an odd
// size split unevenly. The second input is a ReLU output whose first zero,
// -0, lies past the middle: the minimum must keep its sign.
func TestThreadsAreExact(t *testing.T) {
	defer par.SetThreads(0)
	shape := []int{7, 5, 61, 101}
	n := numel(shape)
	relu := pattern(n, -2, 6, 9)
	for i := range relu {
		relu[i] = max(relu[i], 0)
		if i <= n/2+3 {
			relu[i] = max(relu[i], 0.5)
		}
	}
	relu[n/2+3] = float32(math.Copysign(0, -1))
	gy := pattern(n, -1, 1, 8)
	for k, x := range [][]float32{pattern(n, -3, 5, 7), relu} {
		// run returns y, gradX and the observer's range after two runs.
		run := func(threads int) [][]float32 {
			par.SetThreads(threads)
			obs := quant.NewMinMax(quant.Scheme{Bits: 8})
			q := fakequant.New(obs)
			f := newFQGraph(t, shape, func(x *gorgonia.Node) (*gorgonia.Node, error) { return q.Apply(x) })
			f.run(t, x, gy)
			y, gx := f.run(t, x, gy)
			lo, hi := obs.Range()
			return [][]float32{y, gx, lo, hi}
		}
		want := run(1)
		for _, threads := range []int{2, 3, 7} {
			for i, got := range run(threads) {
				bitsEqual(t, fmt.Sprintf("input %d, threads %d, output %d", k, threads, i), got, want[i])
			}
		}
		if k == 1 && math.Float32bits(want[2][0]) != math.Float32bits(float32(math.Copysign(0, -1))) {
			t.Errorf("ReLU input: minimum %g, want -0", want[2][0])
		}
	}
}
