package autobits

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"qat/internal/atomicfile"
	"qat/plots"
)

// The files Report.Write writes into its directory, next to the figures
// pareto-bytes.{png,svg} and pareto-latency.{png,svg}.
const (
	SummaryJSON     = "autobits.json"
	SummaryMarkdown = "autobits.md"
	QuantConfigFile = "quant-config.json"
)

// Write writes the report into dir: the summary as JSON and markdown,
// the chosen assignment's quant config, and the Pareto figures of the
// assignments tried.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("autobits: %w", err)
	}
	for _, m := range []Metric{MetricBytes, MetricLatency} {
		if _, err := r.plot(dir, m); err != nil {
			return fmt.Errorf("autobits: %w", err)
		}
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("autobits: %w", err)
	}
	qc, err := r.Chosen.QuantConfigJSON()
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{SummaryJSON, append(js, '\n')}, {SummaryMarkdown, []byte(r.markdown())}, {QuantConfigFile, qc}} {
		if err := atomicfile.WriteBytes(filepath.Join(dir, f.name), f.b); err != nil {
			return fmt.Errorf("autobits: %w", err)
		}
	}
	return nil
}

// figure returns the base name of the Pareto figure of metric m.
func figure(m Metric) string {
	if m == MetricBytes {
		return "pareto-bytes"
	}
	return "pareto-latency"
}

// plot draws the accuracy of the assignments tried and of the fine-tuned
// models against metric m.
func (r *Report) plot(dir string, m Metric) ([]string, error) {
	x := func(bytes int64, ms float64) float64 {
		if m == MetricBytes {
			return float64(bytes)
		}
		return ms
	}
	series := []plots.PointSeries{{Label: "uniform (PTQ)"}, {Label: "best of each round (PTQ)"}, {Label: "candidates (PTQ)"}}
	for _, t := range r.Tried {
		k := 0
		switch {
		case slices.Contains(t.Roles, "candidate"):
			k = 2
		case slices.Contains(t.Roles, "beam best"):
			k = 1
		}
		label := fmt.Sprintf("#%d", t.ID)
		if slices.Contains(t.Roles, "chosen") {
			label += " chosen"
		}
		series[k].Points = append(series[k].Points, plots.Point{Label: label, X: x(t.Bytes, t.LatencyMS), Y: t.Accuracy})
	}
	series = append(series, plots.PointSeries{Label: "fine-tuned (QAT)", OffFront: true, Points: []plots.Point{
		{Label: "W8A8", X: x(r.Reference.Bytes, r.Reference.LatencyMS), Y: r.Reference.Int8Accuracy},
		{Label: "autobits", X: x(r.Final.Bytes, r.Final.LatencyMS), Y: r.Final.Int8Accuracy}}})
	what, xlabel := "size", "int8 model file (bytes)"
	if m == MetricLatency {
		what, xlabel = "latency", fmt.Sprintf("int8 runtime latency, one thread (ms per batch of %d)", r.LatencyBatch)
	}
	title := fmt.Sprintf("autobits: accuracy against %s (PTQ on %d test images and its front; QAT on all)", what, r.TestImages)
	return plots.Pareto(filepath.Join(dir, figure(m)), title, xlabel, series)
}

