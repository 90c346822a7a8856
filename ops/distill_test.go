package ops

import (
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"qat/internal/gradcheck"
)

// kd64 is the distillation term T^2 * mean_i KL(softmax(t_i/T) ||
// softmax(z_i/T)) in float64, straight from the definition (no max
// subtraction: the test logits are small).
func kd64(z, t []float64, n, k int, T float64) float64 {
	softmax := func(row []float64) []float64 {
		out := make([]float64, len(row))
		var e float64
		for j, v := range row {
			out[j] = math.Exp(v / T)
			e += out[j]
		}
		for j := range out {
			out[j] /= e
		}
		return out
	}
	var s float64
	for i := 0; i < n; i++ {
		p, q := softmax(t[i*k:(i+1)*k]), softmax(z[i*k:(i+1)*k])
		for j := range p {
			s += p[j] * math.Log(p[j]/q[j])
		}
	}
	return T * T * s / float64(n)
}

// buildDistill makes logits [n, k], their distillation loss and the
// logits' gradient with the loss as the cost.
func buildDistill(t *testing.T, z dense64, d Distill) (*CrossEntropy, *gorgonia.Node, gorgonia.VM) {
	t.Helper()
	g := gorgonia.NewGraph()
	zn := gorgonia.NewTensor(g, tensor.Float32, 2, gorgonia.WithShape(z.shape...), gorgonia.WithName("z"), gorgonia.WithValue(z.f32()))
	loss, err := NewDistillation(zn, d)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := gorgonia.Grad(loss.Node(), zn)
	if err != nil {
		t.Fatal(err)
	}
	return loss, grads[0], gorgonia.NewTapeMachine(g)
}

func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// TestDistillationHand: teacher logits [ln 3, 0]*T give p = [3/4, 1/4],
// student logits [0, 0] give q = [1/2, 1/2], so KL = 3/4 ln(3/2) +
// 1/4 ln(1/2) = 0.1308120 and KD = T^2 * 0.1308120 (0.5232481 at T 2);
// CE of [0, 0] is ln 2. With alpha 0.25 the loss is 0.75 ln 2 + 0.25 KD.
// A teacher equal to the student gives KD exactly 0 and, with alpha 1, a
// gradient of exactly 0.
func TestDistillationHand(t *testing.T) {
	const kl = 0.75*0.4054651081081644 - 0.25*math.Ln2
	for _, c := range []struct {
		T, alpha float64
	}{{1, 1}, {2, 1}, {2, 0.25}} {
		loss, _, vm := buildDistill(t, dense64{[]int{1, 2}, []float64{0, 0}}, Distill{Temperature: c.T, Alpha: c.alpha})
		loss.SetLabels([]int{0})
		loss.SetTeacher([]float32{float32(c.T * math.Log(3)), 0})
		if err := runVM(vm); err != nil {
			t.Fatal(err)
		}
		ce, kd := loss.Terms()
		want := (1-c.alpha)*math.Ln2 + c.alpha*c.T*c.T*kl
		if err := gradcheck.Normwise(f32Of(t, loss.Node()), []float64{want}, 1e-6); err != nil {
			t.Errorf("T %v alpha %v: loss: %v", c.T, c.alpha, err)
		}
		if gradcheck.Close(ce, math.Ln2, 1e-12) != nil || gradcheck.Close(kd, c.T*c.T*kl, 1e-6) != nil {
			t.Errorf("T %v alpha %v: terms %v, %v; want ln 2 and %v", c.T, c.alpha, ce, kd, c.T*c.T*kl)
		}
	}
	r := rand.New(rand.NewSource(70))
	z := normal(r, 3, 4)
	loss, grad, vm := buildDistill(t, z, Distill{Temperature: 3, Alpha: 1})
	loss.SetLabels([]int{0, 1, 2})
	loss.SetTeacher(f32s(z.data))
	if err := runVM(vm); err != nil {
		t.Fatal(err)
	}
	if _, kd := loss.Terms(); kd != 0 {
		t.Errorf("teacher = student: KD %v, want 0", kd)
	}
	for i, g := range f32Of(t, grad) {
		if g != 0 {
			t.Fatalf("teacher = student, alpha 1: gradient %d = %v, want 0", i, g)
		}
	}
}

