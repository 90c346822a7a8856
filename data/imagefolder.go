package data

import (
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // registers JPEG with image.Decode
	_ "image/png"  // registers PNG with image.Decode
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/image/draw"
)

// Limits of LoadImageFolder.
const (
	// DefaultFolderSize is the side of the images of an image folder
	// whose spec gives none (CIFAR-10's).
	DefaultFolderSize = 32
	// MaxFolderSize is the largest side of the images of an image folder.
	MaxFolderSize = 1024
	// MaxFolderFiles is the most files a split of an image folder may
	// hold.
	MaxFolderFiles = 1 << 20
	// MaxImagePixels is the largest width x height of an image file that
	// LoadImageFolder decodes.
	MaxImagePixels = 1 << 26
)

// folderChannels is the channel count of image-folder data: RGB.
const folderChannels = 3

// LoadImageFolder loads split Train or Test of an image folder as
// torchvision's ImageFolder reads it: dir/train/<class>/* and
// dir/test/<class>/* (dir/val when there is no dir/test). The classes are
// the names of the subdirectories of a split's folder sorted by byte
// (torchvision's order; files beside them are ignored), at most 256, and
// must be the same in both splits; the label of an image is the index of
// its class. A class folder holds only PNG and JPEG files, at least one,
// recognised by their content, each at most MaxImagePixels pixels before
// and after resizing, read class by class in the order of their names; a split holds at most
// MaxFolderFiles files and MaxIDXBytes pixels once resized. Each image is
// converted to RGB (grayscale replicated; transparency dropped: a PNG
// with an alpha channel keeps its colour as PIL's convert("RGB"), other
// translucent pixels come out over black), resized with draw.BiLinear so
// that its shorter side is size and centre-cropped to size x size, as
// torchvision's Resize(size) and CenterCrop(size) (an image whose shorter
// side is already size is only cropped; draw.BiLinear filters as PIL's
// antialiased bilinear filter but rounds down, so a resized pixel may be
// one level below torchvision's). Errors name the file or
// folder at fault; a missing folder is an error wrapping fs.ErrNotExist.
// The Dataset, of 3 x size x size images, is named after the split's
// folder.
func LoadImageFolder(dir, split string, size int) (*Dataset, error) {
	if size < 1 || size > MaxFolderSize {
		return nil, fmt.Errorf("%s: image size %d is outside [1, %d]", dir, size, MaxFolderSize)
	}
	if split != Train && split != Test {
		return nil, fmt.Errorf("unknown split %q (want %q or %q)", split, Train, Test)
	}
	trainDir := filepath.Join(dir, "train")
	testDir, err := folderTestDir(dir)
	if err != nil {
		return nil, err
	}
	classes, err := folderClasses(trainDir)
	if err != nil {
		return nil, err
	}
	testClasses, err := folderClasses(testDir)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(classes, testClasses) {
		return nil, fmt.Errorf("%s: the classes of %s and %s differ: %q only in %s, %q only in %s", dir,
			filepath.Base(trainDir), filepath.Base(testDir), missing(classes, testClasses), filepath.Base(trainDir),
			missing(testClasses, classes), filepath.Base(testDir))
	}
	splitDir := trainDir
	if split == Test {
		splitDir = testDir
	}
	files, labels, err := folderFiles(splitDir, classes)
	if err != nil {
		return nil, err
	}
	imgSize := folderChannels * size * size
	if int64(len(files))*int64(imgSize) > MaxIDXBytes {
		return nil, fmt.Errorf("%s: %d images of %dx%dx%d exceed the limit of %d pixels (--max-data-bytes raises it)", splitDir, len(files), folderChannels, size, size, MaxIDXBytes)
	}
	images := make([]uint8, len(files)*imgSize)
	for i, path := range files {
		if err := readFolderImage(path, size, images[i*imgSize:(i+1)*imgSize]); err != nil {
			return nil, err
		}
	}
	return &Dataset{
		Name:    splitDir,
		N:       len(files),
		C:       folderChannels,
		H:       size,
		W:       size,
		Images:  images,
		Labels:  labels,
		Classes: len(classes),
	}, nil
}

// folderTestDir returns dir/test if it exists, else dir/val if that
// does, else an error wrapping fs.ErrNotExist that names both.
func folderTestDir(dir string) (string, error) {
	for _, name := range []string{"test", "val"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("%s: neither test nor val found: %w", dir, fs.ErrNotExist)
}

// folderClasses returns the names of the subdirectories of dir (or of
// symbolic links to directories), sorted.
func folderClasses(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, err // *fs.PathError names the folder
	}
	var classes []string
	for _, e := range entries {
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			st, err := os.Stat(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			isDir = st.IsDir()
		}
		if isDir {
			classes = append(classes, e.Name())
		}
	}
	switch {
	case len(classes) == 0:
		return nil, fmt.Errorf("%s: no class folders", dir)
	case len(classes) > 256:
		return nil, fmt.Errorf("%s: %d class folders, over the limit of 256", dir, len(classes))
	}
	return classes, nil
}

