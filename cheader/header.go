package cheader

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"qat/model"
	"qat/qmodel"
)

// Write validates m and writes it to w as a self-contained C99 header:
// an include guard, <stdint.h>, a comment describing the format version,
// the graph and the arithmetic, #defines for the model's and each op's
// scalar parameters, and static const arrays holding the weights (as
// stored in the model file: int8_t codes, or uint8_t packed bytes for 4
// and 2 bits), weight scales, biases and requantization parameters.
//
// Identifiers start with prefix ("qat" when empty; characters other than
// ASCII letters, digits and '_' become '_'): macros are upper case
// (QAT_C1_KERNEL), arrays lower case (qat_c1_weight); an op's part is its
// name with '.' replaced by '_'. A prefix that starts with a digit, or two
// names that give the same identifier (op names differing only in case or
// in '.' versus '_'), is an error, and so is a model that needs format
// qmodel.FormatV3 (a graph rather than a chain, or the ops only that
// version has) or qmodel.FormatV4 (dynamically quantized ops): the header
// describes chains of integer ops. Nothing is written on error.
func Write(w io.Writer, m *qmodel.Model, prefix string) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("write C header: %w", err)
	}
	if m.Dynamic() {
		return fmt.Errorf("write C header: model %s has dynamically quantized ops (format %q): the C header describes %q chains only", m.Name, qmodel.FormatV4, qmodel.Format)
	}
	if v := m.FormatVersion(); v != qmodel.Format {
		return fmt.Errorf("write C header: model %s needs format %q (graph inputs, add, concat, global average pooling, grouped convs, padded max pools or per-channel normalisation): the C header describes %q chains only", m.Name, v, qmodel.Format)
	}
	if prefix == "" {
		prefix = "qat"
	}
	p := cName(prefix)
	if p[0] >= '0' && p[0] <= '9' {
		return fmt.Errorf("write C header: prefix %q: must not start with a digit", prefix)
	}
	h := &header{macros: strings.ToUpper(p) + "_", arrays: strings.ToLower(p) + "_", seen: map[string]bool{}}
	h.write(m)
	if h.err != nil {
		return fmt.Errorf("write C header: %w", h.err)
	}
	_, err := w.Write(h.b.Bytes())
	return err
}

// header accumulates a C header; err records the first identifier clash.
type header struct {
	b              bytes.Buffer
	macros, arrays string // identifier prefixes, "QAT_" and "qat_"
	seen           map[string]bool
	err            error
}

// cName replaces the characters of s that may not appear in a C
// identifier with '_'.
func cName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// ident records a generated identifier, noting a clash.
func (h *header) ident(id string) string {
	if h.seen[id] && h.err == nil {
		h.err = fmt.Errorf("identifier %s is generated twice (op names that differ only in case or in '.' versus '_')", id)
	}
	h.seen[id] = true
	return id
}

func (h *header) printf(format string, args ...any) { fmt.Fprintf(&h.b, format, args...) }

// define writes #define PREFIX_NAME value.
func (h *header) define(name, value string) {
	h.printf("#define %s %s\n", h.ident(h.macros+name), value)
}

func (h *header) defineInt(name string, v int64) { h.define(name, strconv.FormatInt(v, 10)) }

func (h *header) defineFloat(name string, x float32) {
	s := cFloat(x)
	if s[0] == '-' {
		s = "(" + s + ")"
	}
	h.define(name, s)
}

// cFloat formats x as a C float literal that converts back to x exactly:
// the shortest decimal that round-trips, with an f suffix.
func cFloat(x float32) string {
	s := strconv.FormatFloat(float64(x), 'g', -1, 32)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s + "f"
}

// cString formats s as a C string literal: printable ASCII as is (but
// '"', '\\' and '?', which could start a trigraph), other bytes as
// three-digit octal escapes.
func cString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '"' || c == '\\' || c == '?' {
			fmt.Fprintf(&b, "\\%03o", c)
		} else {
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// array writes a static const array of the given C type, perLine values a
// line.
func (h *header) array(ctype, name string, values []string, perLine int) {
	h.printf("static const %s %s[%d] = {", ctype, h.ident(h.arrays+name), len(values))
	for i, v := range values {
		if i%perLine == 0 {
			h.printf("\n   ")
		}
		h.printf(" %s,", v)
	}
	h.printf("\n};\n")
}

func ints[T int8 | uint8 | int32](v []T) []string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatInt(int64(x), 10)
	}
	return s
}