// TestDistillationGrad checks the loss and its terms against ce64 and
// kd64 and dlogits against central differences of the same float64
// reference and against the closed form, for several temperatures and
// weights, over two runs with different labels and teachers.
func TestDistillationGrad(t *testing.T) {
	const n, k = 5, 7
	r := rand.New(rand.NewSource(71))
	for _, d := range []Distill{{4, 0.5}, {1, 1}, {2.5, 0.9}, {0.5, 0.1}} {
		z := normal(r, n, k)
		loss, grad, vm := buildDistill(t, z, d)
		for run := 0; run < 2; run++ {
			labels := make([]int, n)
			for i := range labels {
				labels[i] = r.Intn(k)
			}
			teacher := normal(r, n, k)
			for i := range teacher.data {
				teacher.data[i] = float64(float32(2 * teacher.data[i]))
			}
			loss.SetLabels(labels)
			loss.SetTeacher(f32s(teacher.data))
			if err := runVM(vm); err != nil {
				t.Fatal(err)
			}
			f := func(p [][]float64) []float64 {
				return []float64{(1-d.Alpha)*ce64(p[0], labels, k) + d.Alpha*kd64(p[0], teacher.data, n, k, d.Temperature)}
			}
			if err := gradcheck.Normwise(f32Of(t, loss.Node()), f([][]float64{z.data}), 1e-6); err != nil {
				t.Fatalf("%+v run %d: loss: %v", d, run, err)
			}
			ce, kd := loss.Terms()
			if err := gradcheck.Close(ce, ce64(z.data, labels, k), 1e-12); err != nil {
				t.Errorf("%+v run %d: CE term: %v", d, run, err)
			}
			if err := gradcheck.Close(kd, kd64(z.data, teacher.data, n, k, d.Temperature), 1e-12); err != nil {
				t.Errorf("%+v run %d: KD term: %v", d, run, err)
			}
			fd := fdGrads(f, [][]float64{append([]float64(nil), z.data...)}, []float64{1}, 1e-4)
			if err := gradcheck.Normwise(f32Of(t, grad), fd[0], 1e-6); err != nil {
				t.Fatalf("%+v run %d: gradient vs finite differences: %v", d, run, err)
			}
			want := make([]float64, n*k)
			for i, c := range labels {
				for j := 0; j < k; j++ {
					p := softmax64(z.data[i*k:(i+1)*k], 1)[j]
					if j == c {
						p--
					}
					q := softmax64(z.data[i*k:(i+1)*k], d.Temperature)[j] - softmax64(teacher.data[i*k:(i+1)*k], d.Temperature)[j]
					want[i*k+j] = ((1-d.Alpha)*p + d.Alpha*d.Temperature*q) / n
				}
			}
			if err := gradcheck.Normwise(f32Of(t, grad), want, 1e-6); err != nil {
				t.Fatalf("%+v run %d: gradient vs the closed form: %v", d, run, err)
			}
		}
	}
}

func softmax64(row []float64, T float64) []float64 {
	out := make([]float64, len(row))
	var e float64
	for j, v := range row {
		out[j] = math.Exp(v / T)
		e += out[j]
	}
	for j := range out {
		out[j] /= e
	}
	return out
}

// TestDistillationAlphaZeroIsCrossEntropy: with alpha 0 the loss and the
// gradient equal CrossEntropy's bit for bit, whatever the teacher, for
// small and large logits (NewDistillation's doc promises it).
func TestDistillationAlphaZeroIsCrossEntropy(t *testing.T) {
	const n, k = 6, 10
	r := rand.New(rand.NewSource(72))
	for _, amp := range []float64{1, 30} {
		z := normal(r, n, k)
		for i := range z.data {
			z.data[i] = float64(float32(amp * z.data[i]))
		}
		labels := []int{0, 9, 3, 3, 5, 1}
		ce, ceGrad, ceVM := buildCE(t, z, true)
		ce.SetLabels(labels)
		if err := runVM(ceVM); err != nil {
			t.Fatal(err)
		}
		kd, kdGrad, kdVM := buildDistill(t, z, Distill{Temperature: 4, Alpha: 0})
		kd.SetLabels(labels)
		kd.SetTeacher(f32s(normal(r, n, k).data))
		if err := runVM(kdVM); err != nil {
			t.Fatal(err)
		}
		a, b := f32Of(t, ce.Node()), f32Of(t, kd.Node())
		if math.Float32bits(a[0]) != math.Float32bits(b[0]) {
			t.Errorf("amplitude %v: loss %v, CrossEntropy %v", amp, b[0], a[0])
		}
		ga, gb := f32Of(t, ceGrad), f32Of(t, kdGrad)
		for i := range ga {
			if math.Float32bits(ga[i]) != math.Float32bits(gb[i]) {
				t.Fatalf("amplitude %v: gradient %d = %v, CrossEntropy's %v", amp, i, gb[i], ga[i])
			}
		}
	}
}

// TestDistillationErrors: a run without teacher logits, with the wrong
// number of them or not set again since the last run fails naming the op;
// invalid temperatures and weights are refused by NewDistillation;
// SetTeacher on a plain cross-entropy panics.
func TestDistillationErrors(t *testing.T) {
	r := rand.New(rand.NewSource(73))
	loss, _, vm := buildDistill(t, normal(r, 2, 3), Distill{Temperature: 4, Alpha: 0.5})
	loss.SetLabels([]int{0, 1})
	wantErr(t, "unset", runVM(vm), "Distillation#", "teacher logits not set")
	loss.SetLabels([]int{0, 1})
	loss.SetTeacher(make([]float32, 5))
	wantErr(t, "short", runVM(vm), "Distillation#", "5 teacher logits, want 6 (2 x 3)")
	loss.SetLabels([]int{0, 1})
	loss.SetTeacher(make([]float32, 6))
	if err := runVM(vm); err != nil {
		t.Fatal(err)
	}
	loss.SetLabels([]int{0, 1})
	wantErr(t, "stale", runVM(vm), "Distillation#", "teacher logits not set")

	g := gorgonia.NewGraph()
	zn := testGraphNode(g, tensor.Float32, 2, 3)
	for _, d := range []Distill{{0, 0.5}, {-1, 0.5}, {math.NaN(), 0.5}, {math.Inf(1), 0.5}, {4, -0.1}, {4, 1.5}, {4, math.NaN()}} {
		_, err := NewDistillation(zn, d)
		wantErr(t, "bad config", err, "ops.NewDistillation", "distillation")
	}
	_, err := NewDistillation(testGraphNode(g, tensor.Float32, 3), Distill{Temperature: 4})
	wantErr(t, "1-D", err, "ops.NewDistillation", "want 2-D")

	ce, _, _ := buildCE(t, normal(r, 2, 3), false)
	defer func() {
		if recover() == nil {
			t.Error("SetTeacher on a plain cross-entropy did not panic")
		}
	}()
	ce.SetTeacher(make([]float32, 6))
}
