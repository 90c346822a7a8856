package data

import (
	"math"
	"slices"
	"sync"
	"testing"

	"qat/model"
)

// rgbDataset is two 3-channel images of 1 x 2 pixels:
//
//	image 0: R 0 255, G 51 0, B 255 0
//	image 1: R 255 255, G 0 51, B 0 255
func rgbDataset() *Dataset {
	return &Dataset{Name: "rgb", N: 2, C: 3, H: 1, W: 2, Classes: 10,
		Images: []uint8{
			0, 255, 51, 0, 255, 0,
			255, 255, 0, 51, 0, 255,
		},
		Labels: []uint8{4, 6},
	}
}

// rgbNorm has constants chosen so that pixels 0 and 255 normalise
// exactly: channel 0 maps [0, 1] to [-1, 1], channel 1 is left as it is,
// channel 2 maps [0, 1] to [-1, 3].
var rgbNorm = model.Norm{ChannelMean: []float32{0.5, 0, 0.25}, ChannelStd: []float32{0.5, 1, 0.25}}

func TestFillChannels(t *testing.T) {
	d := rgbDataset()
	x := make([]float32, 2*6)
	y := make([]int, 2)
	d.Fill(x, y, []int{1, 0}, rgbNorm)
	// By hand: channel 0: 0 -> (0-0.5)/0.5 = -1, 255 -> 1; channel 1:
	// p -> p/255, 51 -> 0.2; channel 2: 0 -> (0-0.25)/0.25 = -1,
	// 255 -> 3. NCHW, image 1 then image 0.
	fifth := float32(51) / 255
	want := []float32{
		1, 1, 0, fifth, -1, 3,
		-1, 1, fifth, 0, 3, -1,
	}
	if !slices.Equal(x, want) {
		t.Errorf("x = %v, want %v", x, want)
	}
	if !slices.Equal(y, []int{6, 4}) {
		t.Errorf("y = %v, want [6 4]", y)
	}
	// A per-tensor Norm applies to every channel: 255 -> (1-0.5)/0.5 = 1.
	d.Fill(x[:6], nil, []int{1}, model.Norm{Mean: 0.5, Std: 0.5})
	if want := []float32{1, 1, -1, (fifth - 0.5) / 0.5, -1, 1}; !slices.Equal(x[:6], want) {
		t.Errorf("per-tensor norm: x = %v, want %v", x[:6], want)
	}
	a := Augment{Pad: 1, Flip: true}
	if allocs := testing.AllocsPerRun(10, func() {
		d.Fill(x, y, []int{0, 1}, rgbNorm)
		d.FillAugmented(x, y, []int{0, 1}, rgbNorm, a, 3, 2)
	}); allocs != 0 {
		t.Errorf("Fill and FillAugmented allocate %v times", allocs)
	}
	two := model.Norm{ChannelMean: []float32{0, 0}, ChannelStd: []float32{1, 1}}
	mustPanic(t, "2-channel norm", func() { d.Fill(x, y, []int{0, 1}, two) })
	mustPanic(t, "negative channel std", func() {
		d.Fill(x, y, []int{0, 1}, model.Norm{ChannelMean: []float32{0, 0, 0}, ChannelStd: []float32{1, -1, 1}})
	})
	mustPanic(t, "x for 1 channel", func() { d.Fill(x[:4], y, []int{0, 1}, rgbNorm) })
	mustPanic(t, "negative epoch", func() { d.FillAugmented(x, y, []int{0, 1}, rgbNorm, a, 3, -1) })
	mustPanic(t, "pad 2 of 1x2", func() { d.FillAugmented(x, y, []int{0, 1}, rgbNorm, Augment{Pad: 2}, 3, 0) })
}

