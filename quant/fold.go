package quant

import "math"

// FoldScale writes sf[c] = gamma[c] / std[c] and std[c] =
// float32(sqrt(float32(runningVar[c] + eps))), the scale PyTorch's QAT
// ConvBn folds into the convolution weight, in PyTorch's float32 sequence:
// runningVar + eps rounded to float32, its float32 square root, then a
// float32 division. Training (ops.FoldScale) and export both compute it
// here, so the folded weights they quantize are the same bits. All slices
// have the same length.
func FoldScale(sf, std, gamma, runningVar []float32, eps float32) {
	for i, rv := range runningVar {
		std[i] = float32(math.Sqrt(float64(float32(rv + eps))))
		sf[i] = gamma[i] / std[i]
	}
}
