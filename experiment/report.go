package experiment

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"qat/internal/atomicfile"
	"qat/plots"
)

// Machine describes where an experiment ran.
type Machine struct {
	Go         string `json:"go"`
	OS         string `json:"os"`
	CPU        string `json:"cpu"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Commit     string `json:"commit"`
}

// ThisMachine describes the running process's machine: Go version,
// platform, CPU model (Linux), CPU count and the source commit (from git
// when the working directory is a checkout, else "unknown").
func ThisMachine() Machine {
	m := Machine{Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPU: "unknown",
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Commit: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// Write writes results.json, results.csv, results.md and plots/ into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "plots"), 0o755); err != nil {
		return err
	}
	figs, err := r.plot(filepath.Join(dir, "plots"))
	if err != nil {
		return fmt.Errorf("experiment %s: plots: %w", r.Config.Name, err)
	}
	b, err := json.MarshalIndent(struct {
		Name    string                 `json:"name"`
		Command string                 `json:"command"`
		Machine Machine                `json:"machine"`
		Started time.Time              `json:"started"`
		Seconds float64                `json:"seconds"`
		Floats  map[string]FloatResult `json:"floats"`
		Results []Result               `json:"results"`
	}{r.Config.Name, r.Command, r.Machine, r.Started.UTC(), r.Elapsed.Seconds(), r.Floats, r.Results}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "results.json"), append(b, '\n')); err != nil {
		return err
	}
	if err := r.writeCSV(filepath.Join(dir, "results.csv")); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "results.md"), []byte(r.markdown(figs)))
}

// writeCSV writes the results table to path, atomically.
func (r *Report) writeCSV(path string) error {
	return atomicfile.Write(path, func(f io.Writer) error {
		w := csv.NewWriter(f)
		w.Write([]string{"data", "run", "method", "group", "x", "quant", "float_accuracy", "fake_quant_accuracy", "int8_accuracy", "drop_pp", "seconds", "distill"})
		for _, x := range r.Results {
			xs, int8 := "", ""
			if x.X != nil {
				xs = strconv.FormatFloat(*x.X, 'g', -1, 64)
			}
			if x.Int8Accuracy != nil {
				int8 = strconv.FormatFloat(*x.Int8Accuracy, 'f', 4, 64)
			}
			w.Write([]string{x.Data, x.Run, x.Method, x.Group, xs, x.Quant,
				strconv.FormatFloat(x.FloatAccuracy, 'f', 4, 64), strconv.FormatFloat(x.FakeQuantAccuracy, 'f', 4, 64),
				int8, strconv.FormatFloat(x.Drop(), 'f', 2, 64), strconv.FormatFloat(x.Seconds, 'f', 1, 64), x.Distill})
		}
		w.Flush()
		return w.Error()
	})
}

func (r *Report) markdown(figs []string) string {
	c := r.Config
	var b strings.Builder
	title := c.Title
	if title == "" {
		title = c.Name
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	if c.Question != "" {
		fmt.Fprintf(&b, "%s\n\n", c.Question)
	}
	train := "all"
	if c.TrainLimit > 0 {
		train = fmt.Sprintf("the first %d", c.TrainLimit)
	}
	test := "all"
	if c.TestLimit > 0 {
		test = fmt.Sprintf("the first %d", c.TestLimit)
	}
	fmt.Fprintf(&b, "Model %s; %s training images, %s test images. Float: %d epochs, Adam lr %g, batch %d, seed %d.\n\n",
		c.Model, train, test, c.Float.Epochs, c.Float.LR, c.Float.Batch, c.Float.Seed)
	for _, ds := range c.Data {
		fl := r.Floats[ds]
		fmt.Fprintf(&b, "## %s (float %.2f%%)\n\n", ds, 100*fl.Accuracy)
		b.WriteString("| run | method | quantization | fake-quant acc | int8 acc | drop vs float (pp) | seconds |\n|---|---|---|---|---|---|---|\n")
		for _, x := range r.Results {
			if x.Data != ds {
				continue
			}
			int8 := "n/a"
			if x.Int8Accuracy != nil {
				int8 = fmt.Sprintf("%.2f%%", 100**x.Int8Accuracy)
			}
			method := x.Method
			if x.Distill != "" {
				method += ", distilled from float (" + x.Distill + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.2f%% | %s | %.2f | %.1f |\n", x.Run, method, x.Quant, 100*x.FakeQuantAccuracy, int8, x.Drop(), x.Seconds)
		}
		b.WriteString("\n")
		var notes []string
		for _, x := range r.Results {
			if x.Data == ds && x.Int8Note != "" {
				notes = append(notes, fmt.Sprintf("- %s: no int8 model: %s", x.Run, x.Int8Note))
			}
		}
		if len(notes) > 0 {
			b.WriteString(strings.Join(notes, "\n") + "\n\n")
		}
	}
	if len(figs) > 0 {
		b.WriteString("## Plots\n\n")
		for _, f := range figs {
			fmt.Fprintf(&b, "![%s](plots/%s)\n\n", strings.TrimSuffix(f, ".png"), f)
		}
	}
	m := r.Machine
	fmt.Fprintf(&b, "## How this was run\n\n```\n%s\n```\n\n", r.Command)
	fmt.Fprintf(&b, "%s, took %s. Machine: %s, %d CPUs (GOMAXPROCS %d), %s, %s, commit %s.\n",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Elapsed.Round(time.Second), m.CPU, m.CPUs, m.GOMAXPROCS, m.OS, m.Go, m.Commit)
	return b.String()
}

// plot draws, per dataset, the accuracy against X per group (or bars of
// each run's accuracy when runs have no X) and the loss and accuracy
// curves of the float and QAT runs. It returns the PNG names.
func (r *Report) plot(dir string) ([]string, error) {
	var figs []string
	for _, ds := range r.Config.Data {
		prefix := filepath.Base(ds) + "-"
		fig, err := r.plotAccuracy(dir, prefix, ds)
		if err != nil {
			return nil, err
		}
		figs = append(figs, fig)
		runs, err := r.curveRuns(ds)
		if err != nil {
			return nil, err
		}
		if len(runs) > 1 {
			sub := filepath.Join(dir, prefix+"curves")
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return nil, err
			}
			if _, err := plots.Curves(sub, runs); err != nil {
				return nil, err
			}
			figs = append(figs, filepath.Base(sub)+"/loss.png", filepath.Base(sub)+"/accuracy.png")
		}
	}
	return figs, nil
}

// plotAccuracy draws the accuracy of the runs on ds: against X, one
// series per group, when runs have an X, else as bars. It returns the
// PNG's name.
func (r *Report) plotAccuracy(dir, prefix, ds string) (string, error) {
	var labels []string
	var accs []float64
	groups := map[string]*plots.Series{}
	var order []string
	for _, x := range r.Results {
		if x.Data != ds {
			continue
		}
		labels = append(labels, x.Run)
		accs = append(accs, 100*x.FakeQuantAccuracy)
		if x.X == nil {
			continue
		}
		g := x.Group
		if g == "" {
			g = x.Method
		}
		s := groups[g]
		if s == nil {
			s = &plots.Series{Label: g}
			groups[g] = s
			order = append(order, g)
		}
		s.X = append(s.X, *x.X)
		s.Y = append(s.Y, x.FakeQuantAccuracy)
	}
	if len(order) == 0 {
		base := filepath.Join(dir, prefix+"accuracy")
		title := fmt.Sprintf("%s: fake-quant test accuracy (float %.2f%%)", ds, 100*r.Floats[ds].Accuracy)
		_, err := plots.Bars(base, title, labels, accs, "test accuracy (%)")
		return filepath.Base(base) + ".png", err
	}
	var series []plots.Series
	for _, g := range order {
		s := *groups[g]
		sortXY(s.X, s.Y)
		series = append(series, s)
	}
	base := filepath.Join(dir, prefix+"accuracy-vs-"+slug(r.Config.XLabel))
	title := fmt.Sprintf("%s: test accuracy (%%) vs %s (float %.2f%%)", ds, r.Config.XLabel, 100*r.Floats[ds].Accuracy)
	_, err := plots.BitsAccuracy(base, title, series)
	return filepath.Base(base) + ".png", err
}

// curveRuns reads the metrics of the float model and the QAT runs of ds.
func (r *Report) curveRuns(ds string) ([]plots.Run, error) {
	fl, err := readRun(r.Floats[ds].Metrics, "float")
	if err != nil {
		return nil, err
	}
	runs := []plots.Run{fl}
	for _, x := range r.Results {
		if x.Data != ds || x.Metrics == "" {
			continue
		}
		run, err := readRun(x.Metrics, x.Run)
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	return runs, nil
}

func sortXY(x, y []float64) {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	xs, ys := append([]float64(nil), x...), append([]float64(nil), y...)
	for i, j := range idx {
		x[i], y[i] = xs[j], ys[j]
	}
}

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, s)
}
