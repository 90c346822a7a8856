package ops

import (
	"fmt"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gradcheck"
	"qat/internal/graphval"
)

// linear64 is y [N, O] = x [N, K] · w^T + b in float64; b may be nil.
func linear64(x, w, b []float64, n, k, o int) []float64 {
	y := make([]float64, n*o)
	for i := 0; i < n; i++ {
		for j := 0; j < o; j++ {
			var s float64
			if b != nil {
				s = b[j]
			}
			for l := 0; l < k; l++ {
				s += x[i*k+l] * w[j*k+l]
			}
			y[i*o+j] = s
		}
	}
	return y
}

// TestLinearHand: x = [[1, 2]], w = [[3, 4], [5, 6]], b = [10, 20] gives
// y = [[1*3+2*4+10, 1*5+2*6+20]] = [[21, 37]]; without b, [[11, 17]].
func TestLinearHand(t *testing.T) {
	x := dense64{[]int{1, 2}, []float64{1, 2}}
	w := dense64{[]int{2, 2}, []float64{3, 4, 5, 6}}
	b := dense64{[]int{2}, []float64{10, 20}}
	og := buildOp(t, 0, false, []dense64{x, w, b}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		return Linear(in[0], in[1], in[2])
	})
	og.run(t)
	if err := gradcheck.Normwise(f32Of(t, og.y), []float64{21, 37}, 0); err != nil {
		t.Error(err)
	}
	og = buildOp(t, 0, false, []dense64{x, w}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		return Linear(in[0], in[1], nil)
	})
	og.run(t)
	if err := gradcheck.Normwise(f32Of(t, og.y), []float64{11, 17}, 0); err != nil {
		t.Error(err)
	}
}

// TestLinearGradFiniteDiff checks y, dX, dW and db against linear64 and
// central differences (L is bilinear, so exact up to rounding), odd sizes,
// with and without bias, over two runs of the same graph.
func TestLinearGradFiniteDiff(t *testing.T) {
	r := rand.New(rand.NewSource(20))
	for _, c := range [][3]int{{1, 1, 1}, {3, 5, 7}, {13, 17, 11}, {2, 33, 3}} {
		for _, bias := range []bool{false, true} {
			n, k, o := c[0], c[1], c[2]
			t.Run(fmt.Sprintf("N%d_K%d_O%d_bias%t", n, k, o, bias), func(t *testing.T) {
				ins := []dense64{normal(r, n, k), normal(r, o, k)}
				if bias {
					ins = append(ins, normal(r, o))
				}
				og := buildOp(t, 21, true, ins, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
					if bias {
						return Linear(in[0], in[1], in[2])
					}
					return Linear(in[0], in[1], nil)
				})
				if !og.y.Shape().Eq(tensor.Shape{n, o}) {
					t.Fatalf("shape %v", og.y.Shape())
				}
				f := func(p [][]float64) []float64 {
					var b []float64
					if bias {
						b = p[2]
					}
					return linear64(p[0], p[1], b, n, k, o)
				}
				for run := 0; run < 2; run++ {
					checkGrads(t, og, f, ins, 1e-5, 1e-3)
				}
			})
		}
	}
}

func TestLinearErrors(t *testing.T) {
	g := gorgonia.NewGraph()
	x := testGraphNode(g, tensor.Float32, 4, 5)
	w := testGraphNode(g, tensor.Float32, 3, 5)
	b := testGraphNode(g, tensor.Float32, 3)
	cases := []struct {
		name    string
		x, w, b *gorgonia.Node
		want    string
	}{
		{"nil input", nil, w, b, "nil input"},
		{"nil weight", x, nil, b, "nil weight"},
		{"3-D input", testGraphNode(g, tensor.Float32, 4, 5, 1), w, b, "want 2-D"},
		{"1-D weight", x, testGraphNode(g, tensor.Float32, 5), b, "want 2-D"},
		{"K mismatch", x, testGraphNode(g, tensor.Float32, 3, 4), b, "has 5 features"},
		{"bias length", x, w, testGraphNode(g, tensor.Float32, 4), "bias"},
		{"2-D bias", x, w, testGraphNode(g, tensor.Float32, 1, 3), "want 1-D"},
		{"float64 input", testGraphNode(g, tensor.Float64, 4, 5), w, b, "want float32"},
	}
	for _, c := range cases {
		_, err := Linear(c.x, c.w, c.b)
		wantErr(t, c.name, err, "ops.Linear", c.want)
	}

	r := rand.New(rand.NewSource(22))
	op := newLinear(true)
	_, err := op.Do(normal(r, 2, 3).f32(), normal(r, 4, 2).f32(), normal(r, 4).f32())
	wantErr(t, "run-time K mismatch", err, "Linear#", "features")
	_, err = op.Do(normal(r, 2, 3).f32(), normal(r, 4, 3).f32(), normal(r, 3).f32())
	wantErr(t, "run-time bias", err, "Linear#", "bias")
	gx := newLinearGrad(op, linearWrtX)
	_, err = gx.Do(normal(r, 4, 3).f32(), normal(r, 2, 5).f32())
	wantErr(t, "run-time dY", err, "LinearGradX#", "outputs")
	gw := newLinearGrad(op, linearWrtW)
	_, err = gw.Do(normal(r, 3, 3).f32(), normal(r, 2, 4).f32())
	wantErr(t, "run-time x rows", err, "LinearGradW#", "rows")
}

