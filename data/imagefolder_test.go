package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// put writes b to the path dir/rel, making its folders.
func put(t *testing.T, dir, rel string, b []byte) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pngBytes encodes img as PNG.
func pngBytes(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeader returns the start of a PNG file, its signature and IHDR chunk,
// declaring a w x h 8-bit grayscale image: enough for image.DecodeConfig.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	chunk := []byte("IHDR")
	chunk = binary.BigEndian.AppendUint32(chunk, w)
	chunk = binary.BigEndian.AppendUint32(chunk, h)
	chunk = append(chunk, 8, 0, 0, 0, 0) // depth 8, grayscale, no interlace
	b = binary.BigEndian.AppendUint32(b, uint32(len(chunk)-4))
	b = append(b, chunk...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
}

// catImage is a 6 x 3 RGBA image whose pixel (x, y) is
// (10x+y, 100+x, 200+y), opaque except (3, 1), transparent.
func catImage() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 6, 3))
	for y := range 3 {
		for x := range 6 {
			a := uint8(255)
			if x == 3 && y == 1 {
				a = 0
			}
			img.SetNRGBA(x, y, color.NRGBA{uint8(10*x + y), uint8(100 + x), uint8(200 + y), a})
		}
	}
	return img
}

// grayJPEG encodes a w x h JPEG of uniform gray g.
func grayJPEG(t *testing.T, w, h int, g uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = g
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeFolder writes a 2-class image folder into dir: train/cat/a.png
// (catImage), train/dog/b.jpg (5 x 7, gray 100), a file beside the class
// folders, and test/cat/x.png and test/dog/y.jpg, with test renamed
// testName.
func writeFolder(t *testing.T, dir, testName string) {
	t.Helper()
	put(t, dir, "train/cat/a.png", pngBytes(t, catImage()))
	put(t, dir, "train/dog/b.jpg", grayJPEG(t, 5, 7, 100))
	put(t, dir, "train/LICENSE", []byte("not a class"))
	put(t, dir, testName+"/cat/x.png", pngBytes(t, catImage()))
	put(t, dir, testName+"/dog/y.jpg", grayJPEG(t, 9, 4, 30))
}

func TestLoadImageFolder(t *testing.T) {
	dir := t.TempDir()
	writeFolder(t, dir, "test")
	d, err := LoadImageFolder(dir, Train, 3)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 2 || d.C != 3 || d.H != 3 || d.W != 3 || d.Classes != 2 || d.Name != filepath.Join(dir, "train") {
		t.Fatalf("%d images of %dx%dx%d, %d classes, named %q; want 2 of 3x3x3, 2 classes", d.N, d.C, d.H, d.W, d.Classes, d.Name)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	// Classes in sorted order: cat 0, dog 1.
	if !bytes.Equal(d.Labels, []byte{0, 1}) {
		t.Errorf("labels %v, want [0 1]", d.Labels)
	}
	// a.png is 6 x 3: its shorter side is the size already, so it is only
	// cropped, from column round((6-3)/2) = 2 (half to even, as Python's
	// round in torchvision's CenterCrop). The transparent pixel (3, 1)
	// keeps its colour (PIL's convert("RGB") drops alpha).
	cat := catImage()
	img := d.Image(0)
	for y := range 3 {
		for x := range 3 {
			c := cat.NRGBAAt(x+2, y)
			for ch, want := range []uint8{c.R, c.G, c.B} {
				if got := img[ch*9+y*3+x]; got != want {
					t.Errorf("cat channel %d (%d, %d) = %d, want %d", ch, y, x, got, want)
				}
			}
		}
	}
	// b.jpg is uniform gray 100, which JPEG keeps to within a level or
	// two; resizing keeps it uniform; grayscale is replicated to R, G, B.
	img = d.Image(1)
	for k := range 9 {
		r, g, b := img[k], img[9+k], img[18+k]
		if r != g || g != b || r < 98 || r > 102 {
			t.Fatalf("dog pixel %d = (%d, %d, %d), want three equal values about 100", k, r, g, b)
		}
	}

	// The test split, as val, through the spec and Splits: per-channel
	// constants from the training images.
	dir = t.TempDir()
	writeFolder(t, dir, "val")
	spec := "imagefolder:" + dir + ":3"
	train, test, norm, err := Splits(spec, 0)
	if err != nil {
		t.Fatal(err)
	}
	if test.N != 2 || test.Name != spec+" test" || test.Image(1)[0] > 32 || test.Image(1)[0] < 28 {
		t.Errorf("val split: %d images named %q, dog pixel %d; want 2, about 30", test.N, test.Name, test.Image(1)[0])
	}
	m, s := train.ChannelMeanStd()
	if len(norm.ChannelMean) != 3 || norm.ChannelMean[1] != float32(m[1]) || norm.ChannelStd[2] != float32(s[2]) {
		t.Errorf("norm %+v, want the training set's channel means %v and stds %v", norm, m, s)
	}
}

// TestFolderResize checks the resizing against a hand computation: a
// 4 x 2 image whose red channel is 0, 70, 140, 210 across resized to a
// shorter side of 1 is 2 x 1. Bilinear filtering stretched by the scale
// of 2 (as PIL's antialiased bilinear filter) weighs the columns at
// distances 0.5, 0.5 and 1.5 from the centre of output pixel 0 by 0.75,
// 0.75 and 0.25: (0.75*0 + 0.75*70 + 0.25*140) / 1.75 = 50. The centre
// crop starts at column round(0.5) = 0 (half to even); round half up
// would take the other pixel, 160.
func TestFolderResize(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 4, 2))
	for y := range 2 {
		for x := range 4 {
			img.SetRGBA(x, y, color.RGBA{uint8(70 * x), 200, 9, 255})
		}
	}
	path := filepath.Join(t.TempDir(), "wide.png")
	put(t, filepath.Dir(path), "wide.png", pngBytes(t, img))
	dst := make([]uint8, 3)
	if err := readFolderImage(path, 1, dst); err != nil {
		t.Fatal(err)
	}
	if want := []uint8{50, 200, 9}; !bytes.Equal(dst, want) {
		t.Errorf("resized pixel %v, want %v", dst, want)
	}
}

func TestImageFolderErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(t *testing.T, dir string)
		want string // the error, after "DIR"
	}{
		{"unknown file type", func(t *testing.T, dir string) {
			put(t, dir, "train/cat/notes.txt", []byte("cat"))
		}, "/train/cat/notes.txt: not a PNG or JPEG image"},
		{"mismatched class sets", func(t *testing.T, dir string) {
			put(t, dir, "test/bird/z.png", pngBytes(t, catImage()))
		}, `: the classes of train and test differ: [] only in train, ["bird"] only in test`},
		{"oversized image header", func(t *testing.T, dir string) {
			put(t, dir, "train/cat/big.png", pngHeader(10000, 10000))
		}, "/train/cat/big.png: image of 10000x10000 pixels, want 1 to 67108864 pixels"},
		{"oversized after resizing", func(t *testing.T, dir string) {
			put(t, dir, "train/cat/tall.png", pngHeader(1, 8000000))
		}, "/train/cat/tall.png: image of 1x8000000 pixels resizes to 3x24000000, over the limit of 67108864 pixels"},
		{"truncated image", func(t *testing.T, dir string) {
			b := pngBytes(t, catImage())
			put(t, dir, "train/cat/a.png", b[:len(b)-30])
		}, "/train/cat/a.png: png: invalid format: not enough pixel data"},
		{"folder in a class", func(t *testing.T, dir string) {
			put(t, dir, "train/dog/more/c.png", pngBytes(t, catImage()))
		}, "/train/dog/more: a folder inside a class folder, which holds only PNG and JPEG files"},
		{"empty class", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "train/dog/b.jpg")); err != nil {
				t.Fatal(err)
			}
		}, "/train/dog: class folder holds no images"},
		{"no test split", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "test")); err != nil {
				t.Fatal(err)
			}
		}, ": neither test nor val found: file does not exist"},
	} {
		dir := t.TempDir()
		writeFolder(t, dir, "test")
		c.mod(t, dir)
		_, err := LoadImageFolder(dir, Train, 3)
		if want := dir + c.want; err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", c.name, err, want)
		}
	}
	if _, err := LoadImageFolder(t.TempDir(), Train, 0); err == nil {
		t.Error("size 0: no error")
	}
}