func floats(v []float32) []string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = cFloat(x)
	}
	return s
}

// shapeString formats a shape as [1,28,28].
func shapeString(s []int) string {
	return strings.ReplaceAll(fmt.Sprint(s), " ", ",")
}

// quantString describes an activation quantization.
func quantString(q qmodel.Quant) string {
	return fmt.Sprintf("scale %v, zero_point %d, qmin %d, qmax %d", q.Scale, q.ZeroPoint, q.QMin, q.QMax)
}

// write writes the whole header of a valid model.
func (h *header) write(m *qmodel.Model) {
	shapes, _ := m.Shapes() // m is valid
	guard := h.ident(h.macros + "MODEL_H")
	h.writeComment(m, shapes)
	h.printf("#ifndef %s\n#define %s\n\n#include <stdint.h>\n\n", guard, guard)
	h.writeModelMacros(m, shapes)
	for i := range m.Ops {
		h.writeOp(i, &m.Ops[i], shapes[i], m.Requant)
	}
	h.printf("\n#endif /* %s */\n", guard)
}

// writeComment writes the header's opening comment: the model, its graph
// one line per op (output shapes in shapes), how to read the identifiers,
// and the arithmetic of m's requantization mode.
func (h *header) writeComment(m *qmodel.Model, shapes [][]int) {
	name := strings.ReplaceAll(strconv.QuoteToASCII(m.Name), "*/", "* /")
	h.printf("/* Int8 model %s (format %s) as a C99 header, written by\n", name, qmodel.Format)
	h.printf(" * qat's qmodel package; do not edit. docs/int8-model.md specifies the\n")
	h.printf(" * format and the arithmetic.\n *\n")
	h.printf(" * Graph, one line per op, per-sample shapes [C,H,W] or [N] of uint8 codes:\n")
	in := []int{m.Input[0], m.Input[1], m.Input[2]}
	h.printf(" *   input %s, %s\n", shapeString(in), quantString(m.InputQuant))
	for i, op := range m.Ops {
		h.printf(" *   %d %s %s: %s -> %s", i, op.Type, op.Name, shapeString(in), shapeString(shapes[i]))
		switch op.Type {
		case model.OpConv:
			h.printf(", kernel %d stride %d padding %d", op.Kernel, op.Stride, op.Padding)
		case model.OpMaxPool, model.OpAvgPool:
			h.printf(", kernel %d stride %d", op.Kernel, op.Stride)
		}
		if weighted(op.Type) {
			h.printf(", %d-bit weights,\n *       output %s", op.WeightBits, quantString(op.Output))
		}
		if clamps(op.Type) {
			h.printf(", clamp [%d,%d]", op.ClampMin, op.ClampMax)
		}
		h.printf("\n")
		in = shapes[i]
	}
	h.printf(" *\n * Below, NAME stands for the macro %sNAME, and an op's NAME for\n", h.macros)
	h.printf(" * %sOP_NAME (%sC1_KERNEL: KERNEL of op c1); w, bias, ... are the\n", h.macros, h.macros)
	h.printf(" * op's arrays (%sc1_weight).\n *\n", h.arrays)
	h.b.WriteString(arithmetic)
	if m.Requant == qmodel.RequantFloat {
		h.b.WriteString(requantFloat)
	} else {
		h.b.WriteString(requantFixed)
	}
	h.b.WriteString(arithmeticEnd)
}

