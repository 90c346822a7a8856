package ops

import (
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gradcheck"
)

// ce64 is the mean softmax cross-entropy in float64, straight from the
// definition (no max subtraction: the test logits are small).
func ce64(z []float64, labels []int, k int) float64 {
	var s float64
	for i, c := range labels {
		var e float64
		for _, v := range z[i*k : (i+1)*k] {
			e += math.Exp(v)
		}
		s += math.Log(e) - z[i*k+c]
	}
	return s / float64(len(labels))
}

// buildCE makes logits [n, k] and their loss; withGrad adds the logits'
// gradient with the loss as the cost.
func buildCE(t *testing.T, z dense64, withGrad bool) (*CrossEntropy, *gorgonia.Node, gorgonia.VM) {
	t.Helper()
	g := gorgonia.NewGraph()
	zn := gorgonia.NewTensor(g, tensor.Float32, 2, gorgonia.WithShape(z.shape...), gorgonia.WithName("z"), gorgonia.WithValue(z.f32()))
	loss, err := NewCrossEntropy(zn)
	if err != nil {
		t.Fatal(err)
	}
	var grad *gorgonia.Node
	if withGrad {
		grads, err := gorgonia.Grad(loss.Node(), zn)
		if err != nil {
			t.Fatal(err)
		}
		grad = grads[0]
	}
	return loss, grad, gorgonia.NewTapeMachine(g)
}

func runVM(vm gorgonia.VM) error {
	defer vm.Reset()
	return vm.RunAll()
}

// TestCrossEntropyHand: logits [0, 0] with label 0 give ln 2 = 0.6931472;
// [1, 2, 3] with label 2 give ln(e + e^2 + e^3) - 3 = ln(1 + e^-1 + e^-2)
// = 0.4076059; [1000, 0] with label 1 gives 1000 (stable: no overflow)
// and with label 0 gives ln(1 + e^-1000) = 0; the batch of rows [0, 0],
// [1, 2], [3, 1000], [0, 0] with labels 0, 1, 0, 0 averages ln 2,
// ln(1 + e^-1) = 0.3132617, 997 and ln 2.
func TestCrossEntropyHand(t *testing.T) {
	cases := []struct {
		z      []float64
		k      int
		labels []int
		want   float64
	}{
		{[]float64{0, 0}, 2, []int{0}, math.Ln2},
		{[]float64{1, 2, 3}, 3, []int{2}, 0.40760596444437},
		{[]float64{1000, 0}, 2, []int{1}, 1000},
		{[]float64{1000, 0}, 2, []int{0}, 0},
		{[]float64{0, 0, 1, 2, 3, 1000, 0, 0}, 2, []int{0, 1, 0, 0}, (math.Ln2 + 0.31326168751822286 + 997 + math.Ln2) / 4},
	}
	for _, c := range cases {
		loss, _, vm := buildCE(t, dense64{[]int{len(c.z) / c.k, c.k}, c.z}, false)
		loss.SetLabels(c.labels)
		if err := runVM(vm); err != nil {
			t.Fatal(err)
		}
		if !loss.Node().Shape().Eq(tensor.ScalarShape()) || !loss.Node().IsScalar() {
			t.Fatalf("loss node shape %v, scalar %t", loss.Node().Shape(), loss.Node().IsScalar())
		}
		if err := gradcheck.Normwise(f32Of(t, loss.Node()), []float64{c.want}, 1e-6); err != nil {
			t.Errorf("%v labels %v: %v", c.z, c.labels, err)
		}
	}
}

// TestCrossEntropyGrad checks the loss against ce64 and dlogits against
// (softmax - onehot)/N and central differences, over two runs with
// different labels.
func TestCrossEntropyGrad(t *testing.T) {
	const n, k = 5, 7
	r := rand.New(rand.NewSource(60))
	z := normal(r, n, k)
	loss, grad, vm := buildCE(t, z, true)
	for run := 0; run < 2; run++ {
		labels := make([]int, n)
		for i := range labels {
			labels[i] = r.Intn(k)
		}
		loss.SetLabels(labels)
		if err := runVM(vm); err != nil {
			t.Fatal(err)
		}
		f := func(p [][]float64) []float64 { return []float64{ce64(p[0], labels, k)} }
		if err := gradcheck.Normwise(f32Of(t, loss.Node()), f([][]float64{z.data}), 1e-6); err != nil {
			t.Fatalf("run %d: loss: %v", run, err)
		}
		fd := fdGrads(f, [][]float64{append([]float64(nil), z.data...)}, []float64{1}, 1e-4)
		if err := gradcheck.Normwise(f32Of(t, grad), fd[0], 1e-6); err != nil {
			t.Fatalf("run %d: gradient vs finite differences: %v", run, err)
		}
		want := make([]float64, n*k)
		for i, c := range labels {
			var e float64
			for _, v := range z.data[i*k : (i+1)*k] {
				e += math.Exp(v)
			}
			for j, v := range z.data[i*k : (i+1)*k] {
				want[i*k+j] = math.Exp(v) / e / n
			}
			want[i*k+c] -= 1.0 / n
		}
		if err := gradcheck.Normwise(f32Of(t, grad), want, 1e-6); err != nil {
			t.Fatalf("run %d: gradient vs (softmax-onehot)/N: %v", run, err)
		}
	}
}

