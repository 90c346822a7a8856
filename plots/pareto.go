package plots

import (
	"fmt"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"qat/internal/floats"
)

// Point is one configuration of a Pareto figure: its cost X (bytes,
// milliseconds) and accuracy Y (a fraction in [0, 1], drawn in percent),
// drawn with its Label next to it.
type Point struct {
	Label string
	X, Y  float64
}

// PointSeries is a group of points drawn with one glyph and color.
// OffFront keeps its points out of the Pareto front (measured otherwise,
// say).
type PointSeries struct {
	Label    string
	Points   []Point
	OffFront bool
}

// Pareto draws accuracy against a cost, each series' points with their
// labels ("" draws none), and the Pareto front of the points of the
// series not OffFront as a dashed step line, into base.{png,svg}: the
// points that no other point beats, that is has a cost no higher and an
// accuracy no lower, one of them strictly (ParetoFront). The cost axis
// is labelled in plain numbers.
func Pareto(base, title, xlabel string, series []PointSeries) ([]string, error) {
	var all []Point
	n := 0
	for _, s := range series {
		for j, pt := range s.Points {
			if !floats.Finite(pt.X) || !floats.Finite(pt.Y) {
				return nil, fmt.Errorf("plot %s: series %q point %d (%v, %v) is not finite", base, s.Label, j, pt.X, pt.Y)
			}
		}
		n += len(s.Points)
		if !s.OffFront {
			all = append(all, s.Points...)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("plot %s: no points: %w", base, ErrNoData)
	}
	p := newPlot(title, xlabel, "accuracy (%)")
	p.Add(plotter.NewGrid())
	p.X.Tick.Marker = plainTicks{}
	front := ParetoFront(all)
	steps := make(plotter.XYs, 0, 2*len(front))
	for i, k := range front {
		if i > 0 {
			steps = append(steps, plotter.XY{X: all[k].X, Y: 100 * all[front[i-1]].Y})
		}
		steps = append(steps, plotter.XY{X: all[k].X, Y: 100 * all[k].Y})
	}
	if len(steps) > 0 {
		line, err := plotter.NewLine(steps)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", base, err)
		}
		line.Color, line.Width, line.Dashes = colorOf(7), vg.Points(1), []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
		p.Legend.Add("Pareto front", line)
	}
	for i, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		xy := plotter.XYLabels{XYs: make(plotter.XYs, len(s.Points)), Labels: make([]string, len(s.Points))}
		for j, pt := range s.Points {
			xy.XYs[j], xy.Labels[j] = plotter.XY{X: pt.X, Y: 100 * pt.Y}, pt.Label
		}
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", base, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: colorOf(i), Radius: vg.Points(3.5), Shape: glyphOf(i)}
		labels, err := plotter.NewLabels(xy)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", base, err)
		}
		for k := range labels.TextStyle {
			labels.TextStyle[k].Font.Size = vg.Points(7)
			labels.TextStyle[k].YAlign = draw.YCenter
		}
		labels.Offset = vg.Point{X: vg.Points(5)}
		p.Add(sc, labels)
		p.Legend.Add(s.Label, sc)
	}
	return Save(p, base, Width, Height)
}

// plainTicks are gonum's default ticks labelled with their value to 6
// significant digits, trailing zeros dropped ("25000", not "25000.00";
// "0.7", not "0.7000000000000002").
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'g', 6, 64)
		}
	}
	return ticks
}

// ParetoFront returns the indices of the points of pts that no other
// point beats (a cost no higher and an accuracy no lower, one of them
// strictly), by increasing cost; of equal points, the first.
func ParetoFront(pts []Point) []int {
	idx := make([]int, len(pts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		pa, pb := pts[idx[a]], pts[idx[b]]
		return pa.X < pb.X || pa.X == pb.X && pa.Y > pb.Y
	})
	var front []int
	for _, i := range idx {
		if len(front) == 0 || pts[i].Y > pts[front[len(front)-1]].Y {
			front = append(front, i)
		}
	}
	return front
}
