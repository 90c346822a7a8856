package plots

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"qat/data"
	"qat/layers"
	"qat/qmodel"
	"qat/safetensors"
	"qat/train"
)

// CaptureSamples is the number of test samples (the first of the test
// split) whose activations the histograms of RunDir show.
const CaptureSamples = 256

// Suffixes of the files RunDir reads; a file's label is its name without
// the suffix.
const (
	MetricsSuffix    = ".metrics.jsonl"
	CheckpointSuffix = ".safetensors"
)

// RunDir draws the figures of a run directory into dir/plots and returns
// the paths written (with those written before an error, if any):
//   - Curves over every *.metrics.jsonl file of dir, each run labelled by
//     its file name without ".metrics.jsonl";
//   - QuantError and QuantParams of every run with quantizer records,
//     prefixed with its label (each only where it has something to draw:
//     QuantParams where some param changes);
//   - for every quantized checkpoint *.safetensors, with label its file name
//     without the suffix, one Histogram per quantizer, from
//     CaptureQuantInputs on CaptureSamples test samples of the checkpoint's
//     dataset (the embedded MNIST sample where that is missing):
//     <label>_hist_<layer>_weight (the weight as its quantizer sees it,
//     after BN folding), <label>_hist_<layer>_act (the layer's output
//     before its activation quantizer) and <label>_hist_input (the
//     normalised input). Without test data that fits the model only the
//     weight histograms are drawn. Float checkpoints, int8 model files
//     and other safetensors files are skipped.
//
// A directory without metrics files, or whose metrics hold no records, is
// an error wrapping ErrNoData.
func RunDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plot run directory: %w", err)
	}
	var runs []Run
	var checkpoints []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		if label, ok := strings.CutSuffix(name, MetricsSuffix); ok {
			r, err := LoadRun(filepath.Join(dir, name), label)
			if err != nil {
				return nil, err
			}
			runs = append(runs, r)
		} else if strings.HasSuffix(name, CheckpointSuffix) {
			checkpoints = append(checkpoints, filepath.Join(dir, name))
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("run directory %s has no *%s files: %w", dir, MetricsSuffix, ErrNoData)
	}
	out := filepath.Join(dir, "plots")
	paths, err := Curves(out, runs)
	if err != nil {
		return paths, fmt.Errorf("run directory %s: %w", dir, err)
	}
	for _, r := range runs {
		if !hasQuant(r) {
			continue
		}
		for _, draw := range []func(string, Run) ([]string, error){QuantError, QuantParams} {
			ps, err := draw(out, r)
			paths = append(paths, ps...)
			if err != nil && !errors.Is(err, ErrNoData) {
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

func hasQuant(r Run) bool {
	for _, s := range r.Steps {
		if len(s.Quant) > 0 {
			return true
		}
	}
	return false
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
	label := strings.TrimSuffix(filepath.Base(path), CheckpointSuffix)
	pre := filepath.Join(out, prefix(label)+"hist_")
	var paths []string
	for _, c := range caps {
		var base, title, xlabel string
		switch c.Role {
		case layers.RoleWeight:
			base, xlabel = pre+sanitize(c.Layer)+"_weight", "weight value"
			title = fmt.Sprintf("%s: %s weight", label, c.Layer)
			if folded(m, c.Layer) {
				title += " as quantized (BN folded)"
			}
		case layers.RoleAct:
			base, xlabel = pre+sanitize(c.Layer)+"_act", "activation value"
			title = fmt.Sprintf("%s: %s output before quantization (%s)", label, c.Layer, source)
		default:
			base, xlabel = pre+"input", "input value (normalised)"
			title = fmt.Sprintf("%s: input (%s)", label, source)
		}
		if c.Role != layers.RoleWeight && source == "" {
			continue
		}
		ps, err := Histogram(base, title, Tensor{Values: c.Values, Shape: c.Shape, Params: c.Params}, xlabel)
		paths = append(paths, ps...)
		if err != nil {
			return paths, fmt.Errorf("checkpoint %s: quantizer %s: %w", path, c.Name, err)
		}
	}
	return paths, nil
}

// folded reports whether layer's weight is scaled by its BN before
// quantization.
func folded(m *layers.Model, layer string) bool {
	for _, l := range m.Spec.Layers {
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
		if err != nil || in[0] != 1 || in[1] != ds.H || in[2] != ds.W || ds.N == 0 {
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

// sanitize replaces the characters of s other than letters, digits, '.',
// '-' and '_' by '_', for file names.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}
