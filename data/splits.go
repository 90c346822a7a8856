package data

import (
	"fmt"

	"qat/model"
)

// Splits loads the training and test splits of the source spec (see
// ResolveSource) and the normalisation to train with: MNIST's or
// Fashion-MNIST's published constants, MNIST's for the embedded sample,
// for a directory of MNIST-format files the mean and std of its training
// images, and for CIFAR-10 files and image folders the mean and std of
// each channel of its training images (ChannelMeanStd), all rounded to
// float32. A limit above 0 keeps the first limit training images; the
// normalisation is that of all of them.
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
	switch {
	case spec == SourceMNIST || spec == SourceEmbedded:
		norm = model.Norm{Mean: MNISTMean, Std: MNISTStd}
	case spec == SourceFashionMNIST:
		norm = model.Norm{Mean: FashionMNISTMean, Std: FashionMNISTStd}
	case src.Format == FormatCIFAR10 || src.Format == FormatImageFolder:
		m, s := trainSet.ChannelMeanStd()
		norm = model.Norm{ChannelMean: make([]float32, len(m)), ChannelStd: make([]float32, len(s))}
		for c := range m {
			norm.ChannelMean[c], norm.ChannelStd[c] = float32(m[c]), float32(s[c])
		}
	default:
		m, s := trainSet.MeanStd()
		norm = model.Norm{Mean: float32(m), Std: float32(s)}
	}
	if limit > 0 {
		trainSet = trainSet.Limit(limit)
	}
	return trainSet, test, norm, nil
}
