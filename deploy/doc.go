// Package deploy takes a trained, quantized layers.Model to what runs it
// in production: the frozen int8 model (qmodel.Model, which qmodel writes
// as a file and onnx and cheader export) and a ready int8 runtime
// (infer.Net).
//
// Freeze is the one path from a model to its int8 form: ExportSource
// describes the model as plain tensors and quantization params and
// export.Freeze folds BatchNorm, quantizes weights and biases and
// computes the requantization multipliers; FreezeDynamic is the path to
// the form with dynamically quantized linear layers
// (export.FreezeDynamic). Int8 also prepares the model
// to run. FloatSource describes the float function for a float export,
// and Exact lets a model's evaluation graph run its quantized layers on
// the int8 runtime. The int8 model computes what the model's fake-quant
// evaluation computes: with float requantization, code for code.
//
// Evaluating the result is infer.Evaluate's job, on plain pixels and
// labels.
package deploy
