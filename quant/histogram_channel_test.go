package quant_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"qat/quant"
)

// histChannels returns a tensor of the given shape whose channels along
// axis differ: channel c is Gaussian of sigma 2^c shifted by c, except that
// channel 1 is ReLU-like (one-sided, 60% zeros), channel 2 constant and
// channel 3 all zeros, when the tensor has that many channels.
func histChannels(r *rand.Rand, shape []int, axis int) []float32 {
	n, inner := 1, 1
	for i, d := range shape {
		n *= d
		if i > axis {
			inner *= d
		}
	}
	x := make([]float32, n)
	for i := range x {
		c := (i / inner) % shape[axis]
		v := r.NormFloat64()*math.Ldexp(1, c) + float64(c)
		switch c {
		case 1:
			v = max(0, v-1)
		case 2:
			v = -0.75
		case 3:
			v = 0
		}
		x[i] = float32(v)
	}
	return x
}

// channelSlice returns the values of channel c of x (shape, axis) in
// index order.
func channelSlice(x []float32, shape []int, axis, c int) []float32 {
	inner := 1
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	var v []float32
	for lo := c * inner; lo < len(x); lo += shape[axis] * inner {
		v = append(v, x[lo:lo+inner]...)
	}
	return v
}

// A per-channel histogram observer equals, channel by channel, the
// per-tensor observer of the same kind and config given that channel's
// values alone (its expected params are computed so), for weight-like
// (axis 0) and activation-like (axis 1 of NCHW) tensors observed in two
// batches.
func TestHistogramPerChannelEqualsPerTensor(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	for _, tc := range []struct {
		s     quant.Scheme
		shape []int
	}{
		{quant.Int8SymmetricPerChannel, []int{6, 3, 5, 5}},
		{quant.Scheme{Bits: 4, Signed: true, Symmetric: true, NarrowRange: true, PerChannel: true}, []int{5, 40}},
		{quant.Scheme{PerChannel: true, Axis: 1}, []int{2, 5, 8, 8}},
		{quant.Scheme{Bits: 4, PerChannel: true, Axis: 1}, []int{3, 4, 16}},
	} {
		axis := tc.s.Axis
		batches := [][]float32{histChannels(r, tc.shape, axis), histChannels(r, tc.shape, axis)}
		perTensor := tc.s
		perTensor.PerChannel, perTensor.Axis = false, 0
		for _, kind := range histKinds {
			cfg := quant.ObserverConfig{Kind: kind, Bins: 256}
			obs, err := quant.NewObserver(tc.s, cfg)
			if err != nil {
				t.Fatalf("%v %s: %v", tc.s, kind, err)
			}
			if _, ok := obs.(*quant.HistogramPerChannel); !ok || obs.Scheme() != tc.s {
				t.Fatalf("%v %s: NewObserver gave %T of scheme %v", tc.s, kind, obs, obs.Scheme())
			}
			for _, b := range batches {
				if err := obs.Observe(b, tc.shape); err != nil {
					t.Fatal(err)
				}
			}
			p, err := obs.Params()
			if err != nil || p.Axis != axis || len(p.Scale) != tc.shape[axis] || p.Validate() != nil {
				t.Fatalf("%v %s: params %+v, %v", tc.s, kind, p, err)
			}
			for c := range tc.shape[axis] {
				h := newHist(t, perTensor, cfg)
				if err := h.Observe(append(channelSlice(batches[0], tc.shape, axis, c), channelSlice(batches[1], tc.shape, axis, c)...), nil); err != nil {
					t.Fatal(err)
				}
				want, _ := h.Params()
				if p.Scale[c] != want.Scale[0] || p.ZeroPoint[c] != want.ZeroPoint[0] || p.QMin != want.QMin || p.QMax != want.QMax {
					t.Errorf("%v %s channel %d: scale %g zero point %d, per tensor %g %d", tc.s, kind, c, p.Scale[c], p.ZeroPoint[c], want.Scale[0], want.ZeroPoint[0])
				}
			}
		}
	}
}

