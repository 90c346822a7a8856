package data

import (
	"fmt"

	"qat/model"
)

// Splits loads the training and test splits of the source spec (see
// ResolveSource) and the normalisation to train with: MNIST's or
// Fashion-MNIST's published constants, MNIST's for the embedded sample,
// and for a directory the mean and std of its training images. A limit
// above 0 keeps the first limit training images.
func Splits(spec string, limit int) (trainSet, test *Dataset, norm model.Norm, err error) {
	if limit < 0 {
		return nil, nil, norm, fmt.Errorf("training image limit %d is negative", limit)
	}
	src, err := ResolveSource(spec)
	if err != nil {
		return nil, nil, norm, err
	}
	if trainSet, err = src.Load("train"); err != nil {
		return nil, nil, norm, err
	}
	if test, err = src.Load("test"); err != nil {
		return nil, nil, norm, err
	}
	switch spec {
	case SourceMNIST, SourceEmbedded:
		norm = model.Norm{Mean: MNISTMean, Std: MNISTStd}
	case SourceFashionMNIST:
		norm = model.Norm{Mean: FashionMNISTMean, Std: FashionMNISTStd}
	default:
		m, s := trainSet.MeanStd()
		norm = model.Norm{Mean: float32(m), Std: float32(s)}
	}
	if limit > 0 {
		trainSet = trainSet.Limit(limit)
	}
	return trainSet, test, norm, nil
}