// TestCrossEntropyUpstream uses the loss inside a larger cost, 3*loss
// plus the sum of the logits, so its gradient op sees an upstream
// gradient other than Grad's seed: dlogits = 3*(softmax-onehot)/N + 1.
func TestCrossEntropyUpstream(t *testing.T) {
	const n, k = 4, 3
	r := rand.New(rand.NewSource(61))
	z := normal(r, n, k)
	labels := []int{0, 2, 1, 2}
	g := gorgonia.NewGraph()
	zn := gorgonia.NewTensor(g, tensor.Float32, 2, gorgonia.WithShape(n, k), gorgonia.WithValue(z.f32()))
	loss, err := NewCrossEntropy(zn)
	if err != nil {
		t.Fatal(err)
	}
	cost := gorgonia.Must(gorgonia.Add(
		gorgonia.Must(gorgonia.Mul(loss.Node(), gorgonia.NewConstant(float32(3)))),
		gorgonia.Must(gorgonia.Sum(zn))))
	grads, err := gorgonia.Grad(cost, zn)
	if err != nil {
		t.Fatal(err)
	}
	loss.SetLabels(labels)
	if err := gorgonia.NewTapeMachine(g).RunAll(); err != nil {
		t.Fatal(err)
	}
	f := func(p [][]float64) []float64 {
		s := 3 * ce64(p[0], labels, k)
		for _, v := range p[0] {
			s += v
		}
		return []float64{s}
	}
	fd := fdGrads(f, [][]float64{append([]float64(nil), z.data...)}, []float64{1}, 1e-4)
	if err := gradcheck.Normwise(f32Of(t, grads[0]), fd[0], 1e-6); err != nil {
		t.Fatal(err)
	}
}

// TestCrossEntropyLabelErrors: runs with labels unset, of the wrong
// length, out of range, or not set again since the last run fail with an
// error naming the op and the bad label.
func TestCrossEntropyLabelErrors(t *testing.T) {
	r := rand.New(rand.NewSource(62))
	loss, _, vm := buildCE(t, normal(r, 3, 4), true)
	err := runVM(vm)
	wantErr(t, "unset", err, "CrossEntropy#", "labels not set")
	for _, c := range []struct {
		labels []int
		want   string
	}{
		{[]int{0, 1}, "2 labels for a batch of 3"},
		{[]int{0, 1, 2, 3}, "4 labels for a batch of 3"},
		{[]int{0, 4, 1}, "label 1 is 4, want 0 <= label < 4"},
		{[]int{0, 1, -100}, "label 2 is -100"},
	} {
		loss.SetLabels(c.labels)
		err := runVM(vm)
		wantErr(t, c.want, err, "CrossEntropy#", c.want)
	}
	labels := []int{3, 2, 1}
	loss.SetLabels(labels)
	labels[0] = 99 // SetLabels copied
	if err := runVM(vm); err != nil {
		t.Fatal(err)
	}
	err = runVM(vm)
	wantErr(t, "stale", err, "CrossEntropy#", "labels not set")

	g := gorgonia.NewGraph()
	_, err = NewCrossEntropy(testGraphNode(g, tensor.Float32, 3))
	wantErr(t, "1-D", err, "ops.NewCrossEntropy", "want 2-D")
	_, err = NewCrossEntropy(testGraphNode(g, tensor.Float64, 3, 2))
	wantErr(t, "float64", err, "ops.NewCrossEntropy", "want float32")
	_, err = NewCrossEntropy(nil)
	wantErr(t, "nil", err, "ops.NewCrossEntropy", "nil")
}
