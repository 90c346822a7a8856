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

// bnStats64 returns the per-channel mean and biased variance of x
// [n, c, inner].
func bnStats64(x []float64, n, c, inner int) (mean, variance []float64) {
	mean, variance = make([]float64, c), make([]float64, c)
	cnt := float64(n * inner)
	for i, v := range x {
		mean[(i/inner)%c] += v / cnt
	}
	for i, v := range x {
		ch := (i / inner) % c
		variance[ch] += (v - mean[ch]) * (v - mean[ch]) / cnt
	}
	return mean, variance
}

// bnApply64 is gamma*(x-mean)/sqrt(var+eps)+beta with the given statistics.
func bnApply64(x, gamma, beta, mean, variance []float64, c, inner int, eps float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		ch := (i / inner) % c
		y[i] = gamma[ch]*(v-mean[ch])/math.Sqrt(variance[ch]+eps) + beta[ch]
	}
	return y
}

// bnTrain64 is training-mode batch norm in float64 (batch statistics).
func bnTrain64(x, gamma, beta []float64, n, c, inner int, eps float64) []float64 {
	mean, variance := bnStats64(x, n, c, inner)
	return bnApply64(x, gamma, beta, mean, variance, c, inner, eps)
}

func to64s(s []float32) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// TestBatchNormHand: one channel, x = 1, 2, 3, 4 as [4, 1]: mean 2.5,
// biased variance 1.25, unbiased 5/3. With gamma 2, beta 1 and eps 1e-5,
// y = 2*(x-2.5)/sqrt(1.25+1e-5)+1; the running mean becomes
// 0.9*0 + 0.1*2.5 = 0.25 and the running variance 0.9*1 + 0.1*5/3 =
// 1.0666667, as torch.nn.BatchNorm1d(1) gives after one training call.
func TestBatchNormHand(t *testing.T) {
	bn, err := NewBatchNorm(1, BatchNormConfig{})
	if err != nil {
		t.Fatal(err)
	}
	x := dense64{[]int{4, 1}, []float64{1, 2, 3, 4}}
	og := buildOp(t, 0, false, []dense64{x, {[]int{1}, []float64{2}}, {[]int{1}, []float64{1}}}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		return bn.Apply(in[0], in[1], in[2])
	})
	og.run(t)
	s := math.Sqrt(1.25 + 1e-5)
	want := []float64{2*-1.5/s + 1, 2*-0.5/s + 1, 2*0.5/s + 1, 2*1.5/s + 1}
	if err := gradcheck.Normwise(f32Of(t, og.y), want, 1e-6); err != nil {
		t.Error(err)
	}
	if bn.RunningMean[0] != 0.25 || bn.RunningVar[0] != float32(0.9+0.1*5.0/3) || bn.NumBatchesTracked != 1 {
		t.Errorf("running mean %v, var %v, batches %d; want 0.25, %v, 1", bn.RunningMean, bn.RunningVar, bn.NumBatchesTracked, float32(0.9+0.1*5.0/3))
	}
	if bn.Eps() != 1e-5 {
		t.Errorf("Eps() = %v", bn.Eps())
	}
}

type bnCase struct{ shape []int }

func (c bnCase) dims() (n, ch, inner int) { return c.shape[0], c.shape[1], size(c.shape[2:]) }

var bnCases = []bnCase{
	{[]int{3, 5, 4, 3}},
	{[]int{7, 4}},
	{[]int{2, 3, 5}},
	{[]int{1, 2, 3, 3}}, // one sample, 9 values a channel
	{[]int{2, 1, 1, 1}}, // 2 values a channel
}

