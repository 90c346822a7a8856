package ops

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gradcheck"
)

// poolCase is a pooling geometry; p, max pooling's padding, is 0 for
// average pooling.
type poolCase struct{ n, c, h, w, k, s, p int }

func (c poolCase) String() string {
	return fmt.Sprintf("x=[%d,%d,%d,%d]/k=%d/s=%d/p=%d", c.n, c.c, c.h, c.w, c.k, c.s, c.p)
}

func (c poolCase) stride() int {
	if c.s == 0 {
		return c.k
	}
	return c.s
}

func (c poolCase) out() (int, int) {
	return (c.h+2*c.p-c.k)/c.stride() + 1, (c.w+2*c.p-c.k)/c.stride() + 1
}

// pool64 is a naive float64 max or average pooling, max pooling's
// padding by its definition: padded positions are -Inf, skipped.
func pool64(x []float64, c poolCase, avg bool) []float64 {
	oh, ow := c.out()
	s := c.stride()
	y := make([]float64, c.n*c.c*oh*ow)
	for p := 0; p < c.n*c.c; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				m, sum := math.Inf(-1), 0.0
				for a := 0; a < c.k; a++ {
					for b := 0; b < c.k; b++ {
						hi, wi := i*s+a-c.p, j*s+b-c.p
						if hi < 0 || hi >= c.h || wi < 0 || wi >= c.w {
							continue
						}
						v := x[(p*c.h+hi)*c.w+wi]
						sum += v
						if v > m {
							m = v
						}
					}
				}
				if avg {
					m = sum / float64(c.k*c.k)
				}
				y[(p*oh+i)*ow+j] = m
			}
		}
	}
	return y
}

var poolCases = []poolCase{
	{1, 1, 4, 4, 2, 0, 0},
	{2, 3, 7, 9, 3, 2, 0}, // odd sizes, floor mode drops a column
	{1, 2, 5, 5, 2, 0, 0}, // stride = kernel, last row and column dropped
	{2, 1, 6, 7, 3, 1, 0}, // overlapping windows
	{1, 2, 4, 5, 4, 3, 0}, // kernel = H
	{2, 2, 3, 3, 1, 0, 0}, // 1x1
	{1, 1, 9, 5, 2, 3, 0}, // stride > kernel: gaps
}

// paddedPoolCases are max pooling with padding (at most half the kernel).
var paddedPoolCases = []poolCase{
	{2, 3, 7, 9, 3, 2, 1}, // ResNet's stem pooling at odd sizes
	{1, 2, 5, 6, 2, 1, 1}, // padding = kernel/2, overlapping windows
	{2, 1, 6, 7, 3, 1, 1},
	{1, 1, 4, 5, 4, 4, 2}, // windows half padding
	{1, 2, 3, 5, 3, 2, 1}, // kernel = H, fits only padded
	{2, 2, 5, 5, 2, 0, 1}, // stride 0 = kernel, with padding
}

// distinct returns a tensor whose values are a random permutation of
// multiples of 0.01 (plus an offset), so no two are within a
// finite-difference step of each other and the max is unique.
func distinct(r *rand.Rand, shape ...int) dense64 {
	n := size(shape)
	d := make([]float64, n)
	for i, p := range r.Perm(n) {
		d[i] = float64(float32(float64(p)*0.01 - float64(n)*0.005))
	}
	return dense64{shape: shape, data: d}
}

func TestPoolForwardAndGrad(t *testing.T) {
	r := rand.New(rand.NewSource(30))
	for _, avg := range []bool{false, true} {
		cases := poolCases
		if !avg {
			cases = append(cases, paddedPoolCases...)
		}
		for _, c := range cases {
			name := "max/"
			if avg {
				name = "avg/"
			}
			t.Run(name+c.String(), func(t *testing.T) {
				x := distinct(r, c.n, c.c, c.h, c.w)
				og := buildOp(t, 31, true, []dense64{x}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
					switch {
					case avg:
						return AvgPool2d(in[0], c.k, c.s)
					case c.p > 0:
						return MaxPool2dPadded(in[0], c.k, c.s, c.p)
					}
					return MaxPool2d(in[0], c.k, c.s)
				})
				oh, ow := c.out()
				if !og.y.Shape().Eq(tensor.Shape{c.n, c.c, oh, ow}) {
					t.Fatalf("shape %v, want [%d %d %d %d]", og.y.Shape(), c.n, c.c, oh, ow)
				}
				f := func(p [][]float64) []float64 { return pool64(p[0], c, avg) }
				for run := 0; run < 2; run++ {
					checkGrads(t, og, f, []dense64{x}, 1e-6, 1e-3)
				}
			})
		}
	}
}

