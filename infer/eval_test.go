package infer

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"qat/qmodel"
)

// TestEvaluate checks Evaluate against refRun sample by sample (codes,
// predictions, accuracy and the cross-entropy of the dequantized logits)
// and that its result does not depend on the batch size or the thread
// count: 41 samples split unevenly by batches of 7 and 3 and 7 threads.
func TestEvaluate(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	tn := testNets[1] // padded-strided: 3 channels, 3 classes
	for _, mode := range []qmodel.Requant{qmodel.RequantFloat, qmodel.RequantFixed} {
		m := randomModel(t, rng, tn.in, tn.specs, 8, 8, mode)
		net, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		const n = 41
		in, classes := net.InputLen(), net.Classes()
		pixels := make([]uint8, n*in)
		for i := range pixels {
			pixels[i] = uint8(rng.IntN(256))
		}
		labels := make([]uint8, n)
		for i := range labels {
			labels[i] = uint8(rng.IntN(classes))
		}
		var wantCodes []uint8
		correct, loss := 0, 0.0
		q := net.OutputQuant()
		for s := range n {
			codes := refRun(m, pixels[s*in:(s+1)*in])
			wantCodes = append(wantCodes, codes...)
			best := 0
			for j, c := range codes {
				if c > codes[best] {
					best = j
				}
			}
			if best == int(labels[s]) {
				correct++
			}
			var sum float64
			for _, c := range codes {
				sum += math.Exp(float64(float32(int32(c)-q.ZeroPoint) * q.Scale))
			}
			loss += math.Log(sum) - float64(float32(int32(codes[labels[s]])-q.ZeroPoint)*q.Scale)
		}
		loss /= n
		for _, cfg := range []EvalConfig{{}, {Batch: 7, Threads: 3}, {Batch: 41, Threads: 7}, {Batch: 100, Threads: 2}, {Batch: 1, Threads: 1}} {
			name := fmt.Sprintf("%s/batch=%d/threads=%d", mode, cfg.Batch, cfg.Threads)
			cfg.KeepCodes = true
			res, err := Evaluate(net, pixels, labels, cfg)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if res.N != n || res.Correct != correct || res.Accuracy != float64(correct)/n {
				t.Errorf("%s: n %d, correct %d, accuracy %v; want %d, %d", name, res.N, res.Correct, res.Accuracy, n, correct)
			}
			if math.Abs(res.Loss-loss) > 1e-9*math.Abs(loss) {
				t.Errorf("%s: loss %v, want %v", name, res.Loss, loss)
			}
			if !bytes.Equal(res.Codes, wantCodes) {
				t.Errorf("%s: codes differ from the reference", name)
			}
			cfg.KeepCodes = false
			again, err := Evaluate(net, pixels, labels, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if again.Codes != nil || again.Loss != res.Loss || again.Correct != res.Correct {
				t.Errorf("%s without codes: codes %d, loss %v, correct %d; want none, %v, %d", name, len(again.Codes), again.Loss, again.Correct, res.Loss, res.Correct)
			}
		}
	}
}

func TestEvaluateEmptyAndErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	tn := testNets[1]
	net, err := New(randomModel(t, rng, tn.in, tn.specs, 8, 8, qmodel.RequantFloat))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Evaluate(net, nil, nil, EvalConfig{KeepCodes: true})
	if err != nil || res.N != 0 || res.Accuracy != 0 || res.Loss != 0 || len(res.Codes) != 0 {
		t.Errorf("no samples: %+v, %v; want an empty result", res, err)
	}
	in := net.InputLen()
	two := make([]uint8, 2*in)
	for _, c := range []struct {
		pixels, labels []uint8
		cfg            EvalConfig
		want           string
	}{
		{two, []uint8{0, 1}, EvalConfig{Batch: -1}, "evaluation batch -1 is negative"},
		{two, []uint8{0, 1}, EvalConfig{Threads: -2}, "evaluation threads -2 is negative"},
		{two[:2*in-1], []uint8{0, 1}, EvalConfig{}, fmt.Sprintf("model test takes [3 13 11] inputs, %d pixels a sample: %d pixels are not 2 samples", in, 2*in-1)},
		{two, []uint8{0}, EvalConfig{}, "are not 1 samples"},
		{two, []uint8{0, 3}, EvalConfig{}, "label 3 of sample 1: model test has 3 classes"},
	} {
		if _, err := Evaluate(net, c.pixels, c.labels, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}