// TestBatchNormTrain checks, in training mode, the output and the
// gradients of x, gamma and beta against bnTrain64 and finite differences,
// and the running statistics (unbiased variance, momentum 0.3) and
// NumBatchesTracked over two runs of the same graph.
func TestBatchNormTrain(t *testing.T) {
	r := rand.New(rand.NewSource(50))
	for _, c := range bnCases {
		t.Run(fmt.Sprint(c.shape), func(t *testing.T) {
			n, ch, inner := c.dims()
			bn, err := NewBatchNorm(ch, BatchNormConfig{Momentum: 0.3, Eps: 1e-3})
			if err != nil {
				t.Fatal(err)
			}
			x, gamma, beta := normal(r, c.shape...), normal(r, ch), normal(r, ch)
			for i := range x.data {
				x.data[i] = float64(float32(x.data[i]*2 + 0.5))
			}
			ins := []dense64{x, gamma, beta}
			og := buildOp(t, 51, true, ins, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
				return bn.Apply(in[0], in[1], in[2])
			})
			f := func(p [][]float64) []float64 { return bnTrain64(p[0], p[1], p[2], n, ch, inner, 1e-3) }
			mean, variance := bnStats64(x.data, n, ch, inner)
			cnt := float64(n * inner)
			rm, rv := make([]float64, ch), make([]float64, ch)
			for i := range rv {
				rv[i] = 1
			}
			for run := 1; run <= 2; run++ {
				checkGrads(t, og, f, ins, 1e-4, 1e-3)
				for i := range rm {
					rm[i] = float64(float32(0.7*rm[i] + 0.3*mean[i]))
					rv[i] = float64(float32(0.7*rv[i] + 0.3*variance[i]*cnt/(cnt-1)))
				}
				if err := gradcheck.Normwise(bn.RunningMean, rm, 1e-6); err != nil {
					t.Errorf("run %d: running mean: %v", run, err)
				}
				if err := gradcheck.Normwise(bn.RunningVar, rv, 1e-6); err != nil {
					t.Errorf("run %d: running var: %v", run, err)
				}
				if bn.NumBatchesTracked != int64(run) {
					t.Errorf("run %d: NumBatchesTracked = %d", run, bn.NumBatchesTracked)
				}
			}
		})
	}
}

// TestBatchNormModeSwitch runs one graph in training mode, then with
// Training = false (frozen statistics, as QAT freezes BN), then in
// training mode again, checking values, gradients and which runs update
// the running statistics. In evaluation mode the output is affine in x,
// with dx = dy*gamma/sqrt(rv+eps).
func TestBatchNormModeSwitch(t *testing.T) {
	const n, ch, h, w = 4, 3, 3, 2
	r := rand.New(rand.NewSource(52))
	bn, err := NewBatchNorm(ch, BatchNormConfig{})
	if err != nil {
		t.Fatal(err)
	}
	x, gamma, beta := normal(r, n, ch, h, w), normal(r, ch), normal(r, ch)
	ins := []dense64{x, gamma, beta}
	og := buildOp(t, 53, true, ins, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		return bn.Apply(in[0], in[1], in[2])
	})
	train := func(p [][]float64) []float64 { return bnTrain64(p[0], p[1], p[2], n, ch, h*w, 1e-5) }

	checkGrads(t, og, train, ins, 1e-4, 1e-3)
	rm, rv := append([]float32(nil), bn.RunningMean...), append([]float32(nil), bn.RunningVar...)

	bn.Training = false
	eval := func(p [][]float64) []float64 {
		return bnApply64(p[0], p[1], p[2], to64s(rm), to64s(rv), ch, h*w, 1e-5)
	}
	for run := 0; run < 2; run++ {
		checkGrads(t, og, eval, ins, 1e-5, 1e-3)
		if bn.NumBatchesTracked != 1 || fmt.Sprint(bn.RunningMean, bn.RunningVar) != fmt.Sprint(rm, rv) {
			t.Fatalf("evaluation run %d changed the running statistics", run)
		}
	}
	dx := f32Of(t, og.grads[0])
	for i := range dx {
		c := (i / (h * w)) % ch
		want := og.r[i] * float64(float32(gamma.data[c])) / math.Sqrt(float64(rv[c])+1e-5)
		if math.Abs(float64(dx[i])-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Fatalf("eval dx[%d] = %v, want dy*gamma*invstd = %v", i, dx[i], want)
		}
	}

	bn.Training = true
	checkGrads(t, og, train, ins, 1e-4, 1e-3)
	if bn.NumBatchesTracked != 2 {
		t.Errorf("NumBatchesTracked = %d after a second training run", bn.NumBatchesTracked)
	}
}

// TestBatchNormSharedState applies one BatchNorm in two graphs, a training
// one and an evaluation one, as a model builds separate train and eval
// graphs: the training graph's updates are what the evaluation graph uses.
func TestBatchNormSharedState(t *testing.T) {
	const n, ch = 6, 2
	r := rand.New(rand.NewSource(54))
	bn, err := NewBatchNorm(ch, BatchNormConfig{})
	if err != nil {
		t.Fatal(err)
	}
	x, gamma, beta := normal(r, n, ch), normal(r, ch), normal(r, ch)
	build := func(in []*gorgonia.Node) (*gorgonia.Node, error) { return bn.Apply(in[0], in[1], in[2]) }
	trainG := buildOp(t, 55, true, []dense64{x, gamma, beta}, build)
	evalG := buildOp(t, 56, false, []dense64{x, gamma, beta}, build)
	for i := 0; i < 3; i++ {
		bn.Training = true
		trainG.run(t)
	}
	bn.Training = false
	evalG.run(t)
	want := bnApply64(x.data, gamma.data, beta.data, to64s(bn.RunningMean), to64s(bn.RunningVar), ch, 1, 1e-5)
	if err := gradcheck.Normwise(f32Of(t, evalG.y), want, 1e-5); err != nil {
		t.Error(err)
	}
	if bn.NumBatchesTracked != 3 {
		t.Errorf("NumBatchesTracked = %d", bn.NumBatchesTracked)
	}
}

