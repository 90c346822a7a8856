package data

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// Splits accepted by LoadSplit.
const (
	Train = "train"
	Test  = "test"
)

// NumClasses is the number of classes of MNIST and Fashion-MNIST.
const NumClasses = 10

// A Dataset is N images of C channels of H x W pixels with a class label
// each. Images holds the pixels of image i at
// Images[i*C*H*W : (i+1)*C*H*W] in CHW order (PyTorch's): channel by
// channel, each H x W plane row-major. Labels[i] is its class, below
// Classes. Grayscale data (MNIST) has C = 1, RGB data (CIFAR-10, image
// folders) C = 3, in the order red, green, blue. Datasets from this
// package are valid (see Validate) and their slices are never modified by
// it; Limit returns views that share them.
type Dataset struct {
	// Name says where the data came from, for messages, e.g.
	// "mnist train" or the images file's path.
	Name       string
	N, C, H, W int
	Images     []uint8
	Labels     []uint8
	Classes    int
}

// Len returns the number of samples, N.
func (d *Dataset) Len() int { return d.N }

// ImageSize returns the number of pixels of an image, C*H*W.
func (d *Dataset) ImageSize() int { return d.C * d.H * d.W }

// Image returns the C*H*W pixels of image i in CHW order, a view into
// d.Images. It panics if i is out of range.
func (d *Dataset) Image(i int) []uint8 {
	if i < 0 || i >= d.N {
		panic(fmt.Sprintf("data: image index %d out of range [0, %d)", i, d.N))
	}
	n := d.ImageSize()
	return d.Images[i*n : (i+1)*n : (i+1)*n]
}

// Validate checks that the slices match the sizes and that every label is
// below Classes.
func (d *Dataset) Validate() error {
	switch {
	case d.N < 0 || d.C <= 0 || d.H <= 0 || d.W <= 0:
		return fmt.Errorf("%s: invalid size %d images of %dx%dx%d (channels x height x width)", d.Name, d.N, d.C, d.H, d.W)
	case d.Classes <= 0 || d.Classes > 256:
		return fmt.Errorf("%s: invalid class count %d", d.Name, d.Classes)
	case len(d.Images) != d.N*d.ImageSize():
		return fmt.Errorf("%s: %d pixels for %d images of %dx%dx%d", d.Name, len(d.Images), d.N, d.C, d.H, d.W)
	case len(d.Labels) != d.N:
		return fmt.Errorf("%s: %d labels for %d images", d.Name, len(d.Labels), d.N)
	}
	for i, l := range d.Labels {
		if int(l) >= d.Classes {
			return fmt.Errorf("%s: label %d of sample %d is not below %d", d.Name, l, i, d.Classes)
		}
	}
	return nil
}

// Limit returns the first n samples of d as a view sharing its slices, for
// a --limit option. n = 0 or n >= d.N returns d itself; negative n panics.
func (d *Dataset) Limit(n int) *Dataset {
	if n < 0 {
		panic(fmt.Sprintf("data: negative limit %d", n))
	}
	if n == 0 || n >= d.N {
		return d
	}
	l := *d
	l.N = n
	size := n * d.ImageSize()
	l.Images = d.Images[:size:size]
	l.Labels = d.Labels[:n:n]
	return &l
}

// ClassCounts returns the number of samples of each class.
func (d *Dataset) ClassCounts() []int {
	c := make([]int, d.Classes)
	for _, l := range d.Labels {
		c[l]++
	}
	return c
}

// MeanStd returns the mean and the (population) standard deviation of all
// pixels of d, of every channel, scaled to [0, 1]: the constants of a
// per-tensor Norm for d. It computes them exactly from a histogram of the
// 256 pixel values. For the MNIST training set they are 0.1307 and 0.3081
// to four places. An empty d gives 0, 0.
func (d *Dataset) MeanStd() (mean, std float64) {
	var hist [256]int64
	for _, p := range d.Images {
		hist[p]++
	}
	return histMeanStd(&hist)
}

