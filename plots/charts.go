package plots

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"qat/internal/floats"
)

// Series is one line of a BitsAccuracy figure: accuracy Y (a fraction in
// [0, 1], drawn in percent) at bit widths X.
type Series struct {
	Label string
	X     []float64
	Y     []float64
}

// BitsAccuracy draws accuracy against bit width, one line with points per
// series (PTQ and QAT, say), into base.{png,svg}. The X axis is ticked at
// the bit widths the series hold.
func BitsAccuracy(base, title string, series []Series) ([]string, error) {
	if len(series) == 0 {
		return nil, fmt.Errorf("plot %s: no series: %w", base, ErrNoData)
	}
	p := newPlot(title, "bit width (bits)", "accuracy (%)")
	p.Add(plotter.NewGrid())
	var bits []float64
	for i, s := range series {
		if len(s.X) != len(s.Y) || len(s.X) == 0 {
			return nil, fmt.Errorf("plot %s: series %q has %d bit widths and %d accuracies", base, s.Label, len(s.X), len(s.Y))
		}
		xy := make(plotter.XYs, len(s.X))
		for j := range s.X {
			if !floats.Finite(s.X[j]) || !floats.Finite(s.Y[j]) {
				return nil, fmt.Errorf("plot %s: series %q point %d (%v, %v) is not finite", base, s.Label, j, s.X[j], s.Y[j])
			}
			xy[j] = plotter.XY{X: s.X[j], Y: 100 * s.Y[j]}
			bits = append(bits, s.X[j])
		}
		sort.SliceStable(xy, func(a, b int) bool { return xy[a].X < xy[b].X })
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", base, err)
		}
		l.Color, l.Width = colorOf(i), vg.Points(1.5)
		pts.GlyphStyle = draw.GlyphStyle{Color: colorOf(i), Radius: vg.Points(3.5), Shape: glyphOf(i)}
		p.Add(l, pts)
		p.Legend.Add(s.Label, l, pts)
	}
	slices.Sort(bits)
	bits = slices.Compact(bits)
	var ticks plot.ConstantTicks
	for _, b := range bits {
		ticks = append(ticks, plot.Tick{Value: b, Label: fmt.Sprintf("%g", b)})
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = bits[0]-0.5, bits[len(bits)-1]+0.5
	return Save(p, base, Width, Height)
}

// glyphOf returns the point shape of series i: shapes tell series apart
// where colors do not (print, color blindness).
func glyphOf(i int) draw.GlyphDrawer {
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PyramidGlyph{}, draw.CrossGlyph{}}
	return shapes[i%len(shapes)]
}

// Sensitivity draws a horizontal bar chart of the accuracy drop (in
// percentage points) each named layer or quantizer causes, sorted with
// the largest drop at the top, each bar labelled with its value, into
// base.{png,svg}.
func Sensitivity(base string, names []string, drops []float64) ([]string, error) {
	if err := checkBars(names, drops); err != nil {
		return nil, fmt.Errorf("plot %s: %w", base, err)
	}
	// NominalY puts the first name at the bottom.
	sorted, values := ascending(names, drops)
	p := newPlot("Quantization sensitivity: accuracy drop per layer", "accuracy drop (percentage points)", "")
	h := max(Height, vg.Length(len(names))*0.3*vg.Inch+1.5*vg.Inch)
	bars, err := plotter.NewBarChart(values, barWidth(h-1.5*vg.Inch, len(values)))
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", base, err)
	}
	bars.Horizontal = true
	bars.Color, bars.LineStyle.Width = colorOf(0), 0
	p.Add(bars)
	if err := addValueLabels(p, values, true); err != nil {
		return nil, fmt.Errorf("plot %s: %w", base, err)
	}
	p.NominalY(sorted...)
	return Save(p, base, Width, h)
}

// ascending returns names and drops sorted by drop, smallest first, ties
// in their given order.
func ascending(names []string, drops []float64) ([]string, plotter.Values) {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return drops[idx[a]] < drops[idx[b]] })
	sorted := make([]string, len(idx))
	values := make(plotter.Values, len(idx))
	for i, j := range idx {
		sorted[i], values[i] = names[j], drops[j]
	}
	return sorted, values
}

// Bars draws a vertical bar chart of values, one bar per label in the
// given order, each labelled with its value, into base.{png,svg}: an
// experiment table as a figure.
func Bars(base, title string, labels []string, values []float64, ylabel string) ([]string, error) {
	if err := checkBars(labels, values); err != nil {
		return nil, fmt.Errorf("plot %s: %w", base, err)
	}
	p := newPlot(title, "", ylabel)
	vs := plotter.Values(values)
	bars, err := plotter.NewBarChart(vs, barWidth(Width-1.5*vg.Inch, len(values)))
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", base, err)
	}
	bars.Color, bars.LineStyle.Width = colorOf(0), 0
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	p.Add(grid, bars)
	if err := addValueLabels(p, vs, false); err != nil {
		return nil, fmt.Errorf("plot %s: %w", base, err)
	}
	p.NominalX(labels...)
	long := 0
	for _, l := range labels {
		long = max(long, len(l))
	}
	if long*len(labels) > 60 {
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	}
	return Save(p, base, Width, Height)
}

func checkBars(labels []string, values []float64) error {
	if len(labels) == 0 {
		return fmt.Errorf("no bars: %w", ErrNoData)
	}
	if len(labels) != len(values) {
		return fmt.Errorf("%d labels for %d values", len(labels), len(values))
	}
	for i, v := range values {
		if !floats.Finite(v) {
			return fmt.Errorf("value %d (%s) is %v", i, labels[i], v)
		}
	}
	return nil
}

// barWidth fits n bars with gaps between them in span, the length of the
// category axis.
func barWidth(span vg.Length, n int) vg.Length {
	return min(vg.Points(40), 0.6*span/vg.Length(n))
}

// addValueLabels writes each bar's value at its end.
func addValueLabels(p *plot.Plot, values plotter.Values, horizontal bool) error {
	xy := plotter.XYLabels{XYs: make(plotter.XYs, len(values)), Labels: make([]string, len(values))}
	for i, v := range values {
		xy.XYs[i] = plotter.XY{X: float64(i), Y: v}
		if horizontal {
			xy.XYs[i] = plotter.XY{X: v, Y: float64(i)}
		}
		xy.Labels[i] = fmt.Sprintf("%.3g", v)
	}
	l, err := plotter.NewLabels(xy)
	if err != nil {
		return err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].Font.Size = vg.Points(8)
		if horizontal {
			l.TextStyle[i].YAlign = draw.YCenter
		} else {
			l.TextStyle[i].XAlign = draw.XCenter
		}
	}
	if horizontal {
		l.Offset = vg.Point{X: vg.Points(3)}
	} else {
		l.Offset = vg.Point{Y: vg.Points(3)}
	}
	p.Add(l)
	return nil
}