// markdown returns the report as markdown.
func (r *Report) markdown() string {
	var b strings.Builder
	pf := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	pf("# autobits: %s, budget %s\n\n", r.From, r.Budget)
	if r.Command != "" {
		pf("Command: `%s`\n\n", r.Command)
	}
	pf("Machine: %s (%d CPUs, GOMAXPROCS %d), %s, %s, commit %s; int8 kernel %s. %.0f s in all.\n\n",
		r.Machine.CPU, r.Machine.CPUs, r.Machine.GOMAXPROCS, r.Machine.Go, r.Machine.OS, r.Machine.Commit, r.Kernel, r.Seconds)
	pf("- bytes: %s.\n- latency: %s.\n\n", r.BytesMethod, r.LatencyMethod)

	pf("## Result\n\n")
	pf("| model | bits | int8 accuracy | fake-quant accuracy | bytes | latency ms (median; min-max) |\n|---|---|---|---|---|---|\n")
	for _, f := range []struct {
		name string
		f    Final
	}{{"W8A8, QAT", r.Reference}, {"autobits, QAT", r.Final}} {
		pf("| %s | %s | %.2f | %.2f | %d | %s |\n", f.name, f.f.Bits, 100*f.f.Int8Accuracy, 100*f.f.FakeQuantAccuracy, f.f.Bytes, spread(f.f.LatencyMS, f.f.LatencyRunsMS))
	}
	met := "met"
	if !r.Met {
		met = "**missed**"
	}
	pf("\nBudget %s: %s (%s). autobits is %+.2f pp from W8A8 with %.1f%% of its bytes and %.2fx its latency. "+
		"Accuracies on the whole test set.\n\n", r.Budget, met, formatValue(r.Budget.Metric, r.Final.value(r.Budget.Metric)),
		100*(r.Final.Int8Accuracy-r.Reference.Int8Accuracy), 100*float64(r.Final.Bytes)/float64(r.Reference.Bytes),
		r.Final.LatencyMS/r.Reference.LatencyMS)

	pf("## Uniform weight widths, 8-bit outputs: smaller, and faster?\n\n")
	pf("| weights | bytes | bytes vs W8A8 | latency ms (median; min-max) | latency vs W8A8 | PTQ accuracy |\n|---|---|---|---|---|---|\n")
	var ref *Measured
	for i := range r.Tried {
		t := &r.Tried[i]
		if !slices.Contains(t.Roles, "uniform") {
			continue
		}
		if ref == nil {
			ref = t
		}
		pf("| %s | %d | %.3fx | %s | %.2fx | %.2f |\n", t.Bits, t.Bytes, float64(t.Bytes)/float64(ref.Bytes),
			spread(t.LatencyMS, t.LatencyRunsMS), t.LatencyMS/ref.LatencyMS, 100*t.Accuracy)
	}

	pf("\n## Sensitivity: accuracy drop (pp) with one layer quantized post-training\n\n")
	pf("Float accuracy %.2f%% on %d test images; one image is %.3g pp.\n\n| layer |", 100*r.Table.FloatAccuracy, r.TestImages, r.Table.Floor)
	for _, w := range Widths {
		pf(" W%dA8 |", w)
	}
	for _, a := range Widths[1:] {
		pf(" W8A%d |", a)
	}
	pf("\n|---|%s\n", strings.Repeat("---|", 2*len(Widths)-1))
	for _, l := range r.Table.Layers {
		pf("| %s |", l)
		for _, w := range Widths {
			pf(" %.2f |", r.Table.Weight[l][w])
		}
		for _, a := range Widths[1:] {
			pf(" %.2f |", r.Table.Act[l][a])
		}
		pf("\n")
	}

	pf("\n## Search: %d assignments measured, beam of %d\n\n| round | assignment | reached by | %s | predicted drop pp |\n|---|---|---|---|---|\n",
		r.Search.Measured, r.BeamWidth, r.Budget.Metric)
	for i, round := range r.Search.Beam {
		for _, st := range round {
			mv := st.Move
			if mv == "" {
				mv = "start"
			}
			pf("| %d | %s | %s | %s | %.2f |\n", i, st.Bits, mv, formatValue(r.Budget.Metric, st.Value), st.Predicted)
		}
	}
	pf("\nCandidates (within budget, none narrower everywhere than another, least predicted drop first):\n\n")
	for _, st := range r.Search.Candidates {
		how := "all-W8A8 is within budget"
		if st.Move != "" {
			how = "from " + st.From + " by " + st.Move
		}
		pf("- %s: %s, predicted drop %.2f pp (%s)\n", st.Bits, formatValue(r.Budget.Metric, st.Value), st.Predicted, how)
	}
	pf("\n## Assignments tried (post-training, %d test images)\n\n", r.TestImages)
	pf("| # | bits | roles | bytes | latency ms | predicted drop pp | PTQ accuracy |\n|---|---|---|---|---|---|---|\n")
	for _, t := range r.Tried {
		pf("| %d | %s | %s | %d | %.3f | %.2f | %.2f |\n", t.ID, t.Bits, strings.Join(t.Roles, ", "), t.Bytes, t.LatencyMS, t.Predicted, 100*t.Accuracy)
	}
	pf("\nChosen: %s (the candidate of highest PTQ accuracy), written as `%s` for `qat finetune --quant-config`.\n\n", r.Chosen, QuantConfigFile)
	pf("![accuracy against bytes](%s.png) ![accuracy against latency](%s.png)\n", figure(MetricBytes), figure(MetricLatency))
	return b.String()
}

// spread writes a median latency and the range of its runs.
func spread(median float64, runs []float64) string {
	if len(runs) == 0 {
		return fmt.Sprintf("%.3f", median)
	}
	return fmt.Sprintf("%.3f; %.3f-%.3f", median, slices.Min(runs), slices.Max(runs))
}
