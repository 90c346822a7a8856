package plots

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"qat/internal/floats"
	"qat/quant"
)

// MaxGridLines is the most grid levels a histogram draws; a finer grid
// is drawn every k-th level.
const MaxGridLines = 64

// MaxBins is the most bins a histogram has; smaller tensors get fewer
// (binsFor).
const MaxBins = 120

// binsFor returns the number of bins for n values: 2*sqrt(n), within
// [20, MaxBins].
func binsFor(n int) int {
	return min(MaxBins, max(20, int(2*math.Sqrt(float64(n)))))
}

// Grid is the set of values a quantizer represents: (q-ZeroPoint)*Scale
// for every code q in [QMin, QMax].
type Grid struct {
	Scale      float64
	ZeroPoint  int32
	QMin, QMax int32
	// Channel is the channel whose grid this is for per-channel params
	// (the one with the largest scale), -1 for per-tensor params;
	// Channels is the number of channels.
	Channel, Channels int
}

// GridOf returns the grid of valid params p: the tensor's for per-tensor
// params, else that of the channel with the largest scale (the widest
// range; the first such channel on a tie).
func GridOf(p quant.Params) (Grid, error) {
	if err := p.Validate(); err != nil {
		return Grid{}, err
	}
	c := 0
	for i, s := range p.Scale {
		if s > p.Scale[c] {
			c = i
		}
	}
	g := Grid{Scale: float64(p.Scale[c]), ZeroPoint: p.ZeroPoint[c], QMin: p.QMin, QMax: p.QMax, Channel: c, Channels: len(p.Scale)}
	if p.PerTensor() {
		g.Channel, g.Channels = -1, 1
	}
	return g, nil
}

// Levels returns the number of grid levels.
func (g Grid) Levels() int { return int(g.QMax) - int(g.QMin) + 1 }

// Value returns the real value of code q.
func (g Grid) Value(q int32) float64 { return float64(q-g.ZeroPoint) * g.Scale }

// Range returns the clipping range [(QMin-ZeroPoint)*Scale,
// (QMax-ZeroPoint)*Scale]: values outside it saturate.
func (g Grid) Range() (lo, hi float64) { return g.Value(g.QMin), g.Value(g.QMax) }

// Lines returns the values of the grid levels to draw, at most max of
// them: every level if there are at most max, else every step-th level
// counted from the zero point (so that 0 is always drawn), with step the
// smallest that fits.
func (g Grid) Lines(max int) (values []float64, step int) {
	step = 1
	for {
		var v []float64
		for q := g.QMin; q <= g.QMax; q++ {
			if (q-g.ZeroPoint)%int32(step) == 0 {
				v = append(v, g.Value(q))
			}
		}
		if len(v) <= max || len(v) <= 1 {
			return v, step
		}
		step++
	}
}

// bin is one histogram bin: the count of values in [lo, hi), the last
// bin also holding its upper edge.
type bin struct {
	lo, hi float64
	count  int
}

// histogram counts values into n equal bins over [lo, hi]; values outside
// are not counted. n must be positive and lo < hi.
func histogram(values []float32, lo, hi float64, n int) []bin {
	bins := make([]bin, n)
	w := (hi - lo) / float64(n)
	for i := range bins {
		bins[i].lo, bins[i].hi = lo+float64(i)*w, lo+float64(i+1)*w
	}
	bins[n-1].hi = hi
	for _, v := range values {
		x := float64(v)
		if x < lo || x > hi {
			continue
		}
		i := min(int((x-lo)/w), n-1)
		bins[i].count++
	}
	return bins
}

// Tensor is a tensor as a quantizer sees it: values in row-major order,
// their shape (needed for per-channel params, whose channel axis it
// names; nil will do for per-tensor params) and the quantizer's params.
// A layer's weight is Tensor{Values: w, Shape: shape, Params: p}; a
// sample of activations Tensor{Values: acts, Params: p}.
type Tensor struct {
	Values []float32
	Shape  []int
	Params quant.Params
}

// check reports whether t's values are finite and its shape fits them and
// its params.
func (t Tensor) check() error {
	if len(t.Values) == 0 {
		return fmt.Errorf("no values: %w", ErrNoData)
	}
	for i, v := range t.Values {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("value %d is %v", i, v)
		}
	}
	if t.Shape == nil && t.Params.PerTensor() {
		return nil
	}
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("shape %v has a negative dimension", t.Shape)
		}
		n *= d
	}
	switch {
	case n != len(t.Values):
		return fmt.Errorf("shape %v does not hold %d values", t.Shape, len(t.Values))
	case !t.Params.PerTensor() && t.Params.Axis >= len(t.Shape):
		return fmt.Errorf("channel axis %d outside shape %v", t.Params.Axis, t.Shape)
	case !t.Params.PerTensor() && t.Shape[t.Params.Axis] != len(t.Params.Scale):
		return fmt.Errorf("axis %d of shape %v has %d channels, params have %d", t.Params.Axis, t.Shape, t.Shape[t.Params.Axis], len(t.Params.Scale))
	}
	return nil
}

