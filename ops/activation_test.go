package ops

import (
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gradcheck"
)

func clamp64(x []float64, six bool) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		switch {
		case v < 0:
			y[i] = 0
		case six && v > 6:
			y[i] = 6
		default:
			y[i] = v
		}
	}
	return y
}

// awayFromKinks moves values within 0.05 of 0 or 6 by 0.1, so that finite
// differences with step 1e-3 never cross a kink.
func awayFromKinks(d dense64) dense64 {
	for i, v := range d.data {
		for _, k := range []float64{0, 6} {
			if math.Abs(v-k) < 0.05 {
				v += 0.1
			}
		}
		d.data[i] = float64(float32(v))
	}
	return d
}

func TestReLUForwardAndGrad(t *testing.T) {
	r := rand.New(rand.NewSource(10))
	for _, six := range []bool{false, true} {
		for _, shape := range [][]int{{7}, {3, 5}, {2, 3, 4, 5}, {1, 1}} {
			d := normal(r, shape...)
			for i := range d.data {
				d.data[i] *= 5 // reach past 6
			}
			d = awayFromKinks(d)
			og := buildOp(t, 11, true, []dense64{d}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
				if six {
					return ReLU6(in[0])
				}
				return ReLU(in[0])
			})
			if !og.y.Shape().Eq(tensor.Shape(shape)) {
				t.Fatalf("shape %v, want %v", og.y.Shape(), shape)
			}
			f := func(p [][]float64) []float64 { return clamp64(p[0], six) }
			checkGrads(t, og, f, []dense64{d}, 1e-6, 1e-3)
		}
	}
}

// TestReLUKinks checks the values and gradients at 0, 6 and NaN by hand:
// PyTorch's relu and relu6 give 0 gradient at 0, relu6 also at 6, and
// NaN propagates forward with a 0 gradient.
func TestReLUKinks(t *testing.T) {
	nan := math.NaN()
	tiny := float64(float32(1e-30)) // a float32 input, exactly representable
	x := dense64{shape: []int{7}, data: []float64{-1, 0, 3, 6, 7, nan, tiny}}
	cases := []struct {
		six          bool
		y, dx        []float64
		name         string
		buildWithSix func(*gorgonia.Node) (*gorgonia.Node, error)
	}{
		{false, []float64{0, 0, 3, 6, 7, nan, tiny}, []float64{0, 0, 1, 1, 1, 0, 1}, "ReLU", ReLU},
		{true, []float64{0, 0, 3, 6, 6, nan, tiny}, []float64{0, 0, 1, 0, 0, 0, 1}, "ReLU6", ReLU6},
	}
	for _, c := range cases {
		g := gorgonia.NewGraph()
		xn := gorgonia.NewTensor(g, tensor.Float32, 1, gorgonia.WithShape(7), gorgonia.WithValue(x.f32()))
		y, err := c.buildWithSix(xn)
		if err != nil {
			t.Fatal(err)
		}
		grads, err := gorgonia.Grad(gorgonia.Must(gorgonia.Sum(y)), xn)
		if err != nil {
			t.Fatal(err)
		}
		vm := gorgonia.NewTapeMachine(g)
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		if err := gradcheck.Normwise(f32Of(t, y), c.y, 0); err != nil {
			t.Errorf("%s forward: %v", c.name, err)
		}
		if err := gradcheck.Normwise(f32Of(t, grads[0]), c.dx, 0); err != nil {
			t.Errorf("%s gradient: %v", c.name, err)
		}
	}
}

func TestReLUErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	_, err := ReLU(nil)
	wantErr(t, "nil", err, "ops.ReLU", "nil")
	_, err = ReLU6(testGraphNode(g, tensor.Float64, 2, 3))
	wantErr(t, "float64", err, "ops.ReLU6", "want float32")
	_, err = ReLU(gorgonia.NewScalar(g, tensor.Float32))
	wantErr(t, "scalar", err, "ops.ReLU", "scalar")

	op := newClamp(false)
	r := rand.New(rand.NewSource(12))
	gop := newClampGrad(op)
	_, err = gop.Do(normal(r, 2, 3).f32(), normal(r, 3, 2).f32())
	wantErr(t, "gradient shape", err, "ReLUGrad#", "output gradient")
	f64 := tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2}))
	_, err = op.Do(f64)
	wantErr(t, "float64 value", err, "ReLU#", "want float32")
}
