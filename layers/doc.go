// Package layers holds qat's models: their params, BatchNorm statistics
// and quantizers, and the gorgonia graphs built from them out of the ops
// of package ops and the quantizers of package fakequant.
//
// # Models
//
// A model.Graph (a built-in such as "lenet", "resnet20" or "mobilenet_v2",
// or a JSON config file: see package model) is a DAG of conv (grouped and
// depthwise too), linear, pool, global average pool, flatten, activation,
// add and concat nodes, each reading the outputs of earlier nodes; layers
// builds gorgonia graphs of it and keeps no description of its own.
// NewModel creates its float params, of the shapes model.Node.ParamShapes
// gives, with PyTorch's default initialisation, named like PyTorch
// state_dict keys ("c1.weight", "layer1.0.bn1.running_var"). Quantize
// adds fake quantizers from a QuantConfig: the input, each conv and linear
// weight (default: int8 symmetric per-channel along the output channel,
// axis 0), and each conv, linear and add output after its fused ReLU and
// each concat output, as PyTorch's FloatFunctional quantizes adds and
// concats (default: uint8 affine per-tensor); per-layer overrides give
// mixed precision. One definition serves float and QAT: NewGraph
// builds the same layers with or without the quantizers.
//
// A conv followed by BatchNorm is folded in QAT as PyTorch's ConvBn2d
// does (unless QuantConfig.NoFoldBN): with sf = gamma/sqrt(running_var +
// eps), the weight w*sf is fake-quantized, the conv output divided by sf,
// the bias added and BN applied; in eval, or once BN is frozen, this is
// exactly conv(x, fq(w*sf)) + beta + (bias - running_mean)*sf, the conv
// an int8 export computes without BN. With quantizers off the folded form
// computes the unfolded function and gradients (TestFoldingMatchesUnfolded).
//
// Graphs share the model's state: params (updated in place by an
// optimizer), BN statistics and quantizers. Run sets BN and quantizer
// modes for the graph's kind: Train (observers observe unless frozen, BN
// uses batch statistics unless frozen), Eval (everything frozen) or
// Calibrate (observers observe, no gradients). NewDistillGraph builds a
// Train graph whose loss is package ops's knowledge-distillation loss
// (ops.NewDistillation) against a teacher's logits, which Graph.SetTeacher
// hands over before each run; the teacher is another model's graph, which
// layers does not run for it. SaveState and LoadState move a model to and
// from a safetensors checkpoint.
//
// # Exact evaluation
//
// An Eval graph computes the float fake-quant simulation of the int8
// model. NewExactGraph builds one whose quantized layers, adds, concats
// and average pools an Exact computes the way the exported int8 model does
// (package deploy's deploy.Exact), so that its accuracy is the exported
// model's bit for bit; layers imports neither the exporter nor the int8
// runtime.
//
// # Ops
//
// The ops themselves (convolution, linear, BatchNorm, pooling,
// activations, add and concat, the channel scaling of BN folding, cross
// entropy), their
// layout, gradients, buffers and threads are package ops's; see its doc.
// Each op node owns its output and overwrites it on every run, so what a
// Graph returns after a run (Graph.Logits, Graph.Loss, Graph.QuantStats,
// and the gradients Graph.Run copies into Param.Grad) holds until the next
// run of that graph and must be copied to outlive it, as must the node
// inputs Graph.NodeInput returns; a rerun computes
// exactly what a freshly built graph computes (TestRerunMatchesFreshGraph).
//
// # Threads
//
// The ops use up to Threads() goroutines (SetThreads, a process-wide
// setting shared with packages ops and fakequant through internal/par; by
// default GOMAXPROCS) and give the same bits for every thread count (see
// package ops); deploy.Exact splits its int8 layers' batches over
// Threads() goroutines too.
package layers