// ChannelMeanStd returns the mean and the (population) standard deviation
// of the pixels of each channel of d scaled to [0, 1], C values each: the
// constants of a per-channel Norm for d (ChannelMean and ChannelStd). It
// computes them exactly, as MeanStd, from a histogram per channel. An
// empty d gives zeros.
func (d *Dataset) ChannelMeanStd() (mean, std []float64) {
	hist := make([][256]int64, d.C)
	plane := d.H * d.W
	for i := range d.N {
		img := d.Image(i)
		for c := range hist {
			for _, p := range img[c*plane : (c+1)*plane] {
				hist[c][p]++
			}
		}
	}
	mean, std = make([]float64, d.C), make([]float64, d.C)
	for c := range hist {
		mean[c], std[c] = histMeanStd(&hist[c])
	}
	return mean, std
}

// histMeanStd returns the mean and population standard deviation of the
// pixels counted by hist, scaled to [0, 1]; 0, 0 if there are none.
func histMeanStd(hist *[256]int64) (mean, std float64) {
	var n, sum float64
	for v, c := range hist {
		n += float64(c)
		sum += float64(v) * float64(c)
	}
	if n == 0 {
		return 0, 0
	}
	mean = sum / 255 / n
	var ss float64
	for v, c := range hist {
		dv := float64(v)/255 - mean
		ss += dv * dv * float64(c)
	}
	return mean, math.Sqrt(ss / n)
}

// NewDataset builds a Dataset named name from an images array of shape
// [N, H, W] (one channel) and a labels array of shape [N] with values
// below NumClasses.
// The Dataset keeps the arrays' Data slices.
func NewDataset(name string, images, labels IDX) (*Dataset, error) {
	return newDataset(name, name+" images", name+" labels", images, labels)
}

// newDataset is NewDataset with the names of the images and labels used
// in errors.
func newDataset(name, imgName, lblName string, images, labels IDX) (*Dataset, error) {
	if err := images.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", imgName, err)
	}
	if err := labels.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", lblName, err)
	}
	if len(images.Dims) != 3 {
		return nil, fmt.Errorf("%s: images have shape %v, want 3 dimensions (count, rows, columns)", imgName, images.Dims)
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("%s: labels have shape %v, want 1 dimension (count)", lblName, labels.Dims)
	}
	if images.Dims[0] != labels.Dims[0] {
		return nil, fmt.Errorf("%s has %d images but %s has %d labels", imgName, images.Dims[0], lblName, labels.Dims[0])
	}
	for i, l := range labels.Data {
		if l >= NumClasses {
			return nil, fmt.Errorf("%s: label %d of sample %d is not below %d", lblName, l, i, NumClasses)
		}
	}
	return &Dataset{
		Name:    name,
		N:       images.Dims[0],
		C:       1,
		H:       images.Dims[1],
		W:       images.Dims[2],
		Images:  images.Data,
		Labels:  labels.Data,
		Classes: NumClasses,
	}, nil
}

// splitFiles returns the base names of a split's images and labels files.
func splitFiles(split string) (images, labels string, err error) {
	switch split {
	case Train:
		return "train-images-idx3-ubyte", "train-labels-idx1-ubyte", nil
	case Test:
		return "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", nil
	}
	return "", "", fmt.Errorf("unknown split %q (want %q or %q)", split, Train, Test)
}

// findFile returns dir/base if it exists, else dir/base.gz if that does,
// else an error wrapping fs.ErrNotExist that names both.
func findFile(dir, base string) (string, error) {
	for _, name := range []string{base, base + ".gz"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("%s: neither %s nor %s.gz found: %w", dir, base, base, fs.ErrNotExist)
}

// LoadSplit loads split Train or Test of an MNIST-format dataset from dir:
// the files train-images-idx3-ubyte and train-labels-idx1-ubyte, or
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each raw or with a
// .gz suffix (the raw file if both exist). Errors name the file at fault;
// a missing file is an error wrapping fs.ErrNotExist. The Dataset is named
// after the images file.
func LoadSplit(dir, split string) (*Dataset, error) {
	imgBase, lblBase, err := splitFiles(split)
	if err != nil {
		return nil, err
	}
	imgPath, err := findFile(dir, imgBase)
	if err != nil {
		return nil, err
	}
	lblPath, err := findFile(dir, lblBase)
	if err != nil {
		return nil, err
	}
	images, err := ReadIDXFile(imgPath)
	if err != nil {
		return nil, err
	}
	labels, err := ReadIDXFile(lblPath)
	if err != nil {
		return nil, err
	}
	return newDataset(imgPath, imgPath, lblPath, images, labels)
}
