package autobits

import (
	"fmt"
	"runtime"
	"slices"
	"time"

	"qat/data"
	"qat/deploy"
	"qat/infer"
	"qat/layers"
	"qat/ptq"
	"qat/qmodel"
	"qat/train"
)

// PTQ returns the int8 model of assignment a of the float checkpoint at
// floatPath, quantized post-training as `qat calibrate --quant-config`
// does with a.QuantConfigJSON(): min/max observers for outputs and the
// input, batches (0: 32) training batches of 128 from trainSet
// (ptq.Calibrate), then frozen with float requantization (deploy.Freeze),
// the default of `qat export`.
func PTQ(floatPath string, a Assignment, trainSet *data.Dataset, batches int) (*qmodel.Model, error) {
	ck, err := train.LoadCheckpoint(floatPath)
	if err != nil {
		return nil, fmt.Errorf("autobits: %w", err)
	}
	if ck.Model.Quantized() {
		return nil, fmt.Errorf("autobits: %s is quantized; give its float checkpoint", floatPath)
	}
	qc := a.QuantConfig()
	qc.Act.Observer, qc.Input.Observer = "minmax", "minmax"
	for _, l := range qc.Layers {
		l.Act.Observer = "minmax"
	}
	if err := ck.Model.Quantize(qc); err != nil {
		return nil, fmt.Errorf("autobits: %s: %w", a, err)
	}
	if _, err := ptq.Calibrate(ck.Model, trainSet, train.CalibrateConfig{Batches: batches, Norm: ck.Norm}); err != nil {
		return nil, fmt.Errorf("autobits: %s: %w", a, err)
	}
	qm, err := deploy.Freeze(ck.Model, ck.Norm, qmodel.RequantFloat)
	if err != nil {
		return nil, fmt.Errorf("autobits: %s: %w", a, err)
	}
	return qm, nil
}

// Bytes returns the size of m's int8 model file: what qmodel.Write
// writes, counted, not stored.
func Bytes(m *qmodel.Model) (int64, error) {
	var c counter
	if err := qmodel.Write(&c, m); err != nil {
		return 0, fmt.Errorf("autobits: %w", err)
	}
	return int64(c), nil
}

// counter is an io.Writer that counts what it is given.
type counter int64

func (c *counter) Write(b []byte) (int, error) {
	*c += counter(len(b))
	return len(b), nil
}

// Latency returns the median, in milliseconds, of runs timed runs of m on
// the int8 runtime over pixels (whole samples, NCHW, values 0..255, as
// infer.Runner.Pixels takes them: input quantization included), each one
// batch of all the samples on one infer.Runner on the calling goroutine,
// its OS thread locked, after one untimed run; and every run's time.
func Latency(m *qmodel.Model, pixels []uint8, runs int) (float64, []float64, error) {
	ms, err := interleaved([]*qmodel.Model{m}, pixels, runs)
	if err != nil {
		return 0, nil, err
	}
	return median(ms[0]), ms[0], nil
}

// interleaved times runs runs of each of models as Latency does, in
// turn (the first model's first run, the second's, ..., the first's
// second run), so that all see the same load, and returns each model's
// run times in milliseconds.
func interleaved(models []*qmodel.Model, pixels []uint8, runs int) ([][]float64, error) {
	if runs < 1 {
		return nil, fmt.Errorf("autobits: %d latency runs: want at least 1", runs)
	}
	runners := make([]*infer.Runner, len(models))
	for i, m := range models {
		net, err := infer.New(m)
		if err != nil {
			return nil, fmt.Errorf("autobits: %w", err)
		}
		if len(pixels) == 0 || len(pixels)%net.InputLen() != 0 {
			return nil, fmt.Errorf("autobits: %d pixels are not whole samples of %d", len(pixels), net.InputLen())
		}
		runners[i] = net.NewRunner(len(pixels) / net.InputLen())
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, r := range runners {
		r.Run(r.Pixels(pixels))
	}
	runtime.GC()
	ms := make([][]float64, len(models))
	for range runs {
		for i, r := range runners {
			start := time.Now()
			r.Run(r.Pixels(pixels))
			ms[i] = append(ms[i], float64(time.Since(start).Nanoseconds())/1e6)
		}
	}
	return ms, nil
}

// median returns the median of v (the mean of the middle two for an
// even count), leaving v as it is.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// evaluate returns m's accuracy on test on the int8 runtime, which
// equals the fake-quant accuracy of the model it was frozen from.
func evaluate(m *qmodel.Model, test *data.Dataset) (float64, error) {
	net, err := infer.New(m)
	if err != nil {
		return 0, fmt.Errorf("autobits: %w", err)
	}
	ev, err := infer.Evaluate(net, test.Images, test.Labels, infer.EvalConfig{Threads: layers.Threads()})
	if err != nil {
		return 0, fmt.Errorf("autobits: %w", err)
	}
	return ev.Accuracy, nil
}