// missing returns the elements of the sorted a that are not in the
// sorted b.
func missing(a, b []string) []string {
	var m []string
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			m = append(m, s)
		}
	}
	return m
}

// folderFiles returns the paths of the files of the class folders
// classes of dir, class by class and sorted by name within a class, and
// the class index of each. A class folder must hold at least one file
// and no subdirectory, all of them together at most MaxFolderFiles files.
func folderFiles(dir string, classes []string) (files []string, labels []uint8, err error) {
	for label, class := range classes {
		classDir := filepath.Join(dir, class)
		entries, err := os.ReadDir(classDir) // sorted by name
		if err != nil {
			return nil, nil, err // *fs.PathError names the folder
		}
		if len(entries) == 0 {
			return nil, nil, fmt.Errorf("%s: class folder holds no images", classDir)
		}
		if len(files)+len(entries) > MaxFolderFiles {
			return nil, nil, fmt.Errorf("%s: the split holds more than %d files", classDir, MaxFolderFiles)
		}
		for _, e := range entries {
			path := filepath.Join(classDir, e.Name())
			if e.IsDir() {
				return nil, nil, fmt.Errorf("%s: a folder inside a class folder, which holds only PNG and JPEG files", path)
			}
			files = append(files, path)
			labels = append(labels, uint8(label))
		}
	}
	return files, labels, nil
}

// readFolderImage decodes the PNG or JPEG file at path and writes it,
// converted to RGB, resized and centre-cropped to size x size as
// LoadImageFolder describes, into dst (3*size*size pixels) in CHW order.
// It reads the image's header first and refuses an image of more than
// MaxImagePixels pixels, before or after resizing, before decoding it.
func readFolderImage(path string, size int, dst []uint8) error {
	f, err := os.Open(path)
	if err != nil {
		return err // *fs.PathError names the file
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if errors.Is(err, image.ErrFormat) {
		return fmt.Errorf("%s: not a PNG or JPEG image", path)
	} else if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if format != "png" && format != "jpeg" {
		return fmt.Errorf("%s: %s image, want PNG or JPEG", path, format)
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return fmt.Errorf("%s: image of %dx%d pixels, want 1 to %d pixels", path, cfg.Width, cfg.Height, MaxImagePixels)
	}
	rw, rh := resizedSize(cfg.Width, cfg.Height, size)
	if int64(rw)*int64(rh) > MaxImagePixels {
		return fmt.Errorf("%s: image of %dx%d pixels resizes to %dx%d, over the limit of %d pixels", path, cfg.Width, cfg.Height, rw, rh, MaxImagePixels)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err // *fs.PathError names the file
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return fmt.Errorf("%s: decoded %dx%d pixels, header says %dx%d", path, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	resized := resize(toRGB(img), rw, rh)
	top := int(math.RoundToEven(float64(rh-size) / 2))
	left := int(math.RoundToEven(float64(rw-size) / 2))
	plane := size * size
	for y := range size {
		row := resized.Pix[resized.PixOffset(left, top+y):]
		for x := range size {
			for c := range folderChannels {
				dst[c*plane+y*size+x] = row[4*x+c]
			}
		}
	}
	return nil
}

// toRGB returns src as an opaque *image.RGBA with its bounds moved to the
// origin. An *image.NRGBA keeps its (non-premultiplied) colour, as PIL's
// convert("RGB") drops alpha; other images are drawn over black.
func toRGB(src image.Image) *image.RGBA {
	b := src.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	if s, ok := src.(*image.NRGBA); ok {
		for y := range b.Dy() {
			copy(dst.Pix[y*dst.Stride:(y+1)*dst.Stride], s.Pix[s.PixOffset(b.Min.X, b.Min.Y+y):])
		}
	} else {
		draw.Draw(dst, dst.Bounds(), src, b.Min, draw.Src)
	}
	for i := 3; i < len(dst.Pix); i += 4 {
		dst.Pix[i] = 0xff
	}
	return dst
}

// resizedSize returns the size of a w x h image resized as torchvision's
// Resize(size): the shorter side becomes size, the longer one is scaled
// in proportion and rounded down.
func resizedSize(w, h, size int) (rw, rh int) {
	if w <= h {
		return size, int(int64(size) * int64(h) / int64(w))
	}
	return int(int64(size) * int64(w) / int64(h)), size
}

// resize returns src resized to rw x rh with draw.BiLinear, or src itself
// if it has that size already (torchvision returns such an image
// unchanged).
func resize(src *image.RGBA, rw, rh int) *image.RGBA {
	if src.Bounds().Dx() == rw && src.Bounds().Dy() == rh {
		return src
	}
	dst := image.NewRGBA(image.Rect(0, 0, rw, rh))
	draw.BiLinear.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	return dst
}
