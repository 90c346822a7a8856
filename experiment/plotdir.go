package experiment

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"qat/data"
	"qat/layers"
	"qat/plots"
	"qat/qmodel"
	"qat/safetensors"
	"qat/train"
)

// CaptureSamples is the number of test samples (the first of the test
// split) whose activations the histograms of PlotDir show.
const CaptureSamples = 256

// Suffixes of the files PlotDir reads; a file's label is its name without
// the suffix.
const (
	MetricsSuffix    = ".metrics.jsonl"
	CheckpointSuffix = ".safetensors"
)

// PlotDir draws the figures of a run directory into dir/plots and returns
// the paths written (with those written before an error, if any):
//   - plots.Curves over every *.metrics.jsonl file of dir, each run
//     labelled by its file name without ".metrics.jsonl";
//   - plots.QuantError and plots.QuantParams of every run with quantizer
//     records, prefixed with its label (each only where it has something
//     to draw: QuantParams where some param changes);
//   - for every quantized checkpoint *.safetensors, with label its file
//     name without the suffix, plots.Histograms of the quantizers' tensors
//     (layers.Model.CaptureQuantInputs) on CaptureSamples test samples of
//     the checkpoint's dataset (the embedded MNIST sample where that is
//     missing): <label>_hist_<layer>_weight (the weight as its quantizer
//     sees it, after BN folding), <label>_hist_<layer>_act (the layer's
//     output before its activation quantizer) and <label>_hist_input (the
//     normalised input). Without test data that fits the model only the
//     weight histograms are drawn. Float checkpoints, int8 model files
//     and other safetensors files are skipped.
//
// A directory without metrics files, or whose metrics hold no records, is
// an error wrapping plots.ErrNoData; a damaged metrics file or checkpoint,
// or a quantizer record of an unknown role, is an error naming the file.
func PlotDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plot run directory: %w", err)
	}
	var runs []plots.Run
	var checkpoints []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		if label, ok := strings.CutSuffix(name, MetricsSuffix); ok {
			r, err := readRun(filepath.Join(dir, name), label)
			if err != nil {
				return nil, err
			}
			runs = append(runs, r)
		} else if strings.HasSuffix(name, CheckpointSuffix) {
			checkpoints = append(checkpoints, filepath.Join(dir, name))
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("run directory %s has no *%s files: %w", dir, MetricsSuffix, plots.ErrNoData)
	}
	out := filepath.Join(dir, "plots")
	paths, err := plots.Curves(out, runs)
	if err != nil {
		return paths, fmt.Errorf("run directory %s: %w", dir, err)
	}
	for _, r := range runs {
		if !hasQuant(r) {
			continue
		}
		for _, draw := range []func(string, plots.Run) ([]string, error){plots.QuantError, plots.QuantParams} {
			ps, err := draw(out, r)
			paths = append(paths, ps...)
			if err != nil && !errors.Is(err, plots.ErrNoData) {
				return paths, err
			}
		}
	}
	for _, path := range checkpoints {
		ps, err := checkpointHistograms(out, path)
		paths = append(paths, ps...)
		if err != nil {
			return paths, err
		}
	}
	return paths, nil
}

func hasQuant(r plots.Run) bool {
	for _, s := range r.Steps {
		if len(s.Quant) > 0 {
			return true
		}
	}
	return false
}

