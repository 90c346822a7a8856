// Package plots draws the figures of quantization-aware training runs
// with gonum.org/v1/plot, each as a PNG (Width x Height at DPI) and an SVG
// of the same name, legends to the right of the data:
//
//   - Curves: loss.{png,svg}, training loss of every logged step
//     (smoothed by an exponential moving average with weight Smoothing on
//     each new value; the title says so) and validation loss of every
//     epoch as points, log scale, one color per run, so that float and
//     QAT runs compare on one figure; accuracy.{png,svg}, the same for
//     training and validation accuracy in percent.
//   - QuantError: <prefix>quant_mse.{png,svg} and
//     <prefix>quant_sqnr.{png,svg}, each quantizer's MSE (log scale) and
//     SQNR in dB on the batch of every logged step, one line per
//     quantizer named in the legend (weights dashed, the input dotted,
//     activations solid). prefix is the run's label and '_'.
//   - QuantParams: <prefix>quant_scale.{png,svg}, the scale of every
//     quantizer whose scale changes during the run (learnable LSQ/LSQ+
//     quantizers, observers still observing) relative to its first logged
//     value, which the legend gives (per-channel quantizers: the mean over
//     channels, as the legend says); <prefix>quant_zero_point.{png,svg},
//     the zero points that change, in codes.
//   - Histogram: the histogram of a tensor's values (counts on a log
//     scale) with its quantizer's grid over it: a line at every
//     representable level, or every k-th level (counted from zero, as the
//     legend says) above MaxGridLines levels, and the clipping range
//     [(qmin-zp)*s, (qmax-zp)*s] as two bold lines; per-channel params
//     show the grid of the channel with the largest scale, named in the
//     title. The legend gives the fraction of values that saturate and the
//     SQNR of the tensor with its own params. Histograms draws one per
//     quantizer of a Model: <prefix>hist_<layer>_weight,
//     <prefix>hist_<layer>_act and <prefix>hist_input.
//   - BitsAccuracy: accuracy (percent) against bit width, a line with
//     points per series (PTQ against QAT, say).
//   - Sensitivity: a horizontal bar chart of the accuracy drop in
//     percentage points per layer, largest at the top.
//   - Bars: a labelled vertical bar chart, for experiment tables.
//   - Pareto: accuracy against a cost (bytes, milliseconds), labelled
//     points per series and the Pareto front of all of them (ParetoFront)
//     as a dashed step line.
//
// The package only draws: it takes plain data (a Run's logged steps and
// epochs, a Model's tensors and quantization params, series and bars)
// and reads no metrics files, checkpoints or datasets. Package experiment
// loads those (experiment.PlotDir, behind `qat plot RUN_DIR`, draws all
// that applies to a run directory).
package plots
