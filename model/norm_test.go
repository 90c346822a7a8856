package model

import (
	"math"
	"strings"
	"testing"
)

func TestNormValidate(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		n        Norm
		channels int
		want     string // "" for valid
	}{
		{Norm{}, 1, ""},
		{Norm{Mean: 0.1307, Std: 0.3081}, 3, ""},
		{Norm{ChannelMean: []float32{0.4914, 0.4822, 0.4465}, ChannelStd: []float32{0.247, 0.243, 0.261}}, 3, ""},
		{Norm{ChannelMean: []float32{0.5, 0.5}, ChannelStd: []float32{0, 1}}, 0, ""},
		{Norm{Mean: nan}, 1, "mean NaN is not finite"},
		{Norm{Mean: inf}, 1, "mean +Inf is not finite"},
		{Norm{Std: -1}, 1, "std -1 is not"},
		{Norm{Std: nan}, 1, "std NaN is not"},
		{Norm{Std: inf}, 1, "std +Inf is not"},
		{Norm{ChannelMean: []float32{0.5}, ChannelStd: []float32{0.5, 0.5}}, 0, "1 channel means and 2 channel stds"},
		{Norm{ChannelMean: []float32{}, ChannelStd: []float32{}}, 0, "0 channel means"},
		{Norm{ChannelMean: []float32{0.5, 0.5}, ChannelStd: []float32{1, 1}}, 3, "want one per input channel (3)"},
		{Norm{Mean: 0.1, ChannelMean: []float32{0.5}, ChannelStd: []float32{1}}, 1, "set one or the other"},
		{Norm{ChannelMean: []float32{0.5, nan}, ChannelStd: []float32{1, 1}}, 2, "mean of channel 1 NaN"},
		{Norm{ChannelMean: []float32{0.5, 0.5}, ChannelStd: []float32{1, -2}}, 2, "std of channel 1 -2"},
	} {
		err := c.n.Validate(c.channels)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.n, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want one containing %q", c.n, err, c.want)
		}
	}
}

func TestNormOf(t *testing.T) {
	// torchvision's Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243,
	// 0.261)) after ToTensor: channel c of pixel p is (p/255 - mean[c]) /
	// std[c] in float32.
	n := Norm{ChannelMean: []float32{0.4914, 0.4822, 0.4465}, ChannelStd: []float32{0.247, 0.243, 0}}
	for c := range 3 {
		for _, p := range []uint8{0, 1, 128, 255} {
			want := float32(p)/255 - n.ChannelMean[c]
			if n.ChannelStd[c] != 0 {
				want /= n.ChannelStd[c]
			}
			if got := n.Of(c).Apply(p); got != want {
				t.Errorf("channel %d pixel %d: %v, want %v", c, p, got, want)
			}
		}
	}
	if u := (Norm{Mean: 0.5, Std: 2}); !u.Of(2).Equal(u) {
		t.Error("Of of a per-tensor Norm is not the Norm itself")
	}
	defer func() {
		if recover() == nil {
			t.Error("Apply of a per-channel Norm did not panic")
		}
	}()
	n.Apply(0)
}