// TestPoolHand: x = 0..15 as a 4x4 plane, kernel 2, stride 2: the maxima
// are the bottom-right elements 5, 7, 13, 15; the means are those minus
// 2.5 (the mean of 0, 1, 4, 5 is 2.5).
func TestPoolHand(t *testing.T) {
	x := dense64{shape: []int{1, 1, 4, 4}, data: make([]float64, 16)}
	for i := range x.data {
		x.data[i] = float64(i)
	}
	for _, c := range []struct {
		avg  bool
		want []float64
	}{{false, []float64{5, 7, 13, 15}}, {true, []float64{2.5, 4.5, 10.5, 12.5}}} {
		og := buildOp(t, 0, false, []dense64{x}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
			if c.avg {
				return AvgPool2d(in[0], 2, 0)
			}
			return MaxPool2d(in[0], 2, 0)
		})
		og.run(t)
		if err := gradcheck.Normwise(f32Of(t, og.y), c.want, 0); err != nil {
			t.Errorf("avg=%t: %v", c.avg, err)
		}
	}
}

// maxPoolGrad runs MaxPool2dPadded(x, k, s, p) with dY = 1 everywhere
// and returns y and dX.
func maxPoolGrad(t *testing.T, x dense64, k, s, p int) (y, dx []float32) {
	t.Helper()
	g := gorgonia.NewGraph()
	xn := gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(x.shape...), gorgonia.WithValue(x.f32()))
	yn, err := MaxPool2dPadded(xn, k, s, p)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := gorgonia.Grad(gorgonia.Must(gorgonia.Sum(yn)), xn)
	if err != nil {
		t.Fatal(err)
	}
	if err := gorgonia.NewTapeMachine(g).RunAll(); err != nil {
		t.Fatal(err)
	}
	return f32Of(t, yn), f32Of(t, grads[0])
}

// TestMaxPoolTiesAndNaN checks PyTorch's CPU routing by hand, on 3x3
// planes with kernel 2, stride 1 (four overlapping windows) and dY = 1.
// Equal values: each window routes to its first (top-left) element, so dX
// is 1 at (0,0), (0,1), (1,0), (1,1). [[1, 9, 1], [1, 1, 1], [1, 1, 1]]:
// the two top windows both route to the 9, whose gradients add to 2; the
// bottom ones route to their first elements. A NaN at (1,1), in every
// window, makes every output NaN and takes all four gradients; with NaNs
// at (0,0) and (1,1) the later one in row-major order wins. A plane of
// -Inf outputs -Inf and routes as the ties do.
func TestMaxPoolTiesAndNaN(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(-1)
	cases := []struct {
		name  string
		x     []float64
		y, dx []float64
	}{
		{"ties", []float64{1, 1, 1, 1, 1, 1, 1, 1, 1}, []float64{1, 1, 1, 1}, []float64{1, 1, 0, 1, 1, 0, 0, 0, 0}},
		{"overlap", []float64{1, 9, 1, 1, 1, 1, 1, 1, 1}, []float64{9, 9, 1, 1}, []float64{0, 2, 0, 1, 1, 0, 0, 0, 0}},
		{"nan", []float64{1, 2, 3, 4, nan, 0, 0, 0, 0}, []float64{nan, nan, nan, nan}, []float64{0, 0, 0, 0, 4, 0, 0, 0, 0}},
		{"two nans", []float64{nan, 5, 0, 0, nan, 0, 0, 0, 0}, []float64{nan, nan, nan, nan}, []float64{0, 0, 0, 0, 4, 0, 0, 0, 0}},
		{"-inf", []float64{inf, inf, inf, inf, inf, inf, inf, inf, inf}, []float64{inf, inf, inf, inf}, []float64{1, 1, 0, 1, 1, 0, 0, 0, 0}},
	}
	for _, c := range cases {
		y, dx := maxPoolGrad(t, dense64{shape: []int{1, 1, 3, 3}, data: c.x}, 2, 1, 0)
		if err := gradcheck.Normwise(y, c.y, 0); err != nil {
			t.Errorf("%s: y: %v", c.name, err)
		}
		if err := gradcheck.Normwise(dx, c.dx, 0); err != nil {
			t.Errorf("%s: dX: %v", c.name, err)
		}
	}
}

