package data

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"qat/model"
)

// cifarRecords encodes records of CIFAR-10's binary format with the given
// labels: pixel k (0..3071, CHW) of record r is byte(first+r+k), so that
// every record, and every file, differs.
func cifarRecords(first int, labels ...byte) []byte {
	var b []byte
	for r, l := range labels {
		b = append(b, l)
		for k := range cifarImage {
			b = append(b, byte(first+r+k))
		}
	}
	return b
}

// writeCIFAR writes the CIFAR-10 files into dir: five training batches of
// 2, 1, 1, 1 and 1 records, labelled 0 to 5 mod 10 in order, and a test
// batch of 3 records labelled 7, 8, 9. The records of training batch j
// start at pixel value 10*j, those of the test batch at 100.
func writeCIFAR(t *testing.T, dir string) {
	t.Helper()
	files := map[string][]byte{
		"data_batch_1.bin": cifarRecords(10, 0, 1),
		"data_batch_2.bin": cifarRecords(20, 2),
		"data_batch_3.bin": cifarRecords(30, 3),
		"data_batch_4.bin": cifarRecords(40, 4),
		"data_batch_5.bin": cifarRecords(50, 5),
		"test_batch.bin":   cifarRecords(100, 7, 8, 9),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadCIFAR10(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR(t, dir)
	train, err := LoadCIFAR10(dir, Train)
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 6 || train.C != 3 || train.H != 32 || train.W != 32 || train.Classes != 10 {
		t.Fatalf("train: %d images of %dx%dx%d, %d classes; want 6 of 3x32x32, 10", train.N, train.C, train.H, train.W, train.Classes)
	}
	if err := train.Validate(); err != nil {
		t.Fatal(err)
	}
	// The batches in order 1 to 5: labels 0 1 | 2 | 3 | 4 | 5, and image 2
	// is the first record of batch 2, whose pixel k is byte(20+k).
	if !bytes.Equal(train.Labels, []byte{0, 1, 2, 3, 4, 5}) {
		t.Errorf("labels %v, want [0 1 2 3 4 5]", train.Labels)
	}
	// CHW: red (0, 0) is pixel 0, green (0, 1) pixel 1024+1, blue
	// (31, 31) pixel 2048+31*32+31 = 3071 of the record.
	img := train.Image(2)
	for _, c := range []struct {
		ch, y, x, k int
	}{{0, 0, 0, 0}, {1, 0, 1, 1025}, {2, 31, 31, 3071}} {
		if got, want := img[c.ch*1024+c.y*32+c.x], byte(20+c.k); got != want {
			t.Errorf("image 2 channel %d (%d, %d) = %d, want %d", c.ch, c.y, c.x, got, want)
		}
	}
	// Image 1 is the second record of batch 1: pixel k is byte(10+1+k).
	if got := train.Image(1)[0]; got != 11 {
		t.Errorf("image 1 pixel 0 = %d, want 11", got)
	}
	test, err := LoadCIFAR10(dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	if test.N != 3 || !bytes.Equal(test.Labels, []byte{7, 8, 9}) || test.Image(2)[5] != 107 {
		t.Errorf("test: %d images, labels %v, image 2 pixel 5 = %d; want 3, [7 8 9], 107", test.N, test.Labels, test.Image(2)[5])
	}
	if _, err := LoadCIFAR10(dir, "validation"); err == nil {
		t.Error("unknown split: no error")
	}
}

// TestCIFARSource loads the files through the cifar10:DIR spec: the
// datasets are named after it, and Splits normalises each channel with
// the training set's ChannelMeanStd rounded to float32.
func TestCIFARSource(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR(t, dir)
	spec := "cifar10:" + dir
	train, test, norm, err := Splits(spec, 4)
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 4 || test.N != 3 || train.Name != spec+" train" || test.Name != spec+" test" {
		t.Errorf("train %d (%q), test %d (%q); want 4 and 3 named after %q", train.N, train.Name, test.N, test.Name, spec)
	}
	full, err := LoadCIFAR10(dir, Train)
	if err != nil {
		t.Fatal(err)
	}
	m, s := full.ChannelMeanStd() // of all 6 images, not the 4 kept
	want := model.Norm{
		ChannelMean: []float32{float32(m[0]), float32(m[1]), float32(m[2])},
		ChannelStd:  []float32{float32(s[0]), float32(s[1]), float32(s[2])},
	}
	if !norm.Equal(want) {
		t.Errorf("norm %+v, want %+v", norm, want)
	}
	if err := norm.Validate(3); err != nil {
		t.Error(err)
	}
	if _, _, _, err := Splits("cifar10:"+filepath.Join(dir, "nowhere"), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v, want fs.ErrNotExist", err)
	}
}

func TestCIFARErrors(t *testing.T) {
	good := cifarRecords(0, 1)
	for _, c := range []struct {
		name  string
		batch []byte // data_batch_3.bin; nil: missing
		want  string // the error, after "DIR/data_batch_3.bin: "
	}{
		{"missing batch", nil, "CIFAR-10 train batch not found: file does not exist"},
		{"empty", []byte{}, "empty file: want records of 3073 bytes (a label and 3x32x32 pixels)"},
		{"truncated record", append(cifarRecords(0, 1, 2), good[:100]...),
			"6246 bytes are not a whole number of 3073-byte records: 2 records and 100 bytes over"},
		{"label only", []byte{3}, "1 bytes are not a whole number of 3073-byte records: 0 records and 1 bytes over"},
		{"bad label", cifarRecords(0, 9, 4, 10, 2), "record 2: label 10 is not below 10"},
		{"label 255", cifarRecords(0, 255), "record 0: label 255 is not below 10"},
	} {
		dir := t.TempDir()
		writeCIFAR(t, dir)
		path := filepath.Join(dir, "data_batch_3.bin")
		if c.batch == nil {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(path, c.batch, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadCIFAR10(dir, Train)
		if want := path + ": " + c.want; err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", c.name, err, want)
		}
		if c.batch == nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: error %v does not wrap fs.ErrNotExist", c.name, err)
		}
		// The test split does not read the training files.
		if _, err := LoadCIFAR10(dir, Test); err != nil {
			t.Errorf("%s: test split: %v", c.name, err)
		}
	}
}

// FuzzReadCIFAR checks the record parser on any input: it accepts exactly
// the non-empty inputs of whole records whose labels are below 10, and
// then returns the records' labels and pixels, which encode the input
// again.
func FuzzReadCIFAR(f *testing.F) {
	f.Add(cifarRecords(0, 3))
	f.Add(cifarRecords(7, 0, 9))
	f.Add(cifarRecords(0, 10))
	f.Add(cifarRecords(0, 1)[:3000])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		images, labels, err := readCIFAR(bytes.NewReader(b), "fuzz", nil, nil)
		valid := len(b) > 0 && len(b)%cifarRecord == 0
		for r := 0; valid && r < len(b); r += cifarRecord {
			valid = b[r] < NumClasses
		}
		if (err == nil) != valid {
			t.Fatalf("%d bytes: error %v, want valid %v", len(b), err, valid)
		}
		if err != nil {
			return
		}
		if len(images) != len(labels)*cifarImage {
			t.Fatalf("%d labels but %d pixels", len(labels), len(images))
		}
		var enc []byte
		for i, l := range labels {
			enc = append(enc, l)
			enc = append(enc, images[i*cifarImage:(i+1)*cifarImage]...)
		}
		if !bytes.Equal(enc, b) {
			t.Fatal("the records do not encode the input")
		}
	})
}
