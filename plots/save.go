package plots

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The size of every figure of this package, and the resolution of PNGs.
const (
	Width  = 6.5 * vg.Inch
	Height = 4 * vg.Inch
	DPI    = 150
)

// ErrNoData is wrapped by the errors of plots that have nothing to draw:
// no records, no quantizer records, no quantizer whose params change.
var ErrNoData = errors.New("nothing to plot")

// palette is matplotlib's tab10: distinct hues that stay apart on white.
var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, color.RGBA{0xd6, 0x27, 0x28, 0xff},
	color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	color.RGBA{0xe3, 0x77, 0xc2, 0xff}, color.RGBA{0x7f, 0x7f, 0x7f, 0xff},
	color.RGBA{0xbc, 0xbd, 0x22, 0xff}, color.RGBA{0x17, 0xbe, 0xcf, 0xff},
}

// colorOf returns the i-th series color, cycling through the palette.
func colorOf(i int) color.Color { return palette[i%len(palette)] }

// newPlot returns a plot with a title, axis labels and a small legend
// font.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend.Padding = vg.Points(2)
	return p
}

// Save writes p, w by h in size, to base+".png" (at DPI dots per inch)
// and base+".svg", creating base's directory if needed, and returns the
// paths written. The title spans the whole width; the legend, if any, is
// drawn to the right of the plot, outside the data, unless it would take
// more than half the width even in a smaller font.
func Save(p *plot.Plot, base string, w, h vg.Length) ([]string, error) {
	if !(w > 0 && h > 0) || math.IsInf(float64(w), 0) || math.IsInf(float64(h), 0) {
		return nil, fmt.Errorf("plot %s: size %v x %v is not positive", base, w, h)
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return nil, fmt.Errorf("plot %s: %w", base, err)
	}
	canvases := []struct {
		ext string
		c   vg.CanvasWriterTo
	}{
		{".png", vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(DPI), vgimg.UseBackgroundColor(color.White))}},
		{".svg", vgsvg.New(w, h)},
	}
	var paths []string
	for _, f := range canvases {
		drawWithLegend(p, draw.New(f.c))
		path := base + f.ext
		if err := writeTo(path, f.c); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// drawWithLegend draws p on c with its title across the whole width and
// its legend in a column at the right, level with the top of the plot. A
// legend wider than half the figure is set in a smaller font, down to
// minLegendFont, and drawn over the data if it still does not fit.
func drawWithLegend(p *plot.Plot, c draw.Canvas) {
	const pad = vg.Length(8)
	c = draw.Crop(c, pad/2, -pad/2, pad/2, -pad/2)
	if t := p.Title; t.Text != "" {
		c.FillText(t.TextStyle, vg.Point{X: c.Center().X, Y: c.Max.Y + t.TextStyle.FontExtents().Descent}, t.Text)
		c.Max.Y -= t.TextStyle.Rectangle(t.Text).Size().Y + t.Padding
		p.Title.Text = ""
		defer func() { p.Title.Text = t.Text }()
	}
	leg := p.Legend
	lw := leg.Rectangle(c).Size().X
	for lw+2*pad > c.Size().X/2 && leg.TextStyle.Font.Size > minLegendFont {
		leg.TextStyle.Font.Size--
		lw = leg.Rectangle(c).Size().X
	}
	if lw == 0 || lw+2*pad > c.Size().X/2 {
		p.Draw(c)
		return
	}
	p.Legend = plot.NewLegend()
	p.Draw(draw.Crop(c, 0, -(lw + 2*pad), 0, 0))
	p.Legend = leg
	leg.Top, leg.Left = true, true
	leg.XOffs, leg.YOffs = 0, 0
	leg.Draw(draw.Crop(c, c.Size().X-lw, 0, 0, 0))
}

// minLegendFont is the smallest font a legend is shrunk to.
const minLegendFont = 7

func writeTo(path string, c vg.CanvasWriterTo) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

// logTicks labels a Y axis that shows log10 of the data in the data's
// units: gonum's LogScale centres the axis label wrongly (it pads the
// plot by the label's length), so log plots draw log10 values on a
// linear axis instead. Powers of ten are labelled and the other integer
// multiples ticked; a range with fewer than two powers of ten is
// labelled with the default ticks of the original values.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	labelled := 0
	for k := math.Floor(min); k <= math.Ceil(max); k++ {
		for m := 1; m <= 9; m++ {
			v := k + math.Log10(float64(m))
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 {
				t.Label = pow10Label(int(k))
				labelled++
			}
			ticks = append(ticks, t)
		}
	}
	if labelled >= 2 {
		return ticks
	}
	ticks = ticks[:0]
	for _, t := range (plot.DefaultTicks{}).Ticks(math.Pow(10, min), math.Pow(10, max)) {
		if t.Value > 0 {
			ticks = append(ticks, plot.Tick{Value: math.Log10(t.Value), Label: t.Label})
		}
	}
	return ticks
}

// pow10Label writes 10^k plainly for small k (0.001 to 1000), else as
// 1eK.
func pow10Label(k int) string {
	if k >= -3 && k <= 3 {
		return strconv.FormatFloat(math.Pow10(k), 'f', -1, 64)
	}
	return fmt.Sprintf("1e%d", k)
}

// logY makes p's Y axis a log10 axis (see logTicks): the data added must
// be log10 values.
func logY(p *plot.Plot) {
	p.Y.Tick.Marker = logTicks{}
	p.Y.Label.Text += " (log scale)"
}
