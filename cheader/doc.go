// Package cheader exports an int8 model (qmodel.Model) as a C header: one
// self-contained C99 file holding the whole model as macros and constant
// arrays, for a C runtime without a file parser. Like package onnx it is
// an exporter of its own; qmodel holds only the model and its file
// format. docs/int8-model.md, section 7, specifies the header.
//
// # What the header holds
//
// Write emits, in this order: a comment with the model name, the format
// version, the graph (one line per op with its shapes, kernel, stride,
// padding, weight width, output quantization and clamp) and the
// arithmetic of the model's requantization mode; the include guard
// PREFIX_MODEL_H and #include <stdint.h>; the model's macros (format,
// name, requantization mode, input shape and size, classes, op count,
// largest activation, normalisation, input quantization); then, per op,
// after a comment "/* op I: TYPE NAME */", the macros of its integer
// fields that apply to its type, of its output quantization and output
// shape and, for conv and linear, the weight count and the arrays of
// weights, weight scales, biases and the multipliers of the mode (float
// multipliers, or fixed multipliers and shifts).
//
// # Layout guarantees
//
//   - The header is a function of the model and the prefix alone: the
//     same model gives the same bytes.
//   - It compiles with gcc -std=c99 -Wall -Wextra -pedantic -Werror, alone
//     or included twice, and defines only macros and static const arrays
//     (no functions, no other objects).
//   - Identifiers start with the prefix ("qat" by default; characters
//     other than ASCII letters, digits and '_' become '_'): macros upper
//     case (QAT_C1_KERNEL), arrays lower case (qat_c1_weight); an op's part
//     is its name with '.' replaced by '_'. Every identifier is generated
//     once: a clash is an error, as is a prefix starting with a digit.
//   - Weight arrays hold the codes as the model file stores them: int8_t
//     codes for 8 bits, uint8_t bytes packed as qmodel.PackWeights packs
//     them for 4 and 2 bits, row-major.
//   - Float values are the shortest decimal that converts back to the same
//     float32, with an f suffix; negative macro values are parenthesised.
//     A correctly rounding compiler gives the model's exact values.
//   - Nothing is written on error; the model is validated first.
package cheader