func TestBatchNormErrors(t *testing.T) {
	for _, c := range []struct {
		ch   int
		cfg  BatchNormConfig
		want string
	}{
		{0, BatchNormConfig{}, "0 channels"},
		{2, BatchNormConfig{Momentum: 1.5}, "momentum 1.5"},
		{2, BatchNormConfig{Momentum: -0.1}, "momentum -0.1"},
		{2, BatchNormConfig{Eps: -1}, "eps -1"},
		{2, BatchNormConfig{Eps: float32(math.Inf(1))}, "eps +Inf"},
	} {
		_, err := NewBatchNorm(c.ch, c.cfg)
		wantErr(t, c.want, err, "ops.NewBatchNorm", c.want)
	}
	bn, err := NewBatchNorm(3, BatchNormConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g := gorgonia.NewGraph()
	x := testGraphNode(g, tensor.Float32, 2, 3, 4, 4)
	v3 := testGraphNode(g, tensor.Float32, 3)
	for _, c := range []struct {
		name           string
		x, gamma, beta *gorgonia.Node
		want           string
	}{
		{"channels", testGraphNode(g, tensor.Float32, 2, 4, 4, 4), v3, v3, "4 channels, BatchNorm has 3"},
		{"1-D x", testGraphNode(g, tensor.Float32, 3), v3, v3, "want [N, C]"},
		{"gamma", x, testGraphNode(g, tensor.Float32, 2), v3, "gamma shape"},
		{"beta", x, v3, testGraphNode(g, tensor.Float32, 4), "beta shape"},
		{"nil beta", x, v3, nil, "nil beta"},
		{"float64 x", testGraphNode(g, tensor.Float64, 2, 3), v3, v3, "want float32"},
	} {
		_, err := bn.Apply(c.x, c.gamma, c.beta)
		wantErr(t, c.name, err, "ops.BatchNorm.Apply", c.want)
	}
	_, err = (&BatchNorm{}).Apply(x, v3, v3)
	wantErr(t, "zero BatchNorm", err, "NewBatchNorm")

	// One value a channel cannot be normalised in training mode (PyTorch
	// raises the same), but can in evaluation mode.
	r := rand.New(rand.NewSource(57))
	og := buildOp(t, 0, false, []dense64{normal(r, 1, 3), normal(r, 3), normal(r, 3)}, func(in []*gorgonia.Node) (*gorgonia.Node, error) {
		return bn.Apply(in[0], in[1], in[2])
	})
	err = og.tryRun()
	wantErr(t, "n = 1", err, "BatchNorm#", "more than 1 value per channel")
	bn.Training = false
	if err := og.tryRun(); err != nil {
		t.Errorf("n = 1 in evaluation mode: %v", err)
	}
	bn.RunningMean = bn.RunningMean[:2]
	err = og.tryRun()
	wantErr(t, "running mean length", err, "BatchNorm#", "running statistics")

	// Gradient ops check the record and their inputs.
	op := newBN(bn)
	st := newBNStats(op)
	_, err = st.Do(normal(r, 2, 3).f32(), normal(r, 2, 3).f32(), normal(r, 2, 3).f32())
	wantErr(t, "before forward", err, "BatchNormGradStats#", "before the forward")
	op.rec.ran, op.rec.shape = true, tensor.Shape{2, 3}
	_, err = st.Do(normal(r, 2, 3).f32(), normal(r, 3, 2).f32(), normal(r, 2, 3).f32())
	wantErr(t, "dY shape", err, "BatchNormGradStats#", "output gradient")
	gx := newBNGradX(op)
	_, err = gx.Do(normal(r, 2, 3).f32(), normal(r, 3).f32(), normal(r, 2, 3).f32(), normal(r, 3, 3).f32())
	wantErr(t, "stats shape", err, "BatchNormGradX#", "statistics")
}

// TestBatchNormMomentumDecimal: float32(0.1) is used as PyTorch's double
// 0.1, not 0.100000001490116.
func TestBatchNormMomentumDecimal(t *testing.T) {
	bn, err := NewBatchNorm(1, BatchNormConfig{Momentum: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if bn.momentum != 0.1 || bn.eps != 1e-5 {
		t.Errorf("momentum %v, eps %v", bn.momentum, bn.eps)
	}
}
