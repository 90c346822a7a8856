// Package experiment runs reproducible quantization experiments: an
// experiment file (JSON, unknown fields rejected) names a model, the
// datasets, a float training stage and a list of runs, each a
// post-training calibration (ptq) or a QAT fine-tune (qat) of the float
// model with its own quant config, which may distil from that float
// model ("teacher": true). Execute trains one float model per
// dataset, runs every variant on it, evaluates the fake-quant model and,
// where the scheme has an integer form, the exported int8 model on the
// int8 runtime, and writes results.md, results.csv, results.json and
// plots/ into the results directory; checkpoints and metrics go to its
// work/ subdirectory.
//
// Sensitivity quantizes one layer of a float checkpoint at a time and
// ranks the layers by the accuracy lost.
//
// PlotDir draws the figures of a directory of runs: it reads their
// metrics files and checkpoints, captures the tensors the quantizers of
// each quantized checkpoint see, and hands the data to package plots.
//
// Accuracies are fractions of the test set; drops are in percentage
// points. Runs are deterministic for a given seed and machine, but not
// bit-identical across CPUs with different kernels.
package experiment
