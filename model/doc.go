// Package model is qat's one description of a network: a directed acyclic
// graph of nodes, each with an op type, its attributes, the names of the
// nodes it reads and the names of its parameters. Training (layers),
// export, the int8 file format (qmodel), the int8 runtime (infer) and the
// ONNX writer (onnx) all read a Graph and take their shapes from the one
// shape rule here (Node.OutShape); none restates an op's attributes or
// its output shape.
//
// # The graph
//
// A Graph lists its nodes in an order in which every node reads only the
// graph input ("input") or nodes before it, so the order is a topological
// order and no cycle can be written down. A node with no Inputs reads the
// node before it, or the graph input if it is the first: a chain, which
// is what every model file written before graphs existed holds, loads
// unchanged. The last node is the graph's output and must give [Classes]
// logits per sample; every other node's output must be read by some node
// (a dangling node is an error, not silently dropped work). Add reads two
// nodes, concat two or more; they are how residual and branching networks
// (ResNet, MobileNetV2: see Builtin) are written down.
//
// # Parameters
//
// Conv and linear nodes own the parameters Name+".weight" and, unless
// NoBias, Name+".bias": the PyTorch state_dict keys of a module of that
// name. A conv with BN owns its BatchNorm2d module's BN+".weight",
// ".bias", ".running_mean", ".running_var" and ".num_batches_tracked".
// Node.ParamNames lists them and Node.ParamShapes gives their shapes (a
// grouped conv's weight is [Out, C/Groups, K, K], as PyTorch's). Add and
// concat nodes have no parameters, but a quantized model gives them an
// output quantizer named after the node, as PyTorch names a
// FloatFunctional's.
//
// # Shapes
//
// Shapes are per sample: [C, H, W] for images, [N] for vectors. Node.OutShape
// documents the rule of every op type. Graph.Shapes checks the whole graph
// and the size limits MaxParams and MaxActivations before anything is
// allocated, so that a description with huge layers is an error rather
// than an out-of-memory crash.
//
// # Errors
//
// Validation errors name the node by index, op type and name.
//
// # Input normalisation
//
// Norm is the pixel normalisation the network was trained with, applied
// before the input quantizer: x = (p/255 - mean) / std in float32, as
// torchvision's ToTensor followed by Normalize, with one mean and std for
// every channel or one per channel.
package model
