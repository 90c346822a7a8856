// Package onnxtest runs ONNX models exported by package onnx for tests:
// in onnxruntime (onnxruntime-node, driven by scripts/ort-run.js) and
// through the checker of the onnx Python package, and compares
// onnxruntime's logits with the output codes of qat's int8 runtime.
//
// Tests skip (t.Skip) when node is not on PATH and fail when node is there
// but onnxruntime-node is not: CI installs it (.ci/run) and must not skip.
// The checker is optional: without a Python that imports onnx, Check logs
// and returns.
//
// Find runs node once per process and keeps the result; ORT.Run writes the
// model, input and output to files in t.TempDir and runs one node process
// per call, with one onnxruntime thread and its default graph
// optimizations. Require, Run and Check end the test (t.Skip, t.Fatal)
// rather than return errors.
package onnxtest
