package data

import (
	"math"
	"testing"

	"qat/model"
)

func TestNormKnownPixels(t *testing.T) {
	mnist := model.Norm{Mean: MNISTMean, Std: MNISTStd}
	// torchvision's ToTensor then Normalize((0.1307,), (0.3081,)) maps
	// MNIST's pixels 0 and 255 to the often-quoted -0.4242 and 2.8215; in
	// float32 they are exactly these expressions.
	for _, c := range []struct {
		p      uint8
		want   float32
		approx float64
	}{
		{0, (0 - float32(0.1307)) / float32(0.3081), -0.4242},
		{255, (1 - float32(0.1307)) / float32(0.3081), 2.8215},
		{128, (float32(128)/255 - float32(0.1307)) / float32(0.3081), (128.0/255 - 0.1307) / 0.3081},
	} {
		got := mnist.Apply(c.p)
		if got != c.want {
			t.Errorf("Apply(%d) = %v, want %v", c.p, got, c.want)
		}
		if math.Abs(float64(got)-c.approx) > 5e-5 {
			t.Errorf("Apply(%d) = %v, want about %v", c.p, got, c.approx)
		}
	}
	// The zero Norm only scales to [0, 1]; 51/255 = 0.2.
	if got := (model.Norm{}).Apply(51); got != float32(51)/255 || math.Abs(float64(got)-0.2) > 1e-7 {
		t.Errorf("zero Norm: Apply(51) = %v, want 0.2", got)
	}
	if got := (model.Norm{}).Apply(255); got != 1 {
		t.Errorf("zero Norm: Apply(255) = %v, want 1", got)
	}
	// Std 0 means 1: only the mean is subtracted.
	if got := (model.Norm{Mean: 0.5}).Apply(255); got != 0.5 {
		t.Errorf("model.Norm{Mean: 0.5}: Apply(255) = %v, want 0.5", got)
	}
}

func TestFill(t *testing.T) {
	d := &Dataset{N: 3, C: 1, H: 2, W: 2, Classes: 10,
		Images: []uint8{
			0, 0, 0, 0,
			255, 0, 51, 0,
			1, 2, 3, 4,
		},
		Labels: []uint8{7, 8, 9},
	}
	x := make([]float32, 2*4)
	y := make([]int, 2)
	d.Fill(x, y, []int{2, 1}, model.Norm{})
	want := []float32{1.0 / 255, 2.0 / 255, 3.0 / 255, 4.0 / 255, 1, 0, 51.0 / 255, 0}
	for i := range want {
		if x[i] != want[i] {
			t.Fatalf("x = %v, want %v (NCHW, images 2 then 1)", x, want)
		}
	}
	if y[0] != 9 || y[1] != 8 {
		t.Errorf("y = %v, want [9 8]", y)
	}
	d.Fill(x[:4], nil, []int{0}, model.Norm{Mean: MNISTMean, Std: MNISTStd})
	if x[0] != (model.Norm{Mean: MNISTMean, Std: MNISTStd}).Apply(0) {
		t.Errorf("normalised 0 = %v", x[0])
	}
	if allocs := testing.AllocsPerRun(10, func() { d.Fill(x, y, []int{0, 2}, model.Norm{Mean: MNISTMean, Std: MNISTStd}) }); allocs != 0 {
		t.Errorf("Fill allocates %v times", allocs)
	}
	mustPanic(t, "short x", func() { d.Fill(x[:7], y, []int{0, 1}, model.Norm{}) })
	mustPanic(t, "short y", func() { d.Fill(x, y[:1], []int{0, 1}, model.Norm{}) })
	mustPanic(t, "index 3", func() { d.Fill(x, y, []int{0, 3}, model.Norm{}) })
	mustPanic(t, "NaN std", func() { d.Fill(x, y, []int{0, 1}, model.Norm{Std: float32(math.NaN())}) })
}

func TestOneHot(t *testing.T) {
	dst := []float32{9, 9, 9, 9, 9, 9}
	OneHot(dst, []int{2, 0}, 3)
	want := []float32{0, 0, 1, 1, 0, 0}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("OneHot = %v, want %v", dst, want)
		}
	}
	mustPanic(t, "label 3 of 3 classes", func() { OneHot(dst, []int{3, 0}, 3) })
	mustPanic(t, "short dst", func() { OneHot(dst[:5], []int{1, 0}, 3) })
}