// The Observer contract of observer.go for the per-channel histogram:
// shapes are required and checked, rejected batches change nothing, Reset
// forgets the data and the channel count.
func TestHistogramPerChannelContract(t *testing.T) {
	s := quant.Int8SymmetricPerChannel
	h, err := quant.NewHistogramPerChannel(s, quant.ObserverConfig{Kind: quant.KindMSE})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Params(); !errors.Is(err, quant.ErrNoData) {
		t.Errorf("Params before data: %v", err)
	}
	if err := h.Observe(nil, []int{0, 3}); err != nil {
		t.Errorf("empty input: %v", err)
	}
	if _, err := h.Params(); !errors.Is(err, quant.ErrNoData) {
		t.Errorf("empty input counted as data: %v", err)
	}
	x := []float32{-1, 0.5, 2, 3, 0, -0.25}
	if err := h.Observe(x, []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	before, _ := h.Params()
	for _, bad := range []struct {
		name  string
		x     []float32
		shape []int
	}{
		{"NaN", []float32{1e9, -7, float32(math.NaN()), 1, 2, 3}, []int{2, 3}},
		{"Inf in the last channel", []float32{1e9, -7, 1, 1, 2, float32(math.Inf(1))}, []int{2, 3}},
		{"no shape", []float32{1e9, 2}, nil},
		{"shape of 3 for 2", []float32{1e9, 2}, []int{3}},
		{"3 channels after 2", []float32{1e9, 2, 3}, []int{3, 1}},
	} {
		err := h.Observe(bad.x, bad.shape)
		if err == nil {
			t.Errorf("%s: no error", bad.name)
		}
		if bad.name == "NaN" && !errors.Is(err, quant.ErrNonFinite) {
			t.Errorf("%s: %v does not wrap ErrNonFinite", bad.name, err)
		}
	}
	if after, _ := h.Params(); !reflect.DeepEqual(before, after) {
		t.Errorf("rejected batches changed the observer: %+v -> %+v", before, after)
	}
	axis1, _ := quant.NewHistogramPerChannel(quant.Scheme{PerChannel: true, Axis: 1}, quant.ObserverConfig{Kind: quant.KindEntropy})
	if err := axis1.Observe([]float32{1, 2}, []int{2}); err == nil {
		t.Error("axis 1 of a 1-d shape: no error")
	}
	h.Reset()
	if _, err := h.Params(); !errors.Is(err, quant.ErrNoData) {
		t.Errorf("Params after Reset: %v", err)
	}
	if err := h.Observe([]float32{1, 2, 3}, []int{3}); err != nil {
		t.Errorf("3 channels after Reset: %v", err)
	}
}

// The constructors: NewHistogram is per tensor, NewHistogramPerChannel per
// channel, and the per-channel one checks the config as NewHistogram does.
func TestHistogramPerChannelConfig(t *testing.T) {
	if _, err := quant.NewHistogram(quant.Int8SymmetricPerChannel, quant.ObserverConfig{Kind: quant.KindMSE}); !errors.Is(err, quant.ErrScheme) {
		t.Errorf("NewHistogram per channel: %v, want ErrScheme", err)
	}
	if _, err := quant.NewHistogramPerChannel(quant.Scheme{}, quant.ObserverConfig{Kind: quant.KindMSE}); !errors.Is(err, quant.ErrScheme) {
		t.Errorf("NewHistogramPerChannel per tensor: %v, want ErrScheme", err)
	}
	for _, cfg := range []quant.ObserverConfig{
		{Kind: quant.KindMSE, Percentile: 99},
		{Kind: quant.KindPercentile, Percentile: 101},
		{Kind: quant.KindEntropy, Bins: 15},
		{Kind: quant.KindMinMax},
	} {
		if h, err := quant.NewHistogramPerChannel(quant.Int8SymmetricPerChannel, cfg); err == nil {
			t.Errorf("%+v: %v, want an error", cfg, h)
		}
	}
}
