package train

import (
	"fmt"
	"math"
	"time"

	"qat/data"
	"qat/infer"
	"qat/layers"
)

// Int8Result is an int8 model's evaluation: the EvalResult fields, the
// loss on the dequantized logits, and the output codes when kept.
type Int8Result struct {
	EvalResult
	// Codes holds [N, classes] output codes in dataset order when
	// requested.
	Codes []uint8 `json:"-"`
}

// EvaluateInt8 runs the int8 model net over ds in batches of batch
// samples (0 means 250), from the raw pixels as a deployed model gets
// them, and returns accuracy and the mean cross-entropy of the
// dequantized logits. keepCodes keeps the output codes. Each batch is
// split by samples across layers.Threads() goroutines (infer.Parallel),
// which changes nothing in the result.
func EvaluateInt8(net *infer.Net, ds *data.Dataset, batch int, keepCodes bool) (Int8Result, error) {
	if batch == 0 {
		batch = 250
	}
	if batch < 0 {
		return Int8Result{}, fmt.Errorf("evaluation batch %d is negative", batch)
	}
	m := net.Model()
	if ds.H*ds.W != net.InputLen() || m.Input[0] != 1 {
		return Int8Result{}, fmt.Errorf("model %s takes %v inputs, %s has %dx%d images", m.Name, m.Input, ds.Name, ds.H, ds.W)
	}
	if ds.Classes > net.Classes() {
		return Int8Result{}, fmt.Errorf("model %s has %d classes, %s has %d", m.Name, net.Classes(), ds.Name, ds.Classes)
	}
	classes := net.Classes()
	p := net.NewParallel(batch, layers.Threads())
	res := Int8Result{EvalResult: EvalResult{N: ds.N}}
	if keepCodes {
		res.Codes = make([]uint8, 0, ds.N*classes)
	}
	pred := make([]int, batch)
	logits := make([]float32, batch*classes)
	var lossSum float64
	start := time.Now()
	for lo := 0; lo < ds.N; lo += batch {
		n := min(batch, ds.N-lo)
		codes := p.Run(ds.Images[lo*ds.H*ds.W : (lo+n)*ds.H*ds.W])
		net.Argmax(pred[:n], codes)
		net.Dequantize(logits[:n*classes], codes)
		for i, p := range pred[:n] {
			y := int(ds.Labels[lo+i])
			if p == y {
				res.Correct++
			}
			lossSum += crossEntropy(logits[i*classes:(i+1)*classes], y)
		}
		if keepCodes {
			res.Codes = append(res.Codes, codes...)
		}
	}
	if ds.N > 0 {
		res.Accuracy = float64(res.Correct) / float64(ds.N)
		res.Loss = lossSum / float64(ds.N)
		res.SamplesPerSec = float64(ds.N) / time.Since(start).Seconds()
	}
	return res, nil
}

// crossEntropy is -log softmax(z)[y], computed stably in float64.
func crossEntropy(z []float32, y int) float64 {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = max(mx, float64(v))
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v) - mx)
	}
	return math.Log(s) + mx - float64(z[y])
}
