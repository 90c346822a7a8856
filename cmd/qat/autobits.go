package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"qat/autobits"
)

// autobitsCmd is qat autobits's flags.
type autobitsCmd struct {
	d                  dataFlags
	from, out, report  string
	budgetBytes        int64
	budgetLatency      float64
	bytesSet, latSet   bool
	epochs, batch      int
	lr                 float64
	seed               uint64
	batches, testLimit int
	candidates         int
	latBatch, latRuns  int
	asJSON, quiet      bool
	threads            threadsFlag
}

func newAutobitsCmd() *cobra.Command {
	var p autobitsCmd
	c := &cobra.Command{
		Use:   "autobits",
		Short: "choose per-layer bits for a size or latency budget (automatic mixed precision)",
		Long: `Choose the weight and output bits (8, 6, 4 or 2) of every conv and linear layer
of a float checkpoint so that its int8 model fits --budget-bytes (the size of
the file qat export writes) or --budget-latency (milliseconds per batch on
qat's int8 runtime, one thread), fine-tune that config (QAT) and W8A8 the
same way, export both and compare them.

It measures each layer's sensitivity (as qat sensitivity: one layer quantized
post-training at W<b>A8 and W8A<b>, accuracy drop on the first --test-limit
test images), then searches greedily from W8A8 with a beam of --candidates:
each round measures every move lowering one layer's width, skips those that
save nothing (a latency move must beat every run of the config it leaves),
and keeps the moves of least predicted accuracy cost per byte or ms saved.
Moves within budget are candidates: each is calibrated (min/max, --batches
batches) and evaluated, and the most accurate is fine-tuned for --epochs
epochs (as qat finetune --quant-config) into --out, exported next to it
(.qmodel) and measured again: bytes from its file, latency as the median of
runs on the first --latency-batch test images (--latency-runs runs per
measurement).

--report (default: --out's directory) receives autobits.json and
autobits.md (every config tried, the search, both models, how each number
was measured), quant-config.json (the chosen config, for qat finetune
--quant-config) and the Pareto figures pareto-bytes and pareto-latency
(PNG and SVG). The exit status is 1 when the fine-tuned model misses the
budget (the report says by how much).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p.bytesSet, p.latSet = c.Flags().Changed("budget-bytes"), c.Flags().Changed("budget-latency")
			return p.run(c)
		},
	}
	f := c.Flags()
	f.StringVar(&p.from, "from", "", "float checkpoint (required)")
	f.Int64Var(&p.budgetBytes, "budget-bytes", 0, "most bytes of the int8 model file (this or --budget-latency)")
	f.Float64Var(&p.budgetLatency, "budget-latency", 0, "most milliseconds per --latency-batch batch on the int8 runtime, one thread (this or --budget-bytes)")
	f.StringVar(&p.out, "out", "", "checkpoint of the fine-tuned chosen model (required); its .qmodel, metrics and the W8A8 reference (-w8a8) go next to it")
	f.StringVar(&p.report, "report", "", "directory of the summary, quant config and figures (default: --out's directory)")
	f.IntVar(&p.epochs, "epochs", 1, "QAT epochs of both fine-tunes")
	f.IntVar(&p.batch, "batch", 128, "QAT batch size")
	f.Float64Var(&p.lr, "lr", 1e-4, "QAT learning rate (Adam)")
	f.Uint64Var(&p.seed, "seed", 0, "seed of the QAT data order")
	f.IntVar(&p.batches, "batches", 32, "calibration batches of every post-training measurement")
	f.IntVar(&p.testLimit, "test-limit", 2000, "test images of the sensitivity and of the post-training accuracies")
	f.IntVar(&p.candidates, "candidates", 4, "configs within budget evaluated post-training, and the width of the search's beam")
	f.IntVar(&p.latBatch, "latency-batch", 100, "test images in the batch of a latency measurement")
	f.IntVar(&p.latRuns, "latency-runs", 7, "timed runs of a latency measurement (the median counts)")
	f.BoolVar(&p.asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&p.quiet, "quiet", false, "no progress lines")
	p.threads.add(c)
	p.d.add(c, "")
	return c
}

// budget returns the budget of the flags, refusing none, both and
// values that are not positive (and finite).
func (p *autobitsCmd) budget() (autobits.Budget, error) {
	switch {
	case p.bytesSet && p.latSet:
		return autobits.Budget{}, usagef("--budget-bytes and --budget-latency: give one budget, not both")
	case !p.bytesSet && !p.latSet:
		return autobits.Budget{}, usagef("a budget is required: --budget-bytes N or --budget-latency MS")
	case p.bytesSet && p.budgetBytes <= 0:
		return autobits.Budget{}, usagef("--budget-bytes %d: want a positive number of bytes", p.budgetBytes)
	case p.bytesSet:
		return autobits.Budget{Metric: autobits.MetricBytes, Limit: float64(p.budgetBytes)}, nil
	case !(p.budgetLatency > 0) || math.IsInf(p.budgetLatency, 0):
		return autobits.Budget{}, usagef("--budget-latency %v: want a positive, finite number of milliseconds", p.budgetLatency)
	}
	return autobits.Budget{Metric: autobits.MetricLatency, Limit: p.budgetLatency}, nil
}

// check validates the flags and returns the budget.
func (p *autobitsCmd) check() (autobits.Budget, error) {
	b, err := p.budget()
	if err != nil {
		return b, err
	}
	switch {
	case p.from == "":
		return b, usagef("--from is required: the float checkpoint")
	case p.out == "":
		return b, usagef("--out is required: the checkpoint to write")
	case p.epochs < 1 || p.batch < 1 || p.batches < 1 || p.testLimit < 1 || p.candidates < 1 || p.latBatch < 1 || p.latRuns < 1:
		return b, usagef("--epochs %d, --batch %d, --batches %d, --test-limit %d, --candidates %d, --latency-batch %d, --latency-runs %d: want at least 1 each",
			p.epochs, p.batch, p.batches, p.testLimit, p.candidates, p.latBatch, p.latRuns)
	case !(p.lr > 0) || math.IsInf(p.lr, 0):
		return b, usagef("--lr %v: want a positive, finite rate", p.lr)
	}
	if p.report == "" {
		p.report = filepath.Dir(p.out)
	}
	base := strings.TrimSuffix(p.out, filepath.Ext(p.out))
	ref := base + "-w8a8"
	outputs := []pathFlag{{"--out", p.out}, {"--out's int8 model", base + ".qmodel"}, {"--out's metrics", base + ".metrics.jsonl"},
		{"the W8A8 reference", ref + filepath.Ext(p.out)}, {"the W8A8 reference's int8 model", ref + ".qmodel"},
		{"the W8A8 reference's metrics", ref + ".metrics.jsonl"}}
	for _, name := range []string{autobits.SummaryJSON, autobits.SummaryMarkdown, autobits.QuantConfigFile} {
		outputs = append(outputs, pathFlag{"--report's " + name, filepath.Join(p.report, name)})
	}
	if err := distinct([]pathFlag{{"--from", p.from}}, outputs); err != nil {
		return b, err
	}
	return b, p.threads.apply()
}

// run searches, fine-tunes, writes the report and prints the result.
func (p *autobitsCmd) run(c *cobra.Command) error {
	b, err := p.check()
	if err != nil {
		return err
	}
	ck, err := loadCheckpoint(p.from)
	if err != nil {
		return err
	}
	spec, tr, te, err := p.d.splits(ck.Dataset, p.from)
	if err != nil {
		return err
	}
	cfg := autobits.Config{From: p.from, Dataset: spec, Budget: b, Out: p.out, Epochs: p.epochs, LR: p.lr, Batch: p.batch, Seed: p.seed,
		CalibrationBatches: p.batches, TestLimit: p.testLimit, Candidates: p.candidates, LatencyBatch: p.latBatch, LatencyRuns: p.latRuns}
	if !p.quiet {
		cfg.Log, cfg.Progress = c.ErrOrStderr(), &trainProgress{w: c.ErrOrStderr()}
	}
	rep, err := autobits.Run(c.Context(), cfg, tr, te)
	if errors.Is(err, autobits.ErrUnreachable) {
		flag := "--budget-bytes"
		if b.Metric == autobits.MetricLatency {
			flag = "--budget-latency"
		}
		return usageError{fmt.Errorf("%s: %w", flag, err)}
	}
	if err != nil {
		return err
	}
	rep.Command = "qat " + strings.Join(quoteArgs(c, nil), " ")
	if err := rep.Write(p.report); err != nil {
		return err
	}
	if p.asJSON {
		if err := printJSON(c.OutOrStdout(), rep); err != nil {
			return err
		}
	} else {
		printAutobits(c.OutOrStdout(), rep, p.report)
	}
	if !rep.Met {
		return fmt.Errorf("the fine-tuned model misses the budget %s (see %s)", b, filepath.Join(p.report, autobits.SummaryMarkdown))
	}
	return nil
}

// printAutobits prints the outcome of a run.
func printAutobits(w io.Writer, rep *autobits.Report, dir string) {
	met := "met"
	if !rep.Met {
		met = "missed"
	}
	fmt.Fprintf(w, "chose %s for the budget %s (%s)\n", rep.Chosen, rep.Budget, met)
	for _, f := range []struct {
		name string
		f    autobits.Final
	}{{"W8A8", rep.Reference}, {"autobits", rep.Final}} {
		fmt.Fprintf(w, "  %-8s QAT: int8 %.2f%% (fake-quant %.2f%%), %d bytes, %.3f ms  %s\n", f.name, 100*f.f.Int8Accuracy,
			100*f.f.FakeQuantAccuracy, f.f.Bytes, f.f.LatencyMS, f.f.Int8Model)
	}
	fmt.Fprintf(w, "  autobits - W8A8: %+.2f pp, %.1f%% of the bytes, %.2fx the latency\n",
		100*(rep.Final.Int8Accuracy-rep.Reference.Int8Accuracy), 100*float64(rep.Final.Bytes)/float64(rep.Reference.Bytes),
		rep.Final.LatencyMS/rep.Reference.LatencyMS)
	fmt.Fprint(w, "  uniform weights, 8-bit outputs:")
	for _, t := range rep.Tried {
		if slices.Contains(t.Roles, "uniform") {
			fmt.Fprintf(w, " %s %d bytes %.3f ms;", t.Bits, t.Bytes, t.LatencyMS)
		}
	}
	fmt.Fprintf(w, "\nbytes: %s\nlatency: %s\n", rep.BytesMethod, rep.LatencyMethod)
	fmt.Fprintf(w, "report %s, quant config %s\n", filepath.Join(dir, autobits.SummaryMarkdown), filepath.Join(dir, autobits.QuantConfigFile))
}
