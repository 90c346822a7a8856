package data

import (
	"bytes"
	"math"
	"os"
	"reflect"
	"testing"
)

// loadFull loads a split of a named source, skipping the test when
// scripts/fetch-data.sh has not installed it.
func loadFull(t *testing.T, spec, split string) *Dataset {
	t.Helper()
	s, err := ResolveSource(spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); err != nil {
		t.Skipf("%s not installed (%v); run scripts/fetch-data.sh to test it", spec, err)
	}
	d, err := s.Load(split)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestFullMNIST checks the installed MNIST: the well-known sizes
// (60000 training and 10000 test images of 28x28) and per-class training
// counts, the mean and std that MNISTMean and MNISTStd round, and that the
// embedded sample is its start.
func TestFullMNIST(t *testing.T) {
	train := loadFull(t, SourceMNIST, Train)
	test := loadFull(t, SourceMNIST, Test)
	if train.N != 60000 || test.N != 10000 || train.H != 28 || train.W != 28 || test.H != 28 || test.W != 28 {
		t.Fatalf("sizes: train %d of %dx%d, test %d of %dx%d", train.N, train.H, train.W, test.N, test.H, test.W)
	}
	// The class counts of MNIST's training set, commonly quoted (5923
	// zeros, 6742 ones, ...) and those of the npm files.
	if got, want := train.ClassCounts(), []int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}; !reflect.DeepEqual(got, want) {
		t.Errorf("training class counts %v, want %v", got, want)
	}
	m, s := train.MeanStd()
	if math.Abs(m-MNISTMean) > 5e-5 || math.Abs(s-MNISTStd) > 5e-5 {
		t.Errorf("MeanStd = %.5f, %.5f; MNISTMean, MNISTStd = %v, %v", m, s, MNISTMean, MNISTStd)
	}
	for _, c := range []struct {
		split string
		full  *Dataset
	}{{Train, train}, {Test, test}} {
		e, err := LoadEmbedded(c.split)
		if err != nil {
			t.Fatal(err)
		}
		l := c.full.Limit(e.N)
		if !bytes.Equal(e.Images, l.Images) || !bytes.Equal(e.Labels, l.Labels) {
			t.Errorf("embedded %s is not the first %d samples of MNIST", c.split, e.N)
		}
	}
}

// TestFullFashionMNIST checks the installed Fashion-MNIST: 60000 and
// 10000 images with exactly 6000 and 1000 of each class (Zalando's
// description of the data set), and the mean and std that
// FashionMNISTMean and FashionMNISTStd round.
func TestFullFashionMNIST(t *testing.T) {
	train := loadFull(t, SourceFashionMNIST, Train)
	test := loadFull(t, SourceFashionMNIST, Test)
	if train.N != 60000 || test.N != 10000 || train.H != 28 || train.W != 28 {
		t.Fatalf("sizes: train %d of %dx%d, test %d", train.N, train.H, train.W, test.N)
	}
	for c, n := range train.ClassCounts() {
		if n != 6000 {
			t.Errorf("training class %d has %d images, want 6000", c, n)
		}
	}
	for c, n := range test.ClassCounts() {
		if n != 1000 {
			t.Errorf("test class %d has %d images, want 1000", c, n)
		}
	}
	m, s := train.MeanStd()
	if math.Abs(m-FashionMNISTMean) > 5e-5 || math.Abs(s-FashionMNISTStd) > 5e-5 {
		t.Errorf("MeanStd = %.5f, %.5f; FashionMNISTMean, FashionMNISTStd = %v, %v", m, s, FashionMNISTMean, FashionMNISTStd)
	}
}
