package plots

import (
	"fmt"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"qat/internal/floats"
)

// Role is what a quantizer quantizes: it sets the dash pattern of the
// quantizer's lines and the name and title of its histogram.
type Role int

// The roles of quantizers.
const (
	// RoleAct quantizes a layer's output (solid lines).
	RoleAct Role = iota
	// RoleWeight quantizes a layer's weight (dashed lines).
	RoleWeight
	// RoleInput quantizes the model's input (dotted lines).
	RoleInput
)

// Quantizer is one quantizer at a logged Step: its params (per-channel:
// one scale and zero point per channel) and its error on the tensor it
// saw, MSE and SQNR in dB (+Inf for no error).
type Quantizer struct {
	Name      string
	Role      Role
	Scale     []float32
	ZeroPoint []int32
	MSE       float64
	SQNR      float64
}

// quantSeries is one quantizer's records over a run's logged steps.
type quantSeries struct {
	name  string
	role  Role
	steps []float64
	recs  []Quantizer
}

// quantSeriesOf groups the quantizer records of r's steps by quantizer, in
// the order the quantizers first appear.
func quantSeriesOf(r Run) []*quantSeries {
	var out []*quantSeries
	byName := map[string]*quantSeries{}
	for _, s := range r.Steps {
		for _, q := range s.Quant {
			qs := byName[q.Name]
			if qs == nil {
				qs = &quantSeries{name: q.Name, role: q.Role}
				byName[q.Name] = qs
				out = append(out, qs)
			}
			qs.steps = append(qs.steps, float64(s.Step))
			qs.recs = append(qs.recs, q)
		}
	}
	return out
}

// prefix is the file name prefix of a run's figures: its label, with
// sanitize applied, and '_'; empty for an empty label.
func prefix(label string) string {
	if label == "" {
		return ""
	}
	return sanitize(label) + "_"
}