// readRun reads a JSONL metrics file (train.ReadMetricsFile) into a
// plots.Run labelled label.
func readRun(path, label string) (plots.Run, error) {
	steps, epochs, err := train.ReadMetricsFile(path)
	if err != nil {
		return plots.Run{}, err
	}
	r := plots.Run{Label: label, Steps: make([]plots.Step, len(steps)), Epochs: make([]plots.Epoch, len(epochs))}
	for i, s := range steps {
		r.Steps[i] = plots.Step{Step: s.Step, Loss: s.Loss, Accuracy: s.Accuracy}
		for _, q := range s.Quant {
			role, err := plotRole(q.Role)
			if err != nil {
				return plots.Run{}, fmt.Errorf("%s: step %d: quantizer %s: %w", path, s.Step, q.Name, err)
			}
			sqnr := math.Inf(1) // no error
			if q.SQNR != nil {
				sqnr = *q.SQNR
			}
			r.Steps[i].Quant = append(r.Steps[i].Quant, plots.Quantizer{Name: q.Name, Role: role,
				Scale: q.Scale, ZeroPoint: q.ZeroPoint, MSE: q.MSE, SQNR: sqnr})
		}
	}
	for i, e := range epochs {
		r.Epochs[i] = plots.Epoch{Step: e.Step, ValLoss: e.ValLoss, ValAccuracy: e.ValAccuracy}
	}
	return r, nil
}

// plotRole returns the plots.Role of a quantizer role of package layers.
func plotRole(role string) (plots.Role, error) {
	switch role {
	case layers.RoleAct:
		return plots.RoleAct, nil
	case layers.RoleWeight:
		return plots.RoleWeight, nil
	case layers.RoleInput:
		return plots.RoleInput, nil
	}
	return 0, fmt.Errorf("unknown quantizer role %q", role)
}

// checkpointHistograms draws the quantizer histograms of the checkpoint at
// path into out; it draws nothing for a float checkpoint or a file that is
// not a checkpoint.
func checkpointHistograms(out, path string) ([]string, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if qmodel.IsModelFile(f) || f.Metadata[train.MetaFormat] == "" {
		return nil, nil
	}
	ck, err := train.FromFile(f)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	m := ck.Model
	if !m.Quantized() {
		return nil, nil
	}
	x, source := testBatch(ck)
	caps, err := m.CaptureQuantInputs(x)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	pm := plots.Model{Label: strings.TrimSuffix(filepath.Base(path), CheckpointSuffix), Source: source}
	for _, c := range caps {
		role, err := plotRole(c.Role)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: quantizer %s: %w", path, c.Name, err)
		}
		pm.Tensors = append(pm.Tensors, plots.QuantTensor{Name: c.Name, Layer: c.Layer, Role: role,
			Folded: role == plots.RoleWeight && folded(m, c.Layer),
			Tensor: plots.Tensor{Values: c.Values, Shape: c.Shape, Params: c.Params}})
	}
	paths, err := plots.Histograms(out, pm)
	if err != nil {
		return paths, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return paths, nil
}

// folded reports whether layer's weight is scaled by its BN before
// quantization.
func folded(m *layers.Model, layer string) bool {
	for _, l := range m.Spec.Nodes {
		if l.Name == layer {
			return l.BN != "" && m.Folded()
		}
	}
	return false
}

// testBatch returns the first CaptureSamples test samples of the
// checkpoint's dataset, or of the embedded MNIST sample if that is not
// available, normalised as the checkpoint says, and what they are, e.g.
// "256 samples of mnist test". If neither fits the model's input it
// returns one zero sample and "": weight quantizers see their weights
// whatever the input.
func testBatch(ck *train.Checkpoint) ([]float32, string) {
	in := ck.Model.Spec.Input
	size := in[0] * in[1] * in[2]
	for _, spec := range []string{ck.Dataset, data.SourceEmbedded} {
		if spec == "" {
			continue
		}
		src, err := data.ResolveSource(spec)
		if err != nil {
			continue
		}
		ds, err := src.Load("test")
		if err != nil || in[0] != ds.C || in[1] != ds.H || in[2] != ds.W || ds.N == 0 {
			continue
		}
		n := min(CaptureSamples, ds.N)
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		x := make([]float32, n*size)
		ds.Fill(x, make([]int, n), idx, ck.Norm)
		return x, fmt.Sprintf("%d samples of %s", n, ds.Name)
	}
	return make([]float32, size), ""
}
