package data

import (
	"embed"
	"path"
)

// embeddedFS holds the sample of MNIST built into the binary;
// embedded/SOURCE.md says where it comes from and how it was made.
//
//go:embed embedded/*.gz
var embeddedFS embed.FS

// Sizes of the embedded sample.
const (
	EmbeddedTrainLen = 4000
	EmbeddedTestLen  = 1000
)

// LoadEmbedded loads split Train or Test of the MNIST sample embedded in
// the binary: the first EmbeddedTrainLen images of the MNIST training set
// and the first EmbeddedTestLen of its test set, 28x28 pixels each. Each
// call decodes a fresh copy.
func LoadEmbedded(split string) (*Dataset, error) {
	imgBase, lblBase, err := splitFiles(split)
	if err != nil {
		return nil, err
	}
	read := func(base string) (IDX, error) {
		name := path.Join("embedded", base+".gz")
		f, err := embeddedFS.Open(name)
		if err != nil {
			return IDX{}, err
		}
		defer f.Close()
		return ReadIDX(f, name)
	}
	images, err := read(imgBase)
	if err != nil {
		return nil, err
	}
	labels, err := read(lblBase)
	if err != nil {
		return nil, err
	}
	return newDataset("embedded "+split, "embedded/"+imgBase+".gz", "embedded/"+lblBase+".gz", images, labels)
}
