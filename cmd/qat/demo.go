package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"qat/experiment"
	"qat/internal/atomicfile"
)

// demoConfig is the demo: lenet on the embedded MNIST sample, float, then
// PTQ and QAT at 8 and 4 bits.
func demoConfig() experiment.Config {
	x := func(v float64) *float64 { return &v }
	return experiment.Config{
		Name:     "demo",
		Title:    "qat demo: lenet on the embedded MNIST sample, float vs PTQ vs QAT at 8 and 4 bits",
		Question: "How much accuracy does int8 and int4 quantization cost, with and without fine-tuning, and does the exported int8 model compute what training simulated?",
		Model:    "lenet",
		Data:     []string{"embedded"},
		Float:    experiment.Stage{Epochs: 3, LR: 1e-3, Batch: 64},
		Runs: []experiment.Run{
			{Name: "ptq-w8a8", Method: experiment.MethodPTQ, Bits: "W8A8", Group: "PTQ (min/max calibration)", X: x(8)},
			{Name: "qat-w8a8", Method: experiment.MethodQAT, Bits: "W8A8", Epochs: 2, LR: 1e-4, Batch: 64, Group: "QAT", X: x(8)},
			{Name: "ptq-w4a4", Method: experiment.MethodPTQ, Bits: "W4A4", Group: "PTQ (min/max calibration)", X: x(4)},
			{Name: "qat-w4a4-lsq", Method: experiment.MethodQAT, Bits: "W4A4", Learnable: "lsq", Epochs: 3, LR: 1e-3, Batch: 64, Group: "QAT", X: x(4)},
		},
	}
}

// runDemo runs the demo experiment with options o, draws its plots,
// writes its report and prints the results to w.
func runDemo(ctx context.Context, w io.Writer, o experiment.Options, asJSON bool) error {
	out := o.Out
	rep, err := experiment.Execute(ctx, demoConfig(), o)
	if err != nil {
		return err
	}
	files, err := experiment.PlotDir(filepath.Join(out, "work"))
	if err != nil {
		return fmt.Errorf("demo plots: %w", err)
	}
	report := filepath.Join(out, "report.md")
	if err := writeDemoReport(report, filepath.Join(out, "results.md"), out, files); err != nil {
		return err
	}
	if asJSON {
		return printJSON(w, map[string]any{"out": out, "report": report,
			"seconds": rep.Elapsed.Seconds(), "floats": rep.Floats, "results": rep.Results, "plots": files})
	}
	fmt.Fprintf(w, "float lenet: %.2f%% on %d embedded test images\n", 100*rep.Floats["embedded"].Accuracy, 1000)
	for _, r := range rep.Results {
		int8 := "n/a"
		if r.Int8Accuracy != nil {
			int8 = fmt.Sprintf("%.2f%%", 100**r.Int8Accuracy)
		}
		fmt.Fprintf(w, "%-13s fake-quant %.2f%%  int8 %s\n", r.Run, 100*r.FakeQuantAccuracy, int8)
	}
	fmt.Fprintf(w, "report: %s (%s)\n", report, rep.Elapsed.Round(1e9))
	return nil
}

func newDemoCmd() *cobra.Command {
	var out string
	var asJSON, quiet bool
	var threads threadsFlag
	c := &cobra.Command{
		Use:   "demo",
		Short: "train, quantize, export and evaluate lenet on the embedded data, with plots and a report",
		Long: `Run the whole loop on the MNIST sample built into the binary (4000 training
and 1000 test images), in about a minute on two cores:

  1. train a float lenet (3 epochs);
  2. quantize it post-training (PTQ, min/max calibration) at W8A8 and W4A4;
  3. fine-tune it with fake quantization (QAT) at W8A8, and at W4A4 with
     learned step sizes (LSQ);
  4. export every quantized model as an int8 model file and evaluate it on
     the int8 runtime next to its fake-quant evaluation;
  5. draw the plots (accuracy vs bits, loss and accuracy curves, per-layer
     quantization error, scale trajectories, weight and activation
     histograms with the quantization grid) and write report.md.

Everything goes into --out (default runs/demo): report.md, results.csv,
plots/, and work/ with the checkpoints, int8 models, metrics and per-run
plots.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := threads.apply(); err != nil {
				return err
			}
			o := experiment.Options{Out: out, Command: "qat demo --out " + out, RSS: rssMB}
			if !quiet {
				o.Log = c.ErrOrStderr()
			}
			return runDemo(c.Context(), c.OutOrStdout(), o, asJSON)
		},
	}
	c.Flags().StringVar(&out, "out", filepath.Join("runs", "demo"), "output directory")
	c.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	c.Flags().BoolVar(&quiet, "quiet", false, "no progress lines")
	threads.add(c)
	return c
}

// writeDemoReport writes the experiment report followed by the per-run
// plots of work/.
func writeDemoReport(path, results, out string, files []string) error {
	b, err := os.ReadFile(results)
	if err != nil {
		return err
	}
	var s strings.Builder
	s.Write(b)
	s.WriteString("\n## Per-run plots\n\n")
	for _, f := range files {
		if filepath.Ext(f) != ".png" {
			continue
		}
		rel, err := filepath.Rel(out, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(&s, "![%s](%s)\n\n", strings.TrimSuffix(filepath.Base(f), ".png"), filepath.ToSlash(rel))
	}
	return atomicfile.WriteBytes(path, []byte(s.String()))
}