// addQuantLine adds the line of quantizer i with the role's dash pattern
// (weights dashed, the input dotted, activations solid) and names it in
// the legend. It adds nothing for no points.
func addQuantLine(p *plot.Plot, xy plotter.XYs, i int, role Role, name string) error {
	if len(xy) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color, l.Width = colorOf(i), vg.Points(1.5)
	switch role {
	case RoleWeight:
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(2)}
	case RoleInput:
		l.Dashes = []vg.Length{vg.Points(1.5), vg.Points(1.5)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// figure is a plot to save under a name once it has lines.
type figure struct {
	name  string
	p     *plot.Plot
	lines int
}

// saveFigures saves the figures that have lines into dir, prefixed, and
// returns the paths; none with lines is an ErrNoData error saying what.
func saveFigures(dir, pre string, figs []*figure, what string) ([]string, error) {
	var paths []string
	for _, f := range figs {
		if f.lines == 0 {
			continue
		}
		ps, err := Save(f.p, filepath.Join(dir, pre+f.name), Width, Height)
		paths = append(paths, ps...)
		if err != nil {
			return paths, err
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s: %w", what, ErrNoData)
	}
	return paths, nil
}

// QuantError draws each quantizer's error on the batch of every logged
// step of run, one line per quantizer named by it in the legend, into
// dir/<prefix>quant_mse (mean squared error, log scale) and
// dir/<prefix>quant_sqnr (SQNR in dB), where prefix is the run's label
// and '_' (see the package doc). Steps with zero error (SQNR +Inf) are
// left out. A run without quantizer records is an ErrNoData error.
func QuantError(dir string, run Run) ([]string, error) {
	qs := quantSeriesOf(run)
	title := run.Label + ": "
	mse := &figure{name: "quant_mse", p: newPlot(title+"quantization error (MSE) per quantizer\non the batch of each logged step",
		"step", "mean squared error")}
	logY(mse.p)
	sqnr := &figure{name: "quant_sqnr", p: newPlot(title+"signal-to-quantization-noise ratio per quantizer\non the batch of each logged step",
		"step", "SQNR (dB, higher is better)")}
	for _, f := range []*figure{mse, sqnr} {
		f.p.Add(plotter.NewGrid())
	}
	for i, q := range qs {
		var m, s plotter.XYs
		for j, r := range q.recs {
			if r.MSE > 0 && floats.Finite(r.MSE) {
				m = append(m, plotter.XY{X: q.steps[j], Y: math.Log10(r.MSE)})
			}
			if floats.Finite(r.SQNR) {
				s = append(s, plotter.XY{X: q.steps[j], Y: r.SQNR})
			}
		}
		if err := addQuantLine(mse.p, m, i, q.role, q.name); err != nil {
			return nil, fmt.Errorf("plot %s: %w", mse.name, err)
		}
		if err := addQuantLine(sqnr.p, s, i, q.role, q.name); err != nil {
			return nil, fmt.Errorf("plot %s: %w", sqnr.name, err)
		}
		mse.lines += min(len(m), 1)
		sqnr.lines += min(len(s), 1)
	}
	return saveFigures(dir, prefix(run.Label), []*figure{mse, sqnr}, fmt.Sprintf("run %s: no quantizer error records", run.Label))
}

// QuantParams draws the trajectories of the params of every quantizer of
// run whose params change over the logged steps (learnable LSQ and LSQ+
// quantizers, observers that keep observing) into dir/<prefix>quant_scale
// (each scale relative to its first logged value, so that quantizers of
// different magnitude share the axis; per-channel quantizers: the mean
// over channels) and dir/<prefix>quant_zero_point (zero points in codes,
// per-channel: the mean), each written only if some quantizer's scale or
// zero point changes. A run without changing params is an ErrNoData error.
func QuantParams(dir string, run Run) ([]string, error) {
	title := run.Label + ": "
	scale := &figure{name: "quant_scale", p: newPlot(title+"scale relative to its first logged value s0\nquantizers whose scale changes; per-channel (ch): mean over channels",
		"step", "scale / s0")}
	zp := &figure{name: "quant_zero_point", p: newPlot(title+"zero point\nquantizers whose zero point changes; per-channel (ch): mean over channels",
		"step", "zero point (code)")}
	for _, f := range []*figure{scale, zp} {
		f.p.Add(plotter.NewGrid())
	}
	for i, q := range quantSeriesOf(run) {
		s := make([]float64, len(q.recs))
		z := make([]float64, len(q.recs))
		for j, r := range q.recs {
			s[j] = mean32(r.Scale)
			z[j] = meanInt(r.ZeroPoint)
		}
		ch := len(q.recs[0].Scale)
		if changes(s) {
			var xy plotter.XYs
			for j, v := range s {
				if r := v / s[0]; floats.Finite(r) {
					xy = append(xy, plotter.XY{X: q.steps[j], Y: r})
				}
			}
			name := fmt.Sprintf("%s (s0 %.3g)", q.name, s[0])
			if ch > 1 {
				name = fmt.Sprintf("%s (s0 %.3g; %d ch)", q.name, s[0], ch)
			}
			if err := addQuantLine(scale.p, xy, i, q.role, name); err != nil {
				return nil, fmt.Errorf("plot %s: %w", scale.name, err)
			}
			scale.lines += min(len(xy), 1)
		}
		if changes(z) {
			name := q.name
			if ch > 1 {
				name = fmt.Sprintf("%s (%d ch)", q.name, ch)
			}
			if err := addQuantLine(zp.p, xys(q.steps, z), i, q.role, name); err != nil {
				return nil, fmt.Errorf("plot %s: %w", zp.name, err)
			}
			zp.lines++
		}
	}
	return saveFigures(dir, prefix(run.Label), []*figure{scale, zp}, fmt.Sprintf("run %s: no quantizer params change", run.Label))
}

// changes reports whether v holds two different values.
func changes(v []float64) bool {
	for _, x := range v {
		if x != v[0] {
			return true
		}
	}
	return false
}

func mean32(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}

func meanInt(v []int32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}
