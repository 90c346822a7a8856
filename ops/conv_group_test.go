package ops

import (
	"fmt"
	"math/rand"
	"testing"

	"qat/internal/gradcheck"
)

// groupCase is a grouped convolution: convCase's geometry (c.c input
// channels, weight [O, C/G, KH, KW]) with g groups; direct says whether
// it takes the direct depthwise 3×3 loops (depthwise.go) rather than the
// GEMMs.
type groupCase struct {
	convCase
	g      int
	direct bool
}

func (c groupCase) String() string {
	return fmt.Sprintf("x=[%d,%d,%d,%d]/w=[%d,%d,%d,%d]/s=%d/p=%d/g=%d", c.n, c.c, c.h, c.w, c.o, c.c/c.g, c.kh, c.kw, c.s, c.p, c.g)
}

func (c groupCase) cfg() ConvConfig { return ConvConfig{Stride: c.s, Padding: c.p, Groups: c.g} }

var groupCases = []groupCase{
	{convCase{2, 6, 7, 5, 4, 3, 3, 1, 1}, 2, false},  // 3 channels in, 2 out per group
	{convCase{3, 4, 9, 6, 6, 3, 3, 2, 1}, 2, false},  // stride 2, odd sizes
	{convCase{3, 16, 6, 7, 4, 3, 3, 1, 1}, 2, false}, // 72 columns per group: two dW blocks of gemm.BlockAlign
	{convCase{2, 6, 5, 7, 9, 1, 1, 1, 0}, 3, false},  // 1x1: x is the column matrix
	{convCase{2, 3, 6, 5, 6, 3, 3, 1, 1}, 3, false},  // channel multiplier 2: one input, two outputs per group
	{convCase{2, 5, 7, 9, 5, 3, 3, 1, 1}, 5, true},   // depthwise
	{convCase{3, 3, 9, 8, 3, 3, 3, 2, 1}, 3, true},   // depthwise, stride 2
	{convCase{2, 4, 8, 7, 4, 3, 3, 2, 0}, 4, true},   // depthwise, stride 2, no padding, a column the stride does not reach
	{convCase{1, 3, 5, 6, 3, 3, 3, 3, 2}, 3, true},   // depthwise, padding 2, stride 3
	{convCase{2, 2, 4, 5, 2, 3, 3, 1, 3}, 2, true},   // depthwise, padding 3: outputs of padding alone
	{convCase{1, 4, 11, 7, 4, 5, 5, 3, 2}, 4, false}, // depthwise 5x5
	{convCase{2, 3, 6, 8, 3, 3, 2, 2, 0}, 3, false},  // depthwise 3x2
	{convCase{2, 1, 6, 5, 1, 3, 3, 1, 1}, 1, true},   // one channel: depthwise too
}

// TestConv2dGroupedGradFiniteDiff checks grouped and depthwise
// convolutions, forward, dX and dW, against conv64 with groups and the
// central differences (step 1e-3) of L(x, w) = sum(dY .* conv(x, w)) in
// float64: bilinear, so exact up to float64 rounding, and the tolerance,
// 1e-5 normwise (gradcheck.Normwise), covers the float32 sums, as in
// TestConv2dGradFiniteDiff. Each graph runs twice, on reused buffers.
func TestConv2dGroupedGradFiniteDiff(t *testing.T) {
	const h, tol = 1e-3, 1e-5
	r := rand.New(rand.NewSource(6))
	for _, c := range groupCases {
		t.Run(c.String(), func(t *testing.T) {
			oh, ow := (c.h+2*c.p-c.kh)/c.s+1, (c.w+2*c.p-c.kw)/c.s+1
			x := randTensor(r, c.n, c.c, c.h, c.w)
			w := randTensor(r, c.o, c.c/c.g, c.kh, c.kw)
			dy := randTensor(r, c.n, c.o, oh, ow)
			g, err := geometry(x.Shape(), w.Shape(), c.cfg())
			if err != nil {
				t.Fatal(err)
			}
			if g.direct3x3() != c.direct {
				t.Fatalf("direct 3x3 loops: %v, want %v", g.direct3x3(), c.direct)
			}
			cg := buildConv(t, true, x, w, dy, c.cfg(), true)
			x64, w64, dy64 := to64(x), to64(w), to64(dy)
			loss := func() float64 {
				var s float64
				for i, v := range conv64(x64, w64, c.convCase, c.g) {
					s += v * dy64[i]
				}
				return s
			}
			fd := gradcheck.Partials(loss, h, x64, w64)
			for run := range 2 {
				cg.run(t)
				if err := gradcheck.Normwise(valueOf(t, cg.y), conv64(x64, w64, c.convCase, c.g), tol); err != nil {
					t.Fatalf("run %d: forward: %v", run, err)
				}
				if err := gradcheck.Normwise(valueOf(t, cg.gradX), fd[0], tol); err != nil {
					t.Fatalf("run %d: dX: %v", run, err)
				}
				if err := gradcheck.Normwise(valueOf(t, cg.gwd), fd[1], tol); err != nil {
					t.Fatalf("run %d: dW: %v", run, err)
				}
			}
		})
	}
}

// TestConv2dDepthwisePathsAgree checks, on a MobileNet-like depthwise
// 3×3 layer at strides 1 to 3 and paddings 0 to 3, that the direct loops
// the op takes compute what the GEMM path (im2col and one GEMM per group)
// computes, within 1e-6 normwise: the same nine products summed in the
// same order, so only the GEMM's fused multiply-adds differ.
func TestConv2dDepthwisePathsAgree(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for _, c := range []convCase{
		{4, 24, 13, 10, 24, 3, 3, 1, 1},
		{4, 24, 13, 10, 24, 3, 3, 2, 1},
		{3, 8, 9, 12, 8, 3, 3, 1, 0},
		{3, 8, 9, 12, 8, 3, 3, 2, 2},
		{2, 5, 8, 7, 5, 3, 3, 3, 3},
	} {
		cfg := ConvConfig{Stride: c.s, Padding: c.p, Groups: c.c}
		x, w := randTensor(r, c.n, c.c, c.h, c.w), randTensor(r, c.o, 1, c.kh, c.kw)
		g, err := geometry(x.Shape(), w.Shape(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		dy := randTensor(r, g.outShape()...)
		xs, ws, dys := x.Float32s(), w.Float32s(), dy.Float32s()
		op := newConv(cfg)
		gx, gw := newConvGrad(op, false), newConvGrad(op, true)
		for _, k := range []struct {
			name            string
			size            int
			direct, viaGEMM func(out []float32)
		}{
			{"forward", len(dys), func(y []float32) { depthwise3x3(y, xs, ws, g, &op.cols) }, func(y []float32) { op.forwardGEMM(y, xs, ws, g) }},
			{"dX", len(xs), func(dx []float32) { depthwise3x3GradX(dx, ws, dys, g, &gx.cols) }, func(dx []float32) { gx.gradXGEMM(dx, ws, dys, g) }},
			{"dW", len(ws), func(dw []float32) { depthwise3x3GradW(dw, xs, dys, g, &gw.cols) }, func(dw []float32) { gw.gradWGEMM(dw, xs, dys, g) }},
		} {
			got, want := make([]float32, k.size), make([]float32, k.size)
			k.direct(got)
			k.viaGEMM(want)
			if err := gradcheck.Normwise(got, to64s(want), 1e-6); err != nil {
				t.Errorf("%v: %s: %v", c, k.name, err)
			}
		}
	}
}
