package plots

import (
	"fmt"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"qat/internal/floats"
)

// Run is the metrics of one training run under the label its plots show.
type Run struct {
	Label  string
	Steps  []Step
	Epochs []Epoch
}

// Step is a logged training step of a Run: the batch's loss and accuracy
// (a fraction) and, for a quantized model, every quantizer's state and
// error on the tensor it saw.
type Step struct {
	Step           int64
	Loss, Accuracy float64
	Quant          []Quantizer
}

// Epoch is the evaluation at the end of an epoch of a Run, Step steps
// into it: the validation loss and accuracy (a fraction), each nil when
// the epoch has none.
type Epoch struct {
	Step                 int64
	ValLoss, ValAccuracy *float64
}

// Smoothing is the weight of the newest logged value in the exponential
// moving average drawn for per-step training curves.
const Smoothing = 0.3

// ema returns the exponential moving average of v with weight a on the
// newest value, starting from v[0].
func ema(v []float64, a float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		if i == 0 {
			out[i] = x
			continue
		}
		out[i] = a*x + (1-a)*out[i-1]
	}
	return out
}

// curve is one run's training series (per logged step) and validation
// points (per epoch) of one metric.
type curve struct {
	train, val plotter.XYs
}

// Curves draws the training curves of runs, one color per run, into dir:
// loss.{png,svg} (the training loss of every logged step, smoothed by an
// exponential moving average, and the validation loss of every epoch as
// points, on a log scale) and accuracy.{png,svg} (the same for accuracy,
// in percent). Runs of different length share the step axis, each
// counting its own steps. It returns the paths written.
func Curves(dir string, runs []Run) ([]string, error) {
	loss := make([]curve, len(runs))
	acc := make([]curve, len(runs))
	for i, r := range runs {
		var lx, lv, ax, av []float64
		for _, s := range r.Steps {
			if floats.Finite(s.Loss) {
				lx, lv = append(lx, float64(s.Step)), append(lv, s.Loss)
			}
			if floats.Finite(s.Accuracy) {
				ax, av = append(ax, float64(s.Step)), append(av, 100*s.Accuracy)
			}
		}
		loss[i].train = xys(lx, ema(lv, Smoothing))
		acc[i].train = xys(ax, ema(av, Smoothing))
		for _, e := range r.Epochs {
			if e.ValLoss != nil && floats.Finite(*e.ValLoss) {
				loss[i].val = append(loss[i].val, plotter.XY{X: float64(e.Step), Y: *e.ValLoss})
			}
			if e.ValAccuracy != nil && floats.Finite(*e.ValAccuracy) {
				acc[i].val = append(acc[i].val, plotter.XY{X: float64(e.Step), Y: 100 * *e.ValAccuracy})
			}
		}
	}
	smoothed := fmt.Sprintf("train: moving average (weight %.1f on each logged step); val: per epoch", Smoothing)
	lp := newPlot("Loss\n"+smoothed, "step", "cross-entropy loss")
	if positive(loss) {
		logY(lp)
		for _, c := range loss {
			for _, xy := range []plotter.XYs{c.train, c.val} {
				for j := range xy {
					xy[j].Y = math.Log10(xy[j].Y)
				}
			}
		}
	}
	ap := newPlot("Accuracy\n"+smoothed, "step", "accuracy (%)")
	var paths []string
	for _, f := range []struct {
		name   string
		p      *plot.Plot
		curves []curve
	}{{"loss", lp, loss}, {"accuracy", ap, acc}} {
		n, err := addCurves(f.p, runs, f.curves)
		if err != nil {
			return paths, fmt.Errorf("plot %s: %w", f.name, err)
		}
		if n == 0 {
			return paths, fmt.Errorf("plot %s: no run has %s records: %w", f.name, f.name, ErrNoData)
		}
		ps, err := Save(f.p, filepath.Join(dir, f.name), Width, Height)
		paths = append(paths, ps...)
		if err != nil {
			return paths, err
		}
	}
	return paths, nil
}

// positive reports whether every value of the curves is positive, so
// that they can be drawn on a log scale.
func positive(curves []curve) bool {
	for _, c := range curves {
		for _, xy := range append(append(plotter.XYs(nil), c.train...), c.val...) {
			if xy.Y <= 0 {
				return false
			}
		}
	}
	return true
}

// addCurves adds each run's training line and validation points and
// returns how many series it added.
func addCurves(p *plot.Plot, runs []Run, curves []curve) (int, error) {
	p.Add(plotter.NewGrid())
	n := 0
	for i, c := range curves {
		col := colorOf(i)
		if len(c.train) > 0 {
			l, err := plotter.NewLine(c.train)
			if err != nil {
				return n, err
			}
			l.Color, l.Width = col, vg.Points(1.5)
			p.Add(l)
			p.Legend.Add(runs[i].Label+" train", l)
			n++
		}
		if len(c.val) > 0 {
			s, err := plotter.NewScatter(c.val)
			if err != nil {
				return n, err
			}
			s.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(4), Shape: draw.CircleGlyph{}}
			p.Add(s)
			p.Legend.Add(runs[i].Label+" val", s)
			n++
		}
	}
	return n, nil
}

func xys(x, y []float64) plotter.XYs {
	out := make(plotter.XYs, len(x))
	for i := range x {
		out[i] = plotter.XY{X: x[i], Y: y[i]}
	}
	return out
}
