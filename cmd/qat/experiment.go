package main

import (
	"fmt"
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
		Long: `Run the experiment described by EXPERIMENT_FILE (JSON; see experiments/ and
docs/experiments.md): train the float model on each of its datasets, then
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

func newSensitivityCmd() *cobra.Command {
	var d dataFlags
	var from, bits, observer, plot string
	var batches, testLimit int
	var asJSON bool
	var threads threadsFlag
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
		RunE: func(c *cobra.Command, _ []string) error {
			if from == "" {
				return usagef("--from is required: the float checkpoint")
			}
			if testLimit < 0 {
				return usagef("--test-limit %d is negative", testLimit)
			}
			if err := threads.apply(); err != nil {
				return err
			}
			if _, err := layers.ParseBits(bits); err != nil {
				return usageError{fmt.Errorf("--bits: %w", err)}
			}
			ck, err := loadCheckpoint(from)
			if err != nil {
				return err
			}
			tr, te, _, err := datasets(d.or(ck.Dataset), d.limit)
			if err != nil {
				return err
			}
			if testLimit > 0 {
				te = te.Limit(testLimit)
			}
			acc, res, err := experiment.Sensitivity(from, tr, te, experiment.SensitivityConfig{Bits: bits, Observer: observer, CalibrationBatches: batches})
			if err != nil {
				return err
			}
			if plot != "" {
				names, drops := make([]string, len(res)), make([]float64, len(res))
				for i, r := range res {
					names[i], drops[i] = r.Layer, r.Drop
				}
				if _, err := plots.Sensitivity(strings.TrimSuffix(plot, filepath.Ext(plot)), names, drops); err != nil {
					return fmt.Errorf("--plot: %w", err)
				}
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), map[string]any{"checkpoint": from, "bits": bits, "float_accuracy": acc, "layers": res})
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "%s: float %.2f%%; one layer at a time at %s:\n", from, 100*acc, bits)
			for _, r := range res {
				fmt.Fprintf(w, "  %-12s %6.2f%%  drop %5.2f pp\n", r.Layer, 100*r.Accuracy, r.Drop)
			}
			return nil
		},
	}
	c.Flags().StringVar(&from, "from", "", "float checkpoint (required)")
	c.Flags().StringVar(&bits, "bits", "W4A4", "bits of the one quantized layer, W<w>A<a>")
	c.Flags().StringVar(&observer, "observer", "minmax", "output observer: minmax, moving-average-minmax, percentile, mse or entropy")
	c.Flags().IntVar(&batches, "batches", 32, "calibration batches")
	c.Flags().IntVar(&testLimit, "test-limit", 0, "evaluate on the first N test images (0: all)")
	c.Flags().StringVar(&plot, "plot", "", "write a bar chart to this path (.png and .svg)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	threads.add(c)
	d.add(c, "")
	return c
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