// writeModelMacros writes the macros of the whole model: format, name,
// requantization mode, input and its quantization, classes, op count,
// and the largest activation of the input and the output shapes.
func (h *header) writeModelMacros(m *qmodel.Model, shapes [][]int) {
	h.define("FORMAT", cString(qmodel.Format))
	h.define("NAME", cString(m.Name))
	if m.Requant == qmodel.RequantFloat {
		h.define("REQUANT_FLOAT", "1")
	} else {
		h.define("REQUANT_FIXED", "1")
	}
	largest := m.Input[0] * m.Input[1] * m.Input[2]
	for _, s := range shapes {
		largest = max(largest, size(s))
	}
	h.defineInt("INPUT_C", int64(m.Input[0]))
	h.defineInt("INPUT_H", int64(m.Input[1]))
	h.defineInt("INPUT_W", int64(m.Input[2]))
	h.defineInt("INPUT_SIZE", int64(m.Input[0]*m.Input[1]*m.Input[2]))
	h.defineInt("CLASSES", int64(m.Classes))
	h.defineInt("NUM_OPS", int64(len(m.Ops)))
	h.defineInt("MAX_ACTIVATION_SIZE", int64(largest))
	h.defineFloat("NORM_MEAN", m.Norm.Mean)
	h.defineFloat("NORM_STD", m.Norm.Std)
	h.defineFloat("INPUT_SCALE", m.InputQuant.Scale)
	h.defineInt("INPUT_ZERO_POINT", int64(m.InputQuant.ZeroPoint))
	h.defineInt("INPUT_QMIN", int64(m.InputQuant.QMin))
	h.defineInt("INPUT_QMAX", int64(m.InputQuant.QMax))
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// param is an integer parameter of an op and the suffix of its macro.
type param struct {
	name string
	v    int64
}

// params lists the integer parameters of op that the header defines, in
// the order of the op's object in the model file.
func params(op *qmodel.Op) []param {
	var ps []param
	switch op.Type {
	case model.OpConv:
		ps = []param{{"IN", int64(op.In)}, {"OUT", int64(op.Out)}, {"KERNEL", int64(op.Kernel)}, {"STRIDE", int64(op.Stride)},
			{"PADDING", int64(op.Padding)}, {"WEIGHT_BITS", int64(op.WeightBits)}}
	case model.OpLinear:
		ps = []param{{"IN", int64(op.In)}, {"OUT", int64(op.Out)}, {"WEIGHT_BITS", int64(op.WeightBits)}}
	case model.OpMaxPool, model.OpAvgPool:
		ps = []param{{"KERNEL", int64(op.Kernel)}, {"STRIDE", int64(op.Stride)}}
	}
	if clamps(op.Type) {
		ps = append(ps, param{"CLAMP_MIN", int64(op.ClampMin)}, param{"CLAMP_MAX", int64(op.ClampMax)})
	}
	return ps
}

// weighted reports whether ops of type t have weights: conv and linear.
func weighted(t model.OpType) bool { return t == model.OpConv || t == model.OpLinear }

// clamps reports whether ops of type t clamp their output codes to
// [ClampMin, ClampMax]: conv, linear, relu and relu6.
func clamps(t model.OpType) bool { return weighted(t) || t == model.OpReLU || t == model.OpReLU6 }

// writeOp writes the macros and arrays of op i, whose output shape is out.
func (h *header) writeOp(i int, op *qmodel.Op, out []int, mode qmodel.Requant) {
	n := strings.ToUpper(cName(op.Name)) + "_"
	a := strings.ToLower(cName(op.Name)) + "_"
	h.printf("\n/* op %d: %s %s */\n", i, op.Type, op.Name)
	for _, p := range params(op) {
		h.defineInt(n+p.name, p.v)
	}
	h.defineFloat(n+"OUT_SCALE", op.Output.Scale)
	h.defineInt(n+"OUT_ZERO_POINT", int64(op.Output.ZeroPoint))
	h.defineInt(n+"OUT_QMIN", int64(op.Output.QMin))
	h.defineInt(n+"OUT_QMAX", int64(op.Output.QMax))
	if len(out) == 3 {
		h.defineInt(n+"OUT_C", int64(out[0]))
		h.defineInt(n+"OUT_H", int64(out[1]))
		h.defineInt(n+"OUT_W", int64(out[2]))
	}
	h.defineInt(n+"OUT_SIZE", int64(size(out)))
	if !weighted(op.Type) {
		return
	}
	h.defineInt(n+"WEIGHT_COUNT", int64(len(op.Weight)))
	if op.WeightBits == 8 {
		h.array("int8_t", a+"weight", ints(op.Weight), 16)
	} else {
		h.array("uint8_t", a+"weight", ints(qmodel.PackWeights(op.Weight, op.WeightBits)), 16)
	}
	h.array("float", a+"weight_scale", floats(op.WeightScale), 8)
	h.array("int32_t", a+"bias", ints(op.Bias), 8)
	if mode == qmodel.RequantFloat {
		h.array("float", a+"multiplier", floats(op.Multiplier), 8)
	} else {
		h.array("int32_t", a+"fixed_multiplier", ints(op.FixedMultiplier), 8)
		h.array("int32_t", a+"shift", ints(op.Shift), 16)
	}
}

// The arithmetic part of the header comment; requantFloat or requantFixed
// follows it, then arithmeticEnd.
const arithmetic = ` * Arithmetic. Codes are uint8; float operations are IEEE-754 binary32,
 * each rounded to float (no x87 extended precision, no contraction into
 * fused multiply-adds, no fast-math). round_half_even(y) is nearbyintf or
 * lrintf in the default rounding mode. clamp(v, lo, hi) = min(max(v, lo), hi).
 *
 * Input, pixel p in [0,255] of the [C,H,W] image, row-major:
 *   x = ((float)p / 255.0f - NORM_MEAN) / NORM_STD   (no division if NORM_STD is 0)
 *   q = clamp(round_half_even(x * (1.0f / INPUT_SCALE)) + INPUT_ZERO_POINT,
 *             INPUT_QMIN, INPUT_QMAX)
 *   (y = x * (1.0f / INPUT_SCALE) may be clamped to [-256, 256] before
 *   rounding: this does not change q.)
 *
 * conv, output channel o, position (y, x), zp_in = the input's zero point:
 *   acc = sum over c < IN, ky < KERNEL, kx < KERNEL of
 *         (in[c][y*STRIDE-PADDING+ky][x*STRIDE-PADDING+kx] - zp_in) * w[o][c][ky][kx]
 *   positions outside the input hold zp_in (contribute 0).
 * linear, output o: acc = sum over i < IN of (in[i] - zp_in) * w[o][i]
 *   w is row-major [OUT][IN][KERNEL][KERNEL] or [OUT][IN]. acc + bias[o]
 *   fits in int32 for every input (the model guarantees it).
 *
`

const requantFloat = ` * Requantization (REQUANT_FLOAT), per output channel o:
 *   y = (float)(acc + bias[o]) * multiplier[o]
 *   q = clamp(round_half_even(y) + OUT_ZERO_POINT, CLAMP_MIN, CLAMP_MAX)
 *   (y may be clamped to [-256, 256] before rounding: this does not
 *   change q.)
`

const requantFixed = ` * Requantization (REQUANT_FIXED, gemmlowp), per output channel o, with
 * M = fixed_multiplier[o] in [2^30, 2^31) and S = shift[o] in [-31, 62]:
 *   int64_t x = acc + bias[o], r = S;
 *   if (S < 0) { x = x * ((int64_t)1 << -S); saturate x to [INT32_MIN, INT32_MAX]; r = 0; }
 *   int64_t ab = x * M;                                  (SaturatingRoundingDoublingHighMul)
 *   int64_t y = (ab + (ab >= 0 ? (1 << 30) : 1 - (1 << 30))) / ((int64_t)1 << 31);
 *                                                        (C division: truncates toward zero)
 *   int64_t mask = ((int64_t)1 << r) - 1;                (RoundingDivideByPOT, half away from 0)
 *   int64_t z = (y >> r) + ((y & mask) > (mask >> 1) + (y < 0));   (>> is arithmetic)
 *   q = clamp(z + OUT_ZERO_POINT, CLAMP_MIN, CLAMP_MAX)
`

const arithmeticEnd = ` *   CLAMP_MIN/CLAMP_MAX fuse the activation (QMIN/QMAX when there is none).
 *
 * maxpool: q = the largest code of the KERNELxKERNEL window at
 *   (y*STRIDE, x*STRIDE) of each channel (no padding).
 * avgpool: s = sum of the window's codes, n = KERNEL*KERNEL; q = s/n
 *   rounded half to even: d = s / n, r = s % n,
 *   q = d + (2*r > n || (2*r == n && d % 2 == 1)).
 * flatten: no data movement ([C,H,W] row-major is [C*H*W]).
 * relu, relu6: q = clamp(q, CLAMP_MIN, CLAMP_MAX).
 * Output: the last op's codes; logit = (float)(q - OUT_ZERO_POINT) * OUT_SCALE;
 *   the predicted class is the index of the first largest code.
 *
 * Weights: int8_t codes for 8 bits. For 4 (2) bits, uint8_t bytes hold two
 * (four) codes each in row-major order, the first code in the lowest bits,
 * each code in two's complement within its field; unused high bits of the
 * last byte are 0. Code i is field i % (8/bits) of byte i / (8/bits).
 * weight_scale is informational: the arithmetic uses only the codes, bias
 * and requantization parameters.
 */

`
