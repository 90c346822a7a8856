package data

import (
	"errors"
	"io/fs"
	"testing"

	"qat/model"
)

func TestSplits(t *testing.T) {
	tr, te, norm, err := Splits(SourceEmbedded, 100)
	if err != nil {
		t.Fatal(err)
	}
	if tr.N != 100 || te.N == 0 {
		t.Errorf("train %d test %d images, want 100 and some", tr.N, te.N)
	}
	if !norm.Equal(model.Norm{Mean: MNISTMean, Std: MNISTStd}) {
		t.Errorf("norm %+v, want MNIST's", norm)
	}
	if _, _, _, err := Splits(SourceEmbedded, -1); err == nil {
		t.Error("negative limit accepted")
	}
	if _, _, _, err := Splits(t.TempDir(), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty directory: %v, want fs.ErrNotExist", err)
	}
}
