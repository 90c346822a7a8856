package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"qat/model"
	"qat/torchio"
	"qat/train"
)

// defaultMaxBytes is torchio.MaxBytes as the program starts: --max-bytes's
// default, whatever an earlier command of the same process set.
var defaultMaxBytes = torchio.MaxBytes

// importCmd is qat import's flags.
type importCmd struct {
	torch, arch, out string
	mean, std, input string
	maxBytes         int64
	asJSON           bool
}

func newImportCmd() *cobra.Command {
	var p importCmd
	c := &cobra.Command{
		Use:   "import",
		Short: "import a PyTorch state_dict as a float checkpoint",
		Long: `Import the weights of a PyTorch model, saved by torch.save(model.state_dict(),
FILE) or as a safetensors file, into a float checkpoint of the qat model with
the same module names: --model is a built-in (resnet18 and mobilenet_v2 have
torchvision's names) or a model config file. Every tensor the model names must
be in the file with its exact shape, and nothing else: the error lists each
one that is not. The class count is the file's (the rows of the last linear
layer's weight); the input shape is the model's unless --input sets it.

No code of the file runs: its pickle may name only the globals a state_dict
needs, and every size is checked before it is allocated (--max-bytes).

--mean and --std normalise the input pixels, x = (p/255 - mean) / std, with one
value for every channel or one per channel; torchvision's ImageNet models want
--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225. The checkpoint records no
dataset: give --data to the commands that read it.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return p.run(c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&p.torch, "torch", "", "state_dict to import: a torch.save file (.pt, .pth) or a safetensors file (required)")
	f.StringVar(&p.arch, "model", "", "built-in model or model config file with the state_dict's module names (required)")
	f.StringVar(&p.out, "out", "", "float checkpoint to write (required)")
	f.StringVar(&p.mean, "mean", "0", "normalisation mean: one value, or one per input channel, comma-separated")
	f.StringVar(&p.std, "std", "1", "normalisation std: one value, or one per input channel, comma-separated")
	f.StringVar(&p.input, "input", "", "input shape CxHxW, e.g. 3x32x32 (default: the model's)")
	f.Int64Var(&p.maxBytes, "max-bytes", defaultMaxBytes, "refuse files with more tensor data than this many bytes (torchio.MaxBytes), checked before anything is allocated")
	f.BoolVar(&p.asJSON, "json", false, "print the result as JSON")
	return c
}

// run reads the state_dict, imports it and writes the checkpoint.
func (p *importCmd) run(w io.Writer) error {
	if p.torch == "" || p.arch == "" || p.out == "" {
		return usagef("--torch, --model and --out are required: the state_dict, its model and the checkpoint to write")
	}
	inputs := []pathFlag{{"--torch", p.torch}}
	if st, err := os.Stat(p.arch); err == nil && st.Mode().IsRegular() {
		inputs = append(inputs, pathFlag{"--model", p.arch})
	}
	if err := distinct(inputs, []pathFlag{{"--out", p.out}}); err != nil {
		return err
	}
	if p.maxBytes < 1 {
		return usagef("--max-bytes %d: want at least 1", p.maxBytes)
	}
	g, err := model.Load(p.arch)
	if err != nil {
		return usageError{fmt.Errorf("--model: %w", err)}
	}
	input := g.Input
	if p.input != "" {
		if input, err = parseInput(p.input); err != nil {
			return err
		}
	}
	norm, err := parseNorm(p.mean, p.std, input[0])
	if err != nil {
		return err
	}
	torchio.MaxBytes = p.maxBytes
	sd, err := torchio.ReadStateDict(p.torch)
	if err != nil {
		return err
	}
	if g, err = torchio.Retarget(g, sd, input); err != nil {
		return usageError{fmt.Errorf("--model %s: %w", p.arch, err)}
	}
	m, err := torchio.Import(g, sd)
	if err != nil {
		return fmt.Errorf("--torch %s: %w", p.torch, err)
	}
	if err := os.MkdirAll(filepath.Dir(p.out), 0o755); err != nil {
		return err
	}
	if err := (&train.Checkpoint{Model: m, Norm: norm}).Save(p.out); err != nil {
		return err
	}
	if p.asJSON {
		return printJSON(w, map[string]any{"out": p.out, "model": g.Name, "input": g.Input, "classes": g.Classes, "tensors": len(sd)})
	}
	_, err = fmt.Fprintf(w, "%s: %s on %s with %d classes, %d tensors from %s\n", p.out, g.Name, shapeString(g.Input), g.Classes, len(sd), p.torch)
	return err
}

// parseInput reads --input, CxHxW.
func parseInput(s string) ([]int, error) {
	parts := strings.Split(s, "x")
	shape := make([]int, len(parts))
	for i, part := range parts {
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 || len(parts) != 3 {
			return nil, usagef("--input %q: want CxHxW, three positive integers such as 3x32x32", s)
		}
		shape[i] = n
	}
	return shape, nil
}

func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, "x")
}

// parseNorm reads --mean and --std: one value each, for every channel,
// or one per channel each, for an input of channels channels.
func parseNorm(mean, std string, channels int) (model.Norm, error) {
	m, err := parseFloats("--mean", mean)
	if err != nil {
		return model.Norm{}, err
	}
	s, err := parseFloats("--std", std)
	if err != nil {
		return model.Norm{}, err
	}
	if len(m) != len(s) {
		return model.Norm{}, usagef("--mean has %d values and --std %d: give one of each, or one of each per channel", len(m), len(s))
	}
	n := model.Norm{ChannelMean: m, ChannelStd: s}
	if len(m) == 1 {
		n = model.Norm{Mean: m[0], Std: s[0]}
	}
	if err := n.Validate(channels); err != nil {
		return model.Norm{}, usagef("--mean %s --std %s: %v", mean, std, err)
	}
	return n, nil
}

// parseFloats reads the comma-separated float32 values of flag.
func parseFloats(flag, s string) ([]float32, error) {
	parts := strings.Split(s, ",")
	v := make([]float32, len(parts))
	for i, part := range parts {
		x, err := strconv.ParseFloat(strings.TrimSpace(part), 32)
		if err != nil {
			return nil, usagef("%s %q: %q is not a number", flag, s, part)
		}
		v[i] = float32(x)
	}
	return v, nil
}