func TestChannelMeanStd(t *testing.T) {
	// By hand, pixels scaled to [0, 1]: channel 0 is 0, 1, 1, 1 (mean
	// 0.75, std sqrt(0.75*0.25)); channel 1 is 0.2, 0, 0, 0.2 (mean 0.1,
	// std 0.1); channel 2 is 1, 0, 0, 1 (mean 0.5, std 0.5). MeanStd
	// pools the 12 pixels: their sum is 3 + 0.4 + 2 = 5.4.
	d := rgbDataset()
	mean, std := d.ChannelMeanStd()
	wantMean, wantStd := []float64{0.75, 0.1, 0.5}, []float64{math.Sqrt(0.75 * 0.25), 0.1, 0.5}
	for c := range 3 {
		if math.Abs(mean[c]-wantMean[c]) > 1e-15 || math.Abs(std[c]-wantStd[c]) > 1e-15 {
			t.Errorf("channel %d: %g, %g, want %g, %g", c, mean[c], std[c], wantMean[c], wantStd[c])
		}
	}
	if m, _ := d.MeanStd(); math.Abs(m-5.4/12) > 1e-15 {
		t.Errorf("MeanStd mean %g, want %g", m, 5.4/12)
	}
	if m, s := d.Limit(1).ChannelMeanStd(); m[0] != 0.5 || s[0] != 0.5 {
		t.Errorf("image 0 channel 0: %g, %g, want 0.5, 0.5", m[0], s[0])
	}
	if m, s := (&Dataset{C: 3, H: 1, W: 1, Classes: 10}).ChannelMeanStd(); !slices.Equal(m, []float64{0, 0, 0}) || !slices.Equal(s, m) {
		t.Errorf("empty: %v, %v, want zeros", m, s)
	}
}

func TestAugmentPlane(t *testing.T) {
	// A 3 x 4 plane of the pixels 1 to 12 row-major through a table that
	// maps p > 0 to p and the padding pixel 0 to -1.
	src := []uint8{
		1, 2, 3, 4,
		5, 6, 7, 8,
		9, 10, 11, 12,
	}
	var tab [256]float32
	for p := range tab {
		tab[p] = float32(p)
	}
	tab[0] = -1
	for _, c := range []struct {
		oy, ox int
		flip   bool
		want   []float32 // by hand: dst[y][x] = src[y+oy][x'+ox]
	}{
		{0, 0, false, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{0, 0, true, []float32{4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9}},
		// One row down, two columns left: rows 1 and 2 shifted right by
		// two behind padding, then a row of padding.
		{1, -2, false, []float32{-1, -1, 5, 6, -1, -1, 9, 10, -1, -1, -1, -1}},
		// One row up, one column right, flipped: a row of padding, then
		// rows 0 and 1 of the crop (columns 1 to 3, then padding) mirrored.
		{-1, 1, true, []float32{-1, -1, -1, -1, -1, 4, 3, 2, -1, 8, 7, 6}},
	} {
		dst := make([]float32, 12)
		augmentPlane(dst, src, 3, 4, &tab, c.oy, c.ox, c.flip)
		if !slices.Equal(dst, c.want) {
			t.Errorf("offset (%d, %d) flip %v: %v, want %v", c.oy, c.ox, c.flip, dst, c.want)
		}
	}
}

// augmentSet is 8 images of 3 x 4 x 5 pixels, pixel k of image i being
// byte(31i + 7k + 1), and its buffers' size.
func augmentSet() (*Dataset, int) {
	d := &Dataset{Name: "aug", N: 8, C: 3, H: 4, W: 5, Classes: 10, Images: make([]uint8, 8*60), Labels: make([]uint8, 8)}
	for i := range d.N {
		for k := range 60 {
			d.Images[i*60+k] = byte(31*i + 7*k + 1)
		}
		d.Labels[i] = uint8(i)
	}
	return d, 60
}

func TestFillAugmentedDeterminism(t *testing.T) {
	d, size := augmentSet()
	a := Augment{Pad: 2, Flip: true}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7}
	full := make([]float32, 8*size)
	d.FillAugmented(full, nil, all, rgbNorm, a, 11, 3)
	// Each sample is what augmentPlane makes of it with its draws.
	for i := range d.N {
		oy, ox, flip := a.draw(11, 3, i)
		for c := range 3 {
			var tab [256]float32
			for p := range tab {
				tab[p] = rgbNorm.Of(c).Apply(uint8(p))
			}
			want := make([]float32, 20)
			augmentPlane(want, d.Image(i)[20*c:20*(c+1)], 4, 5, &tab, oy, ox, flip)
			if got := full[i*size+20*c : i*size+20*(c+1)]; !slices.Equal(got, want) {
				t.Fatalf("sample %d channel %d: %v, want %v", i, c, got, want)
			}
		}
	}
	// The same samples in other batches, filled by concurrent goroutines,
	// get the same pixels.
	var wg sync.WaitGroup
	for _, batch := range [][]int{{5, 2, 7}, {0}, {6, 1, 4, 3}} {
		wg.Go(func() {
			x := make([]float32, len(batch)*size)
			y := make([]int, len(batch))
			d.FillAugmented(x, y, batch, rgbNorm, a, 11, 3)
			for b, i := range batch {
				if !slices.Equal(x[b*size:(b+1)*size], full[i*size:(i+1)*size]) || y[b] != i {
					t.Errorf("sample %d in batch %v: other pixels or label than in the full batch", i, batch)
				}
			}
		})
	}
	wg.Wait()
	// Another epoch or seed augments differently.
	other := make([]float32, len(full))
	for _, c := range []struct {
		seed  uint64
		epoch int
	}{{11, 4}, {12, 3}} {
		d.FillAugmented(other, nil, all, rgbNorm, a, c.seed, c.epoch)
		if slices.Equal(other, full) {
			t.Errorf("seed %d epoch %d: the same pixels as seed 11 epoch 3", c.seed, c.epoch)
		}
	}
	// The zero Augment is Fill, whatever the seed and epoch.
	plain := make([]float32, len(full))
	d.Fill(plain, nil, all, rgbNorm)
	for _, epoch := range []int{0, 9} {
		d.FillAugmented(other, nil, all, rgbNorm, Augment{}, 77, epoch)
		if !slices.Equal(other, plain) {
			t.Errorf("zero Augment, epoch %d: not what Fill writes", epoch)
		}
	}
}

