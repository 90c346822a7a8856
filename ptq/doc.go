// Package ptq recovers the accuracy that post-training quantization loses,
// without training: cross-layer equalization and empirical bias correction
// (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization
// and Bias Correction") and AdaRound (Nagel et al. 2020, "Up or Down?
// Adaptive Rounding for Post-Training Quantization"), on a layers.Model and
// calibration data. Calibrate is the one PTQ path of qat calibrate and of
// the experiment runner: it applies what the model's QuantConfig.PTQ
// selects around train.Calibrate.
//
// # What changes, and what stays
//
// Every method works in the domain of the weight quantizer: the weights
// it quantizes, w*sf[o] with sf = gamma/sqrt(running_var+eps) where a conv's
// BatchNorm is folded (quant.FoldScale, as training and export compute it),
// else w; output channels are axis 0 of the weight, rows of In/G*K*K
// weights (In for linear layers) in the weight's own order. The methods
// change only params and BatchNorm statistics of the model; quantizers,
// their schemes and the graph stay, and so does every invariant of the
// int8 export: the int8 model still computes what the fake-quant graph
// computes, bit for bit.
//
//   - CLE (Equalize) rescales float params before calibration; the float
//     function is unchanged up to float32 rounding.
//   - Bias correction changes one bias-like value per output channel: a
//     folded BN's beta, an unfolded BN's running mean, or the bias.
//   - AdaRound leaves weights whose quantizer maps them to the learned
//     codes: the dequantized code (float32(q-z)*s, divided by the fold
//     scale where there is one). The weight quantizer keeps the scale and
//     zero point it observed in calibration (observers are frozen after it
//     and a checkpoint stores them), and quant's round-to-nearest, half to
//     even, of those weights gives the learned codes back: setCodes checks
//     every one as quant computes it. The exporter therefore freezes the
//     learned codes unchanged.
//
// Activation quantizers keep the ranges calibrated before bias correction
// and AdaRound.
//
// # Statistics and arithmetic
//
// Bias correction and AdaRound run layer by layer in graph order on the
// calibration batches, each layer seeing its input x_q from the quantized
// model with every earlier layer already corrected (the fake-quant
// simulation, NewGraph Eval) and x from a float copy of the model made
// after CLE: the paper's asymmetric reconstruction. Per layer (and conv
// group) the rows of x_q and x (im2col patches for a conv, zero padded) are
// summed, and for AdaRound the products sum x_q x_q^T, sum x_q d^T and
// sum d d^T (d = x_q - x) formed, in float32 GEMMs per batch
// (internal/gemm, the same bits for any thread count) accumulated in
// float64 across batches. AdaRound's reconstruction error, the mean over
// rows of the squared output error summed over output channels, and its
// gradient are exact functions of those sums, so each step costs
// out*n^2 multiply-adds whatever the number of rows (n = the row length).
// The optimisation is float64 but for that GEMM (float32); Adam is
// PyTorch's.
//
// # Buffers
//
// Calibrate modifies the model it is given in place and keeps nothing of
// it; the float copy and every statistic are its own and dropped on
// return.
package ptq
