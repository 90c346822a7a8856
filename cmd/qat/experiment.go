package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"qat/experiment"
	"qat/layers"
	"qat/plots"
)

func newRunCmd() *cobra.Command {
	var out string
	var asJSON, quiet bool
	var threads threadsFlag
	c := &cobra.Command{
		Use:   "run EXPERIMENT_FILE",
		Short: "run an experiment file and write its results, plots and report",
		Long: `Run the experiment described by EXPERIMENT_FILE (JSON; see experiments/README.md
and go doc qat/experiment Config): train the float model on each of its datasets, then
calibrate (ptq) or fine-tune (qat) every run's variant of it, evaluate the
fake-quant model and its exported int8 model, and write results.md,
results.csv, results.json and plots/ into --out (default
experiments/results/NAME). Checkpoints, int8 models and metrics go to
--out/work/.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := threads.apply(); err != nil {
				return err
			}
			cfg, err := experiment.Load(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join("experiments", "results", cfg.Name)
			}
			o := experiment.Options{Out: out, Command: "qat " + strings.Join(quoteArgs(c, args), " "), RSS: rssMB}
			if !quiet {
				o.Log = c.ErrOrStderr()
			}
			rep, err := experiment.Execute(c.Context(), cfg, o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), map[string]any{"name": cfg.Name, "out": out,
					"seconds": rep.Elapsed.Seconds(), "floats": rep.Floats, "results": rep.Results})
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: %d runs in %s; report %s\n", cfg.Name, len(rep.Results),
				rep.Elapsed.Round(1e9), filepath.Join(out, "results.md"))
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "results directory (default experiments/results/NAME)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	c.Flags().BoolVar(&quiet, "quiet", false, "no progress lines")
	threads.add(c)
	return c
}

// quoteArgs rebuilds the command line of c: its path and the arguments
// and flags as given.
func quoteArgs(c *cobra.Command, args []string) []string {
	parts := strings.Fields(strings.TrimPrefix(c.CommandPath(), "qat"))
	parts = append(parts, args...)
	c.Flags().Visit(func(f *pflag.Flag) {
		parts = append(parts, "--"+f.Name+"="+f.Value.String())
	})
	return parts
}

// sensitivityCmd is qat sensitivity's flags.
type sensitivityCmd struct {
	d                          dataFlags
	from, bits, observer, plot string
	batches, testLimit         int
	asJSON                     bool
	threads                    threadsFlag
}

func newSensitivityCmd() *cobra.Command {
	var p sensitivityCmd
	c := &cobra.Command{
		Use:   "sensitivity",
		Short: "rank layers by the accuracy lost when quantizing each one alone",
		Long: `Quantize one conv or linear layer of a float checkpoint at a time (its weights
and output at --bits, post-training with --observer over --batches training
batches; the input and the other layers stay float), evaluate each on the
test set and print the layers sorted by accuracy drop, largest first. The
layers at the top are the ones to keep at higher precision in a mixed-
precision config. --plot writes a bar chart (PNG and SVG).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return p.run(c.OutOrStdout()) },
	}
	c.Flags().StringVar(&p.from, "from", "", "float checkpoint (required)")
	c.Flags().StringVar(&p.bits, "bits", "W4A4", "bits of the one quantized layer, W<w>A<a>")
	c.Flags().StringVar(&p.observer, "observer", "minmax", "output observer: minmax, moving-average-minmax, percentile, mse or entropy")
	c.Flags().IntVar(&p.batches, "batches", 32, "calibration batches")
	c.Flags().IntVar(&p.testLimit, "test-limit", 0, "evaluate on the first N test images (0: all)")
	c.Flags().StringVar(&p.plot, "plot", "", "write a bar chart to this path (.png and .svg)")
	c.Flags().BoolVar(&p.asJSON, "json", false, "print the result as JSON")
	p.threads.add(c)
	p.d.add(c, "")
	return c
}

// check validates the flags.
func (p *sensitivityCmd) check() error {
	switch {
	case p.from == "":
		return usagef("--from is required: the float checkpoint")
	case p.testLimit < 0:
		return usagef("--test-limit %d is negative", p.testLimit)
	}
	if err := p.threads.apply(); err != nil {
		return err
	}
	if _, err := layers.ParseBits(p.bits); err != nil {
		return usageError{fmt.Errorf("--bits: %w", err)}
	}
	return nil
}

// run measures every layer's sensitivity, plots and prints it.
func (p *sensitivityCmd) run(w io.Writer) error {
	if err := p.check(); err != nil {
		return err
	}
	ck, err := loadCheckpoint(p.from)
	if err != nil {
		return err
	}
	_, tr, te, err := p.d.splits(ck.Dataset, p.from)
	if err != nil {
		return err
	}
	if p.testLimit > 0 {
		te = te.Limit(p.testLimit)
	}
	acc, res, err := experiment.Sensitivity(p.from, tr, te, experiment.SensitivityConfig{Bits: p.bits, Observer: p.observer, CalibrationBatches: p.batches})
	if err != nil {
		return err
	}
	if p.plot != "" {
		names, drops := make([]string, len(res)), make([]float64, len(res))
		for i, r := range res {
			names[i], drops[i] = r.Layer, r.Drop
		}
		if _, err := plots.Sensitivity(strings.TrimSuffix(p.plot, filepath.Ext(p.plot)), names, drops); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	if p.asJSON {
		return printJSON(w, map[string]any{"checkpoint": p.from, "bits": p.bits, "float_accuracy": acc, "layers": res})
	}
	width := 12
	for _, r := range res {
		width = max(width, len(r.Layer))
	}
	fmt.Fprintf(w, "%s: float %.2f%%; one layer at a time at %s:\n", p.from, 100*acc, p.bits)
	for _, r := range res {
		fmt.Fprintf(w, "  %-*s %6.2f%%  drop %5.2f pp\n", width, r.Layer, 100*r.Accuracy, r.Drop)
	}
	return nil
}

func newPlotCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "plot RUN_DIR",
		Short: "plot the runs of a directory: curves, quantization error, histograms",
		Long: `Draw the plots of every run in RUN_DIR into RUN_DIR/plots (PNG and SVG):
training and test loss and accuracy of every *.metrics.jsonl (float and QAT
runs on one figure), per-layer quantization error (MSE, SQNR dB) and the
scale and zero-point trajectories of each QAT run, and weight and
activation histograms with the quantization grid and clipping range of
each quantized checkpoint.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			files, err := experiment.PlotDir(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), map[string]any{"dir": args[0], "files": files})
			}
			for _, f := range files {
				fmt.Fprintln(c.OutOrStdout(), f)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the written files as JSON")
	return c
}