// TestMaxPoolPaddingNeverWins checks PyTorch's -Inf padding by hand, on
// 3x3 planes with kernel 3, stride 1 and padding 1 (nine windows, each
// clipped to the input) and dY = 1. x = -9, -8, ..., -1 in row-major
// order: each output is the maximum of its window's input elements,
// -5 = x(1,1) for the top-left window, -4 = x(1,2) for the other two of
// the top row, -2 = x(2,1) for the left windows of the lower rows and -1
// = x(2,2) for the other four; a zero padding would give 0 at the
// border. A plane of -Inf routes each window to its first input element,
// never to the padding: x(0,0) for the four top-left windows, x(0,1) for
// the top two of the right column, x(1,0) for the bottom two of the left
// column, x(1,1) for the bottom-right one.
func TestMaxPoolPaddingNeverWins(t *testing.T) {
	inf := math.Inf(-1)
	cases := []struct {
		name  string
		x     []float64
		y, dx []float64
	}{
		{"negative", []float64{-9, -8, -7, -6, -5, -4, -3, -2, -1},
			[]float64{-5, -4, -4, -2, -1, -1, -2, -1, -1}, []float64{0, 0, 0, 0, 1, 2, 0, 2, 4}},
		{"-inf", []float64{inf, inf, inf, inf, inf, inf, inf, inf, inf},
			[]float64{inf, inf, inf, inf, inf, inf, inf, inf, inf}, []float64{4, 2, 0, 2, 1, 0, 0, 0, 0}},
	}
	for _, c := range cases {
		y, dx := maxPoolGrad(t, dense64{shape: []int{1, 1, 3, 3}, data: c.x}, 3, 1, 1)
		if err := gradcheck.Normwise(y, c.y, 0); err != nil {
			t.Errorf("%s: y: %v", c.name, err)
		}
		if err := gradcheck.Normwise(dx, c.dx, 0); err != nil {
			t.Errorf("%s: dX: %v", c.name, err)
		}
	}
}

func TestPoolErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := testGraphNode(g, tensor.Float32, 2, 3, 6, 5)
	cases := []struct {
		name         string
		x            *gorgonia.Node
		kernel, strd int
		want         string
	}{
		{"nil", nil, 2, 0, "nil"},
		{"3-D", testGraphNode(g, tensor.Float32, 3, 6, 5), 2, 0, "want 4-D"},
		{"float64", testGraphNode(g, tensor.Float64, 2, 3, 6, 5), 2, 0, "want float32"},
		{"kernel 0", x, 0, 1, "kernel 0 is not positive"},
		{"kernel 0 stride 0", x, 0, 0, "kernel 0 is not positive"},
		{"negative stride", x, 2, -1, "stride -1 is negative"},
		{"kernel > W", x, 6, 1, "larger than the input"},
	}
	for _, c := range cases {
		_, err := MaxPool2d(c.x, c.kernel, c.strd)
		wantErr(t, "max "+c.name, err, "ops.MaxPool2d", c.want)
		_, err = AvgPool2d(c.x, c.kernel, c.strd)
		wantErr(t, "avg "+c.name, err, "ops.AvgPool2d", c.want)
	}
	if _, err := MaxPool2d(x, 5, 0); err != nil {
		t.Errorf("kernel 5 on 6x5: %v", err)
	}
	for _, c := range []struct {
		name            string
		kernel, strd, p int
		want            string
	}{
		{"negative padding", 3, 1, -1, "padding -1 is negative"},
		{"padding above kernel/2", 3, 1, 2, "padding 2 is more than half the kernel 3"},
		{"kernel > padded W", 8, 1, 1, "larger than the input's 6x5 padded to 8x7"},
	} {
		_, err := MaxPool2dPadded(x, c.kernel, c.strd, c.p)
		wantErr(t, c.name, err, "ops.MaxPool2d", c.want)
	}
	if _, err := MaxPool2dPadded(x, 7, 1, 1); err != nil {
		t.Errorf("kernel 7 on 6x5 padded by 1: %v", err)
	}

	r := rand.New(rand.NewSource(32))
	op := newPool(3, 3, 0, false)
	_, err := op.Do(normal(r, 1, 1, 2, 5).f32())
	wantErr(t, "run-time kernel too large", err, "MaxPool2d(k=3,s=3)#", "larger than the input")
	_, err = op.Do(normal(r, 3, 3).f32())
	wantErr(t, "run-time 2-D", err, "MaxPool2d(k=3,s=3)#", "want 4-D")
	gop := newPoolGrad(op, false)
	_, err = gop.Do(normal(r, 1, 1, 6, 6).f32(), normal(r, 1, 1, 3, 2).f32())
	wantErr(t, "run-time dY shape", err, "MaxPool2dGrad#", "output gradient")
}