// Histogram draws the histogram of t's values (counts on a log scale, so
// that tails and outliers show) with the quantization grid of its params
// over it, into base.{png,svg}: a thin line at every representable level
// (every k-th level, counted from zero, when there are more than
// MaxGridLines levels; the legend says so) and the clipping range as two
// bold lines. For per-channel params the grid is that of the channel with
// the largest scale, which the title names. The legend gives the fraction
// of values that saturate and the SQNR of the whole tensor with its own
// params. title is the figure's first title line, xlabel the value axis's
// label.
func Histogram(base, title string, t Tensor, xlabel string) ([]string, error) {
	g, err := GridOf(t.Params)
	if err != nil {
		return nil, fmt.Errorf("histogram %s: %w", base, err)
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("histogram %s: %w", base, err)
	}
	lo, hi := g.Range()
	xmin, xmax := lo, hi
	for _, v := range t.Values {
		xmin, xmax = math.Min(xmin, float64(v)), math.Max(xmax, float64(v))
	}
	pad := (xmax - xmin) * 0.02
	xmin, xmax = xmin-pad, xmax+pad
	bins := histogram(t.Values, xmin, xmax, binsFor(len(t.Values)))

	sub := fmt.Sprintf("grid: %d levels, scale %.3g, zero point %d", g.Levels(), g.Scale, g.ZeroPoint)
	if g.Channel >= 0 {
		sub = fmt.Sprintf("grid of channel %d (largest of %d scales): %d levels, scale %.3g, zero point %d",
			g.Channel, g.Channels, g.Levels(), g.Scale, g.ZeroPoint)
	}
	p := newPlot(title+"\n"+sub, xlabel, "count")
	logY(p)
	bars := &logBars{bins: bins, color: color.RGBA{0x1f, 0x77, 0xb4, 0xff}}
	p.Add(bars)
	p.Legend.Add(fmt.Sprintf("values (n=%d)", len(t.Values)), bars)

	levels, step := g.Lines(MaxGridLines)
	grid := &vlines{xs: levels, style: draw.LineStyle{Color: color.RGBA{0x55, 0x55, 0x55, 0xb0}, Width: vg.Points(0.5)}}
	p.Add(grid)
	name := "grid levels"
	if step > 1 {
		name = fmt.Sprintf("every %s grid level", ordinal(step))
	}
	p.Legend.Add(fmt.Sprintf("%s (%d of %d)", name, len(levels), g.Levels()), grid)

	clip := &vlines{xs: []float64{lo, hi}, style: draw.LineStyle{Color: color.RGBA{0xd6, 0x27, 0x28, 0xff}, Width: vg.Points(2.5)}}
	p.Add(clip)
	p.Legend.Add(fmt.Sprintf("clipping range [%.3g, %.3g]", lo, hi), clip)

	e := quant.MeasureError(t.Values, t.Shape, t.Params)
	p.Legend.Add(fmt.Sprintf("%.2f%% clipped", 100*e.Clipped))
	if floats.Finite(e.SQNR) {
		p.Legend.Add(fmt.Sprintf("SQNR %.1f dB", e.SQNR))
	}
	p.X.Min, p.X.Max = xmin, xmax
	return Save(p, base, Width, Height)
}

// ordinal writes n as "2nd", "3rd", "4th", ...
func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

// logBars draws histogram bins as bars of height log10(count) from the
// bottom of a log axis (logY), leaving out empty bins.
type logBars struct {
	bins  []bin
	color color.Color
}

// floor is log10 of where the bars start: below a count of 1, which
// stays visible.
var floor = math.Log10(0.5)

func (b *logBars) Plot(c draw.Canvas, plt *plot.Plot) {
	tx, ty := plt.Transforms(&c)
	for _, bn := range b.bins {
		if bn.count == 0 {
			continue
		}
		pts := []vg.Point{
			{X: tx(bn.lo), Y: ty(floor)}, {X: tx(bn.hi), Y: ty(floor)},
			{X: tx(bn.hi), Y: ty(math.Log10(float64(bn.count)))}, {X: tx(bn.lo), Y: ty(math.Log10(float64(bn.count)))},
		}
		c.FillPolygon(b.color, c.ClipPolygonXY(pts))
	}
}

func (b *logBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	top := 1
	for _, bn := range b.bins {
		top = max(top, bn.count)
	}
	return b.bins[0].lo, b.bins[len(b.bins)-1].hi, floor, math.Log10(2 * float64(top))
}

func (b *logBars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y},
	})
}

// vlines draws vertical lines across the data area at the given X values.
type vlines struct {
	xs    []float64
	style draw.LineStyle
}

func (v *vlines) Plot(c draw.Canvas, plt *plot.Plot) {
	tx, _ := plt.Transforms(&c)
	for _, x := range v.xs {
		px := tx(x)
		c.StrokeLines(v.style, c.ClipLinesX([]vg.Point{{X: px, Y: c.Min.Y}, {X: px, Y: c.Max.Y}})...)
	}
}

func (v *vlines) Thumbnail(c *draw.Canvas) {
	px := (c.Min.X + c.Max.X) / 2
	c.StrokeLine2(v.style, px, c.Min.Y, px, c.Max.Y)
}
