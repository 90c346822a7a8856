// Package autobits chooses the bit widths of every conv and linear layer
// of a float model (automatic mixed precision) so that its int8 model
// meets a budget of bytes or of latency, at the least accuracy cost it
// can find; `qat autobits` runs it.
//
// # Configurations
//
// An Assignment gives every conv and linear layer of the model, in graph
// order, a weight and an output (activation) width from Widths (8, 6, 4,
// 2). Its QuantConfig sets exactly those widths as per-layer overrides of
// W8A8 defaults with an 8-bit input quantizer (add and concat outputs
// stay 8-bit); it names no observer, so `qat finetune --quant-config`
// and `qat calibrate --quant-config` read it with their own defaults.
//
// # Measurements
//
// Every number a budget is checked against is measured, never estimated
// from a formula:
//
//   - bytes: the length of the int8 model file (qmodel.Write) of the
//     assignment's post-training model: the float checkpoint quantized
//     with the assignment's QuantConfig, calibrated as `qat calibrate`
//     does (min/max observers for outputs and the input, training batches
//     of 128, ptq.Calibrate) and frozen with float requantization as `qat
//     export` does by default (deploy.Freeze); see PTQ. Sub-byte weights
//     are packed in that file; 6-bit weights are stored in 8 bits, so
//     they save no byte. The final model's bytes are the size of the file
//     written for it.
//   - latency: the median wall time, in milliseconds, of LatencyRuns runs
//     of one infer.Runner (qat's int8 kernels, one goroutine on a locked
//     OS thread) on a batch of the first LatencyBatch test images, input
//     quantization included, after one untimed run (Latency). It depends
//     on the machine and its load: for the same inputs, bytes are
//     reproducible and latencies are not. To compare assignments measured
//     at different times, each one's runs alternate with all-W8A8's and
//     are scaled by W8A8's median measured alone (over 5 x LatencyRuns
//     runs, once) over its median among them; the fine-tuned models are
//     measured so too, over 5 x LatencyRuns runs.
//
// The search measures models calibrated on one batch (the calibration
// changes only the text of the scales in the file, a few bytes, and no
// work of the runtime); every assignment it keeps or proposes is measured
// again, and evaluated, after CalibrationBatches batches, and a candidate
// over budget then is not chosen.
//
// # Search
//
// The search (Greedy) is a greedy descent on the measured metric, with a
// beam of Candidates assignments, driven by the per-layer sensitivity of
// package experiment (Sensitivity: one layer quantized post-training,
// everything else float), measured at every weight width with 8-bit
// output and every output width with 8-bit weights (Table). It predicts
// an assignment's accuracy drop as the sum of its layers' drops
// (Table.Predict). From all-W8A8, each round moves every assignment of
// the beam in every way that lowers one layer's weight or output width
// to a narrower one, measures the moves, drops those that do not save
// (for latency: unless every run beats every run of the assignment left,
// Value), and keeps the moves of least predicted cost per unit saved,
// both counted from the assignment left (a cost below Table.Floor, one
// test image, counts as Floor: smaller drops are noise). Moves within
// budget are candidates; the search stops with Candidates of them none
// of which is narrower everywhere than another, or when nothing is left
// to move on from. Each candidate is evaluated post-training on the test
// subset and the most accurate is fine-tuned (QAT), exported and
// measured again.
//
// # Invariants
//
//   - Report.Met says whether the fine-tuned model meets the budget as
//     measured on its own file (bytes) or runtime (latency); a budget
//     below what the search reaches is an error wrapping ErrUnreachable
//     that names the smallest value reached.
//   - Budgets are positive and finite, and name exactly one metric.
//   - For the same checkpoint, data and Config, a bytes search takes the
//     same steps and chooses the same assignment; ties go to the larger
//     saving, then to the earlier beam position, layer, weight before
//     output, wider before narrower.
package autobits