// TestFlatten checks values, shape, the gradient (a reshape of dY) and
// that x's value is neither aliased nor reshaped.
func TestFlatten(t *testing.T) {
	r := rand.New(rand.NewSource(23))
	x := normal(r, 2, 3, 4, 5)
	og := buildOp(t, 24, true, []dense64{x}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		return Flatten(in[0])
	})
	if !og.y.Shape().Eq(tensor.Shape{2, 60}) {
		t.Fatalf("shape %v", og.y.Shape())
	}
	checkGrads(t, og, func(p [][]float64) []float64 { return p[0] }, []dense64{x}, 1e-9, 1e-3)
	if !og.in[0].Value().Shape().Eq(tensor.Shape{2, 3, 4, 5}) {
		t.Errorf("x's value was reshaped to %v", og.in[0].Value().Shape())
	}
	if !og.grads[0].Shape().Eq(tensor.Shape{2, 3, 4, 5}) || !og.grads[0].Value().Shape().Eq(tensor.Shape{2, 3, 4, 5}) {
		t.Errorf("gradient shape %v / value %v", og.grads[0].Shape(), og.grads[0].Value().Shape())
	}
	xd := og.in[0].Value().Data().([]float32)
	yd := og.y.Value().Data().([]float32)
	if &xd[0] == &yd[0] {
		t.Error("Flatten's output aliases its input")
	}

	// Flatten into Linear, the usual conv-to-dense step.
	w := normal(r, 3, 12)
	x2 := normal(r, 2, 3, 2, 2)
	og = buildOp(t, 25, true, []dense64{x2, w}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		f, err := Flatten(in[0])
		if err != nil {
			return nil, err
		}
		return Linear(f, in[1], nil)
	})
	checkGrads(t, og, func(p [][]float64) []float64 { return linear64(p[0], p[1], nil, 2, 12, 3) }, []dense64{x2, w}, 1e-5, 1e-3)

	g := gorgonia.NewGraph()
	_, err := Flatten(testGraphNode(g, tensor.Float32, 5))
	wantErr(t, "1-D", err, "ops.Flatten", "2 or more")
	_, err = Flatten(nil)
	wantErr(t, "nil", err, "ops.Flatten", "nil")
	op := newFlatten(graphval.NewID(), tensor.Shape{2, 3}, false)
	_, err = op.Do(normal(r, 7).f32())
	wantErr(t, "run-time size", err, "Flatten#", "7 elements")
}

// TestTinyNetworkTrains: Linear→ReLU→Linear→CrossEntropy on a separable
// 3-class problem; 20 plain SGD steps done by hand on the parameters'
// value slices must lower the loss. This checks that the ops compose under
// gorgonia.Grad and that parameter updates in place are seen by the next
// run.
func TestTinyNetworkTrains(t *testing.T) {
	const n, k, hidden, classes, steps, lr = 32, 8, 16, 3, 20, 0.5
	r := rand.New(rand.NewSource(26))
	x := normal(r, n, k)
	teacher := normal(r, classes, k)
	scores := linear64(x.data, teacher.data, nil, n, k, classes)
	labels := make([]int, n)
	for i := range labels {
		for c := 1; c < classes; c++ {
			if scores[i*classes+c] > scores[i*classes+labels[i]] {
				labels[i] = c
			}
		}
	}
	w1, w2 := normal(r, hidden, k), normal(r, classes, hidden)
	for i := range w1.data {
		w1.data[i] *= 0.3
	}
	for i := range w2.data {
		w2.data[i] *= 0.3
	}
	b1, b2 := dense64{[]int{hidden}, make([]float64, hidden)}, dense64{[]int{classes}, make([]float64, classes)}

	g := gorgonia.NewGraph()
	node := func(d dense64, name string) *gorgonia.Node {
		return gorgonia.NewTensor(g, tensor.Float32, len(d.shape), gorgonia.WithShape(d.shape...), gorgonia.WithName(name), gorgonia.WithValue(d.f32()))
	}
	xn := node(x, "x")
	params := gorgonia.Nodes{node(w1, "w1"), node(b1, "b1"), node(w2, "w2"), node(b2, "b2")}
	h := gorgonia.Must(Linear(xn, params[0], params[1]))
	h = gorgonia.Must(ReLU(h))
	logits := gorgonia.Must(Linear(h, params[2], params[3]))
	loss, err := NewCrossEntropy(logits)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := gorgonia.Grad(loss.Node(), params...)
	if err != nil {
		t.Fatal(err)
	}
	vm := gorgonia.NewTapeMachine(g)
	var first, last float32
	for step := 0; step < steps; step++ {
		loss.SetLabels(labels)
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		last = f32Of(t, loss.Node())[0]
		if step == 0 {
			first = last
		}
		for i, p := range params {
			pv := p.Value().Data().([]float32)
			for j, gv := range f32Of(t, grads[i]) {
				pv[j] -= lr * gv
			}
		}
		vm.Reset()
	}
	t.Logf("loss %v -> %v over %d steps", first, last, steps)
	if !(last < 0.6*first) {
		t.Errorf("loss %v -> %v: did not fall below 60%% of the first", first, last)
	}
}