func TestAugmentDraw(t *testing.T) {
	// 1000 samples of Pad 2: each offset of [-2, 2] about 200 times in
	// each direction, flips about 500 times (the seed is fixed, so the
	// counts are too; the bounds are five standard deviations wide).
	a := Augment{Pad: 2, Flip: true}
	var rows, cols [5]int
	flips := 0
	for i := range 1000 {
		oy, ox, flip := a.draw(5, 0, i)
		if oy < -2 || oy > 2 || ox < -2 || ox > 2 {
			t.Fatalf("sample %d: offset (%d, %d) outside [-2, 2]", i, oy, ox)
		}
		rows[oy+2]++
		cols[ox+2]++
		if flip {
			flips++
		}
	}
	for k := range 5 {
		if rows[k] < 137 || rows[k] > 263 || cols[k] < 137 || cols[k] > 263 {
			t.Errorf("offset %d: %d rows, %d columns of 1000, want about 200", k-2, rows[k], cols[k])
		}
	}
	if flips < 421 || flips > 579 {
		t.Errorf("%d flips of 1000, want about 500", flips)
	}
	for i := range 100 {
		if oy, ox, flip := (Augment{Flip: true}).draw(5, 0, i); oy != 0 || ox != 0 {
			t.Fatalf("no pad: offset (%d, %d) flip %v", oy, ox, flip)
		}
		if oy, ox, flip := (Augment{Pad: 3}).draw(5, 0, i); flip || oy < -3 || oy > 3 || ox < -3 || ox > 3 {
			t.Fatalf("no flip: offset (%d, %d) flip %v", oy, ox, flip)
		}
	}
}

// TestAugmentGolden pins a few draws, as this implementation computed
// them when written (Go 1.26), so that a change of the generator or of
// its seeding, which would change the pixels of every augmented run,
// does not go unnoticed.
func TestAugmentGolden(t *testing.T) {
	a := Augment{Pad: 4, Flip: true}
	for _, c := range []struct {
		seed     uint64
		epoch, i int
		oy, ox   int
		flip     bool
	}{
		{42, 0, 0, 3, -4, true},
		{42, 0, 1, -4, 3, false},
		{42, 0, 2, -2, -3, false},
		{42, 1, 0, 1, 1, true},
		{43, 0, 0, 0, -2, false},
		{0, 0, 59999, 2, 1, false},
	} {
		if oy, ox, flip := a.draw(c.seed, c.epoch, c.i); oy != c.oy || ox != c.ox || flip != c.flip {
			t.Errorf("seed %d epoch %d sample %d: (%d, %d, %v), want (%d, %d, %v)", c.seed, c.epoch, c.i, oy, ox, flip, c.oy, c.ox, c.flip)
		}
	}
}

func TestAugmentValidate(t *testing.T) {
	for _, c := range []struct {
		a    Augment
		h, w int
		want string
	}{
		{Augment{}, 1, 1, ""},
		{Augment{Pad: 28, Flip: true}, 28, 32, ""},
		{Augment{Pad: 29}, 28, 32, "augment pad 29 is outside [0, 28], the smaller side of 28x32 images"},
		{Augment{Pad: -1}, 32, 32, "augment pad -1 is outside [0, 32], the smaller side of 32x32 images"},
	} {
		got := ""
		if err := c.a.Validate(c.h, c.w); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%+v on %dx%d: error %q, want %q", c.a, c.h, c.w, got, c.want)
		}
	}
}
