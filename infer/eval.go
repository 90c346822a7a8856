package infer

import (
	"fmt"
	"math"
	"time"

	"qat/internal/metrics"
)

// EvalConfig configures Evaluate. The zero value evaluates in batches of
// 250 on the calling goroutine and keeps no codes.
type EvalConfig struct {
	// Batch is the number of samples run at once; 0 means 250.
	Batch int
	// Threads is the number of goroutines each batch is split across
	// (Net.NewParallel); 0 means 1. It changes nothing in the result
	// but SamplesPerSec.
	Threads int
	// KeepCodes keeps every sample's outputs: their codes in
	// Result.Codes, or for a Net with float outputs (Net.FloatOutput)
	// their logits in Result.Logits.
	KeepCodes bool
}

// Result is a Net's evaluation on labelled samples.
type Result struct {
	// N is the number of samples and Correct the number whose predicted
	// class (Net.Argmax) is their label.
	N, Correct int
	// Accuracy is Correct/N.
	Accuracy float64
	// Correct5 counts the samples whose label is among their five highest
	// output codes (ties by class index: the ranking of package
	// internal/metrics, whose top 1 is Net.Argmax); Top5 is Correct5/N.
	Correct5 int
	Top5     float64
	// Loss is the mean cross-entropy of the dequantized logits
	// (Net.Dequantize), computed in float64.
	Loss float64
	// SamplesPerSec is the evaluation's throughput.
	SamplesPerSec float64
	// Codes holds the [N, classes] output codes in sample order when
	// EvalConfig.KeepCodes is set; Logits the [N, classes] float32
	// outputs instead for a Net with float outputs.
	Codes  []uint8
	Logits []float32
}

// Evaluate runs net over len(labels) samples whose pixels (NCHW, values
// 0..255, as a deployed model gets them and Parallel.Run takes them) lie
// one after another in pixels, and returns its accuracy on their labels
// and the mean cross-entropy of its dequantized logits. Every label must
// be below net.Classes().
func Evaluate(net *Net, pixels, labels []uint8, cfg EvalConfig) (Result, error) {
	batch, threads := cfg.Batch, cfg.Threads
	if batch == 0 {
		batch = 250
	}
	if threads == 0 {
		threads = 1
	}
	if batch < 0 {
		return Result{}, fmt.Errorf("evaluation batch %d is negative", batch)
	}
	if threads < 0 {
		return Result{}, fmt.Errorf("evaluation threads %d is negative", threads)
	}
	n, in, classes := len(labels), net.InputLen(), net.Classes()
	if len(pixels) != n*in {
		return Result{}, fmt.Errorf("model %s takes %v inputs, %d pixels a sample: %d pixels are not %d samples",
			net.model.Name, net.model.Input, in, len(pixels), n)
	}
	for i, y := range labels {
		if int(y) >= classes {
			return Result{}, fmt.Errorf("label %d of sample %d: model %s has %d classes", y, i, net.model.Name, classes)
		}
	}
	p := net.NewParallel(batch, threads)
	res := Result{N: n}
	float := net.FloatOutput()
	switch {
	case cfg.KeepCodes && float:
		res.Logits = make([]float32, 0, n*classes)
	case cfg.KeepCodes:
		res.Codes = make([]uint8, 0, n*classes)
	}
	y := make([]int, batch)
	logits := make([]float32, batch*classes)
	var lossSum float64
	start := time.Now()
	for lo := 0; lo < n; lo += batch {
		b := min(batch, n-lo)
		var c []int
		if float {
			// The ranking of float scores is the codes' (ties by index),
			// NaN first.
			logits = p.RunFloat(pixels[lo*in : (lo+b)*in])
			c = metrics.CorrectAt(logits, intLabels(y, labels[lo:lo+b]), classes, 1, 5)
			if cfg.KeepCodes {
				res.Logits = append(res.Logits, logits...)
			}
		} else {
			codes := p.Run(pixels[lo*in : (lo+b)*in])
			net.Dequantize(logits[:b*classes], codes)
			c = metrics.CorrectAt(codes, intLabels(y, labels[lo:lo+b]), classes, 1, 5)
			if cfg.KeepCodes {
				res.Codes = append(res.Codes, codes...)
			}
		}
		for i := range b {
			lossSum += crossEntropy(logits[i*classes:(i+1)*classes], y[i])
		}
		res.Correct += c[0]
		res.Correct5 += c[1]
	}
	if n > 0 {
		res.Accuracy = float64(res.Correct) / float64(n)
		res.Top5 = float64(res.Correct5) / float64(n)
		res.Loss = lossSum / float64(n)
		res.SamplesPerSec = float64(n) / time.Since(start).Seconds()
	}
	return res, nil
}

// intLabels writes labels into y as ints and returns y[:len(labels)].
func intLabels(y []int, labels []uint8) []int {
	for i, l := range labels {
		y[i] = int(l)
	}
	return y[:len(labels)]
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
