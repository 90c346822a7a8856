package qmodel

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"qat/internal/floats"
	"qat/model"
)

// Limits of a valid model. They keep every size computation inside an int
// (on 64-bit platforms) and every accumulator inside an int32.
const (
	// MaxDim bounds every dimension of the input and of every [C, H, W]
	// output, Out, and conv Padding.
	MaxDim = 1 << 16
	// MaxElements bounds the element count of the input, of every op's
	// output (per sample) and of every weight tensor.
	MaxElements = 1 << 28
	// MaxTerms bounds the products summed into one accumulator:
	// In/Groups*Kernel*Kernel for conv, In for linear, and the codes
	// summed per output by avgpool (Kernel*Kernel) and global_avgpool
	// (the input's H*W). MaxTerms * 255 * 128 =
	// 2,147,450,880 < 2^31, so (q - zp) * w summed in int32 cannot overflow.
	MaxTerms = 65792
	// MaxAbsAccumulator bounds 255 * sum|Weight[c]| + |Bias[c]| for every
	// output channel c, so acc + bias fits in an int32 for every input.
	MaxAbsAccumulator = math.MaxInt32
	// MinFixedMultiplier and MaxFixedMultiplier bound FixedMultiplier: a
	// Q31 value in [0.5, 1).
	MinFixedMultiplier = 1 << 30
	MaxFixedMultiplier = math.MaxInt32
	// MinShift and MaxShift bound Shift: a left shift of up to 31 bits
	// (negative Shift) or a right shift of up to 62 bits, so the real
	// multiplier FixedMultiplier * 2^-(31+Shift) lies in [2^-94, 2^31).
	MinShift = -31
	MaxShift = 62
)

// Shapes returns the per-sample output shape of every op ([C, H, W] or
// [N]), checking on the way the graph's structure: Input and Classes, op
// types, names, inputs, In, Out, Kernel, Stride, Padding, Groups and
// WeightBits, the size limits, that shapes flow from op to op, that every
// op but the last is read, and that the last op gives [Classes]. The
// shapes are model's shape rule (model.Node.OutShape, which also checks
// each op's number of inputs) on each op's Node and its sources' shapes
// (Sources), with an explicit Stride and, for conv and linear, In equal
// to the input's channels or features. It does not look at quantization
// parameters or arrays; Validate checks those too.
func (m *Model) Shapes() ([][]int, error) {
	for _, d := range m.Input {
		if d < 1 || d > MaxDim {
			return nil, fmt.Errorf("input shape %v: every dimension must be in [1, %d]", m.Input, MaxDim)
		}
	}
	if n := m.Input[0] * m.Input[1] * m.Input[2]; n > MaxElements {
		return nil, fmt.Errorf("input shape %v holds %d elements, more than %d", m.Input, n, MaxElements)
	}
	if m.Classes < 1 {
		return nil, fmt.Errorf("classes %d: want at least 1", m.Classes)
	}
	if len(m.Ops) == 0 {
		return nil, errors.New("no ops")
	}
	names := make(map[string]int, len(m.Ops))
	out := make([][]int, len(m.Ops))
	read := make([]bool, len(m.Ops))
	for i := range m.Ops {
		op := &m.Ops[i]
		err := checkOpName(op.Name)
		if j, dup := names[op.Name]; dup && err == nil {
			err = fmt.Errorf("name %q is also the name of op %d", op.Name, j)
		}
		names[op.Name] = i
		var in [][]int
		if err == nil {
			in, err = m.inputShapes(i, out, read)
		}
		if err == nil {
			out[i], err = op.outShape(in)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op.label(i), err)
		}
	}
	for i := range len(m.Ops) - 1 {
		if !read[i] {
			return nil, fmt.Errorf("%s: no op reads its output", m.Ops[i].label(i))
		}
	}
	if last := out[len(out)-1]; len(last) != 1 || last[0] != m.Classes {
		return nil, fmt.Errorf("the last op gives shape %v per sample, want [%d] (classes)", last, m.Classes)
	}
	return out, nil
}

// inputShapes checks the sources of op i and returns their shapes: out[j]
// for an earlier op j, which it marks read, or the model's input shape.
func (m *Model) inputShapes(i int, out [][]int, read []bool) ([][]int, error) {
	src := m.Sources(i)
	in := make([][]int, len(src))
	for k, j := range src {
		switch {
		case i == 0 && j != -1:
			return nil, fmt.Errorf("inputs[%d] = %d: the first op can read only the model input, -1", k, j)
		case j < -1 || j >= i:
			return nil, fmt.Errorf("inputs[%d] = %d: want -1 (the model input) or an earlier op's index, 0 to %d", k, j, i-1)
		case j == -1:
			in[k] = m.Input[:]
		default:
			in[k], read[j] = out[j], true
		}
	}
	return in, nil
}

// label names op i in errors.
func (op *Op) label(i int) string { return fmt.Sprintf("op %d (%s %q)", i, op.Type, op.Name) }

// checkOpName checks that name matches [A-Za-z_][A-Za-z0-9_.]*.
func checkOpName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || c != '.' && (c < '0' || c > '9')) {
			return fmt.Errorf("name %q: want a letter or '_' followed by letters, digits, '_' or '.'", name)
		}
	}
	return nil
}

// opTypes lists the op types, in the order errors name them.
var opTypes = []model.OpType{model.OpConv, model.OpLinear, model.OpMaxPool, model.OpAvgPool, model.OpGlobalAvgPool,
	model.OpFlatten, model.OpReLU, model.OpReLU6, model.OpAdd, model.OpConcat, OpDynamicLinear}

// v3Types are the op types that FormatV3 added.
var v3Types = []model.OpType{model.OpGlobalAvgPool, model.OpAdd, model.OpConcat}

// opFields lists, for each op type, the JSON fields of its op object after
// "type" and "name", in file order. A field not listed does not apply to
// the type: its Op field must be zero (arrays empty). The fields that
// optional reports are in a file only when they are not zero.
var opFields = map[model.OpType][]string{
	model.OpConv:          {"inputs", "in", "out", "kernel", "stride", "padding", "groups", "weight_bits", "output", "clamp_min", "clamp_max"},
	model.OpLinear:        {"inputs", "in", "out", "weight_bits", "output", "clamp_min", "clamp_max"},
	model.OpMaxPool:       {"inputs", "kernel", "stride", "padding", "output"},
	model.OpAvgPool:       {"inputs", "kernel", "stride", "output"},
	model.OpGlobalAvgPool: {"inputs", "output"},
	model.OpFlatten:       {"inputs", "output"},
	model.OpReLU:          {"inputs", "output", "clamp_min", "clamp_max"},
	model.OpReLU6:         {"inputs", "output", "clamp_min", "clamp_max"},
	model.OpAdd:           {"inputs", "output", "clamp_min", "clamp_max"},
	model.OpConcat:        {"inputs", "output", "clamp_min", "clamp_max"},
	OpDynamicLinear:       {"inputs", "in", "out", "act"},
}

// optional reports whether the field name of an op of type t is one that
// FormatV3 added to an existing type, or a dynamic_linear's act: a file
// holds it only when it is not zero (empty), and an older file never.
func optional(t model.OpType, name string) bool {
	return name == "inputs" || t == model.OpConv && name == "groups" || t == model.OpMaxPool && name == "padding" ||
		t == OpDynamicLinear && name == "act"
}

// optionalIn is optional for a file of the given major version: from
// FormatV4 on, a flatten's output is optional too, absent for a flatten of
// floats, which have no quantization.
func optionalIn(t model.OpType, name string, version int) bool {
	return optional(t, name) || version >= 4 && t == model.OpFlatten && name == "output"
}

// typeList names the op types for errors: "conv, linear, ... or concat".
func typeList() string {
	s := make([]string, len(opTypes))
	for i, t := range opTypes {
		s[i] = string(t)
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// scalarFields are the integer fields of an Op, by JSON name.
var scalarFields = []string{"in", "out", "kernel", "stride", "padding", "groups", "weight_bits", "clamp_min", "clamp_max"}

// field returns a pointer to the scalar field of op with the given JSON
// name (*int or *int32), to Inputs for "inputs", to Output for "output"
// or to Act for "act". It panics on another name (a programmer error).
func (op *Op) field(name string) any {
	switch name {
	case "act":
		return &op.Act
	case "inputs":
		return &op.Inputs
	case "in":
		return &op.In
	case "out":
		return &op.Out
	case "kernel":
		return &op.Kernel
	case "stride":
		return &op.Stride
	case "padding":
		return &op.Padding
	case "groups":
		return &op.Groups
	case "weight_bits":
		return &op.WeightBits
	case "output":
		return &op.Output
	case "clamp_min":
		return &op.ClampMin
	case "clamp_max":
		return &op.ClampMax
	}
	panic("qmodel: unknown op field " + name)
}

// zero reports whether op's field of that JSON name is zero (empty).
func (op *Op) zero(name string) bool {
	switch p := op.field(name).(type) {
	case *[]int:
		return len(*p) == 0
	case *Quant:
		return *p == Quant{}
	case *model.OpType:
		return *p == ""
	case *int:
		return *p == 0
	case *int32:
		return *p == 0
	}
	return false
}

// applies reports whether the JSON field name applies to ops of type t.
func applies(t model.OpType, name string) bool { return slices.Contains(opFields[t], name) }

// checkUnused checks that the scalar fields and Act that do not apply to
// op's type are zero.
func (op *Op) checkUnused() error {
	if op.Act != "" && !applies(op.Type, "act") {
		return fmt.Errorf("act %q: does not apply to %s (must be empty)", string(op.Act), op.Type)
	}
	for _, name := range scalarFields {
		if applies(op.Type, name) {
			continue
		}
		var v int64
		switch p := op.field(name).(type) {
		case *int:
			v = int64(*p)
		case *int32:
			v = int64(*p)
		}
		if v != 0 {
			return fmt.Errorf("%s %d: does not apply to %s (must be 0)", name, v, op.Type)
		}
	}
	return nil
}

// Node returns the op's attributes as a model node, for the shape rule
// (model.Node.OutShape). Inputs, which name nodes, are not part of it
// (Model.Sources gives them), nor is a fused activation: in the int8 form
// it is the clamp range.
func (op *Op) Node() model.Node {
	return model.Node{Op: op.Type, Name: op.Name, Out: op.Out, Kernel: op.Kernel, Stride: op.Stride, Padding: op.Padding, Groups: op.Groups}
}

// outShape checks op's structural fields against its input shapes in,
// one per source, and returns its output shape: model's shape rule, with
// the int8 form's own limits and fields (In, WeightBits, an explicit
// Stride, Groups 0 for one group).
func (op *Op) outShape(in [][]int) ([]int, error) {
	if _, ok := opFields[op.Type]; !ok {
		return nil, fmt.Errorf("unknown type %q (want %s)", string(op.Type), typeList())
	}
	if err := op.checkUnused(); err != nil {
		return nil, err
	}
	switch op.Type {
	case model.OpConv, model.OpMaxPool, model.OpAvgPool:
		if op.Kernel < 1 {
			return nil, fmt.Errorf("kernel %d: want at least 1", op.Kernel)
		}
		if op.Stride < 1 {
			return nil, fmt.Errorf("stride %d: want at least 1", op.Stride)
		}
		if op.Padding < 0 || op.Padding > MaxDim {
			return nil, fmt.Errorf("padding %d: want 0 to %d", op.Padding, MaxDim)
		}
	}
	if op.Type == model.OpConv || op.Type == model.OpLinear || op.Type == OpDynamicLinear {
		if op.Out < 1 || op.Out > MaxDim {
			return nil, fmt.Errorf("out %d: want 1 to %d", op.Out, MaxDim)
		}
	}
	if op.Groups < 0 || op.Groups == 1 || op.Groups > MaxDim {
		return nil, fmt.Errorf("groups %d: want 0 (one group) or 2 to %d", op.Groups, MaxDim)
	}
	node := op.Node()
	if op.Type == OpDynamicLinear {
		node.Op = model.OpLinear // the same shapes
	}
	out, err := node.OutShape(in...)
	if err != nil {
		return nil, err
	}
	if err := op.checkTerms(in[0]); err != nil {
		return nil, err
	}
	n := 1
	for _, d := range out {
		if len(out) == 3 && d > MaxDim {
			return nil, fmt.Errorf("output shape %v: dimension %d exceeds %d", out, d, MaxDim)
		}
		n *= d
	}
	if n > MaxElements {
		return nil, fmt.Errorf("output shape %v holds %d elements, more than %d", out, n, MaxElements)
	}
	return out, nil
}

// checkTerms checks the fields the int8 form adds to a node on (first)
// input shape in, which the shape rule accepted: a conv's or linear's In
// (the input's channels or features), WeightBits and weight count, and
// the products or codes summed into one accumulator (MaxTerms).
func (op *Op) checkTerms(in []int) error {
	switch op.Type {
	case model.OpConv:
		if op.In != in[0] {
			return fmt.Errorf("in %d, but the input %v has %d channels", op.In, in, in[0])
		}
		if n := op.In / op.Node().EffectiveGroups() * op.Kernel * op.Kernel; n > MaxTerms {
			return fmt.Errorf("in/groups*kernel*kernel = %d products per output exceed the int32 accumulation limit of %d", n, MaxTerms)
		}
	case model.OpLinear, OpDynamicLinear:
		if op.In != in[0] {
			return fmt.Errorf("in %d, but the input has %d features", op.In, in[0])
		}
		if op.In > MaxTerms {
			return fmt.Errorf("in %d products per output exceed the int32 accumulation limit of %d", op.In, MaxTerms)
		}
		if op.Type == OpDynamicLinear {
			if n := op.weightCount(); n > MaxElements {
				return fmt.Errorf("%d weights, more than %d", n, MaxElements)
			}
			return nil
		}
	case model.OpAvgPool:
		if n := op.Kernel * op.Kernel; n > MaxTerms {
			return fmt.Errorf("kernel*kernel = %d codes per output exceed the limit of %d", n, MaxTerms)
		}
		return nil
	case model.OpGlobalAvgPool:
		if n := in[1] * in[2]; n > MaxTerms {
			return fmt.Errorf("the input %v's h*w = %d codes per output exceed the limit of %d", in, n, MaxTerms)
		}
		return nil
	default:
		return nil
	}
	switch op.WeightBits {
	case 8, 4, 2:
	default:
		return fmt.Errorf("weight_bits %d: want 8, 4 or 2", op.WeightBits)
	}
	if n := op.weightCount(); n > MaxElements {
		return fmt.Errorf("%d weights, more than %d", n, MaxElements)
	}
	return nil
}

// weightCount is the number of weight codes of a conv, linear or
// dynamic_linear op whose structure is valid: Out*In/G*Kernel*Kernel (G
// groups) or Out*In.
func (op *Op) weightCount() int {
	if op.Type == model.OpConv {
		return op.Out * op.In / op.Node().EffectiveGroups() * op.Kernel * op.Kernel
	}
	return op.Out * op.In
}

// Validate checks every field of m: the name, normalisation, input
// quantization, requant mode, the structure Shapes checks, and for every
// op its quantization, clamp range and arrays (see the package
// documentation for the rules). Errors name the op by index, type and
// name, and the field by its name in the file.
func (m *Model) Validate() error {
	if m.Name == "" || !utf8.ValidString(m.Name) {
		return fmt.Errorf("name %q: want a non-empty UTF-8 string", m.Name)
	}
	for _, r := range m.Name {
		if unicode.IsControl(r) {
			return fmt.Errorf("name %q: contains a control character", m.Name)
		}
	}
	if err := m.Norm.Validate(m.Input[0]); err != nil {
		return fmt.Errorf("norm: %w", err)
	}
	switch {
	case m.FloatInput && m.InputQuant != Quant{}:
		return fmt.Errorf("input_quant (%s): a model with float input has none", quantString(m.InputQuant))
	case !m.FloatInput:
		if err := m.InputQuant.check(); err != nil {
			return fmt.Errorf("input_quant: %w", err)
		}
	}
	if err := checkRequant(m.Requant); err != nil {
		return err
	}
	if _, err := m.Shapes(); err != nil {
		return err
	}
	isFloat := m.Floats()
	for i := range m.Ops {
		op := &m.Ops[i]
		err := m.checkKinds(i, isFloat)
		switch {
		case err != nil:
		case op.Type == OpDynamicLinear:
			err = op.validateDynamic()
		case isFloat[i]: // a flatten of floats
			if op.Output != (Quant{}) {
				err = fmt.Errorf("output (%s): a flatten of floats has no quantization", quantString(op.Output))
			}
		default:
			err = op.validate(m.Requant, m.inputQuant(i))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op.label(i), err)
		}
	}
	return nil
}

// checkKinds checks that op i reads floats only if it is a dynamic_linear
// or a flatten (isFloat: Floats of m), the ops that take them; every
// other op reads codes.
func (m *Model) checkKinds(i int, isFloat []bool) error {
	t := m.Ops[i].Type
	if t == OpDynamicLinear || t == model.OpFlatten {
		return nil
	}
	for k, j := range m.Sources(i) {
		switch {
		case j == -1 && m.FloatInput:
			return fmt.Errorf("inputs[%d]: reads the model's float input, but %s reads codes (only dynamic_linear and flatten read floats)", k, t)
		case j >= 0 && isFloat[j]:
			return fmt.Errorf("inputs[%d]: reads the float output of %s, but %s reads codes (only dynamic_linear and flatten read floats)", k, m.Ops[j].label(j), t)
		}
	}
	return nil
}

// inputQuant returns the quantization of op i's first input: that of its
// first source (InputQuant for the model input).
func (m *Model) inputQuant(i int) Quant {
	if j := m.Sources(i)[0]; j >= 0 {
		return m.Ops[j].Output
	}
	return m.InputQuant
}

func checkRequant(r Requant) error {
	if r != RequantFloat && r != RequantFixed {
		return fmt.Errorf("requant %q: want %q or %q", string(r), RequantFloat, RequantFixed)
	}
	return nil
}

func abs(x int64) int64 { return max(x, -x) }

// quantString describes an activation quantization.
func quantString(q Quant) string {
	return fmt.Sprintf("scale %v, zero_point %d, qmin %d, qmax %d", q.Scale, q.ZeroPoint, q.QMin, q.QMax)
}

// check validates an activation quantization.
func (q Quant) check() error {
	if !floats.Finite(q.Scale) || q.Scale <= 0 {
		return fmt.Errorf("scale %v: want a finite positive number", q.Scale)
	}
	if !floats.Finite(1 / q.Scale) {
		return fmt.Errorf("scale %v: its float32 reciprocal is not finite", q.Scale)
	}
	if q.QMin < 0 || q.QMax > 255 || q.QMin >= q.QMax {
		return fmt.Errorf("qmin %d, qmax %d: want 0 <= qmin < qmax <= 255", q.QMin, q.QMax)
	}
	if q.ZeroPoint < q.QMin || q.ZeroPoint > q.QMax {
		return fmt.Errorf("zero_point %d: outside [qmin, qmax] = [%d, %d]", q.ZeroPoint, q.QMin, q.QMax)
	}
	return nil
}

// validate checks op's quantization, clamps and arrays; in is the
// quantization of its (first) input. The structure was checked by
// outShape.
func (op *Op) validate(mode Requant, in Quant) error {
	arrays := op.arrayLens()
	if op.Type != model.OpConv && op.Type != model.OpLinear {
		return op.validateUnweighted(arrays, in)
	}
	if err := op.Output.check(); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := op.checkClamp(); err != nil {
		return err
	}
	if err := op.checkArrayLens(arrays, mode); err != nil {
		return err
	}
	if err := op.checkWeights(); err != nil {
		return err
	}
	if err := op.checkBias(); err != nil {
		return err
	}
	return op.checkRequantArrays()
}

// arrayLen is the element count of one of an op's arrays, by JSON name.
type arrayLen struct {
	name string
	n    int
}

// arrayLens returns the element counts of op's arrays in file order (the
// float bias, a dynamic_linear's "bias" in the file, last).
func (op *Op) arrayLens() []arrayLen {
	return []arrayLen{
		{"weight", len(op.Weight)}, {"weight_scale", len(op.WeightScale)}, {"bias", len(op.Bias)},
		{"multiplier", len(op.Multiplier)}, {"fixed_multiplier", len(op.FixedMultiplier)}, {"shift", len(op.Shift)},
		{"float bias", len(op.FloatBias)},
	}
}

// validateDynamic checks a dynamic_linear op, whose structure outShape
// checked: no output quantization (its outputs are floats), a known
// activation, exactly the arrays weight [Out*In], weight_scale and float
// bias [Out], finite positive weight scales and a finite bias. Every int8
// code is a valid weight: |q - zp| <= 255 and |w| <= 128 with In <=
// MaxTerms keep the accumulator inside an int32.
func (op *Op) validateDynamic() error {
	if op.Output != (Quant{}) {
		return fmt.Errorf("output (%s): the outputs of %s are floats, without quantization", quantString(op.Output), op.Type)
	}
	switch op.Act {
	case "", model.OpReLU, model.OpReLU6:
	default:
		return fmt.Errorf("act %q: want %s, %s or none", string(op.Act), model.OpReLU, model.OpReLU6)
	}
	want := map[string]int{"weight": op.weightCount(), "weight_scale": op.Out, "float bias": op.Out}
	for _, a := range op.arrayLens() {
		switch n, used := want[a.name]; {
		case !used && a.n != 0:
			return fmt.Errorf("%s has %d elements, but does not apply to %s", a.name, a.n, op.Type)
		case used && a.n != n:
			return fmt.Errorf("%s has %d elements, want %d", a.name, a.n, n)
		}
	}
	for c, s := range op.WeightScale {
		if !floats.Finite(s) || s <= 0 {
			return fmt.Errorf("weight_scale[%d] = %v: want a finite positive number", c, s)
		}
	}
	for c, b := range op.FloatBias {
		if !floats.Finite(b) {
			return fmt.Errorf("bias[%d] = %v: want a finite number", c, b)
		}
	}
	return nil
}

// validateUnweighted checks an op other than conv and linear: it has no
// arrays; an add or concat has a valid output quantization of its own
// (its inputs' may be any), the others keep their input's quantization
// in; and the clamps of add, concat, relu and relu6 lie in the output
// range.
func (op *Op) validateUnweighted(arrays []arrayLen, in Quant) error {
	for _, a := range arrays {
		if a.n != 0 {
			return fmt.Errorf("%s has %d elements, but does not apply to %s", a.name, a.n, op.Type)
		}
	}
	if op.Node().Requantizes() {
		if err := op.Output.check(); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		return op.checkClamp()
	}
	if op.Output != in {
		return fmt.Errorf("output (%s) differs from the input's quantization (%s), which %s keeps", quantString(op.Output), quantString(in), op.Type)
	}
	if op.Type == model.OpReLU || op.Type == model.OpReLU6 {
		return op.checkClamp()
	}
	return nil
}

// checkArrayLens checks that a conv or linear op has exactly the arrays
// its shape and the requantization mode call for, and no others.
func (op *Op) checkArrayLens(arrays []arrayLen, mode Requant) error {
	want := map[string]int{"weight": op.weightCount(), "weight_scale": op.Out, "bias": op.Out}
	if mode == RequantFloat {
		want["multiplier"] = op.Out
	} else {
		want["fixed_multiplier"], want["shift"] = op.Out, op.Out
	}
	for _, a := range arrays {
		n, used := want[a.name]
		switch {
		case !used && a.n != 0:
			return fmt.Errorf("%s has %d elements, but a model with %s requantization has none", a.name, a.n, mode)
		case used && a.n != n:
			return fmt.Errorf("%s has %d elements, want %d", a.name, a.n, n)
		}
	}
	return nil
}

// checkWeights checks that every weight lies in the range of WeightBits
// and every weight scale is finite and positive.
func (op *Op) checkWeights() error {
	lo, hi := int8(-1<<(op.WeightBits-1)), int8(1<<(op.WeightBits-1)-1)
	for i, w := range op.Weight {
		if w < lo || w > hi {
			return fmt.Errorf("weight[%d] = %d: outside [%d, %d] for %d-bit weights", i, w, lo, hi, op.WeightBits)
		}
	}
	for c, s := range op.WeightScale {
		if !floats.Finite(s) || s <= 0 {
			return fmt.Errorf("weight_scale[%d] = %v: want a finite positive number", c, s)
		}
	}
	return nil
}

// checkBias checks, for every output channel, that 255*sum|weight| +
// |bias| is at most MaxAbsAccumulator, so acc+bias fits in an int32.
func (op *Op) checkBias() error {
	per := len(op.Weight) / op.Out
	for c, b := range op.Bias {
		var sum int64
		for _, w := range op.Weight[c*per : (c+1)*per] {
			sum += abs(int64(w))
		}
		if bound := 255*sum + abs(int64(b)); bound > MaxAbsAccumulator {
			return fmt.Errorf("bias[%d] = %d: 255*sum|weight| + |bias| = %d exceeds %d, so acc+bias could overflow int32", c, b, bound, MaxAbsAccumulator)
		}
	}
	return nil
}

// checkRequantArrays checks the requantization arrays' values: finite
// positive multipliers, fixed multipliers and shifts within their bounds.
func (op *Op) checkRequantArrays() error {
	for c, x := range op.Multiplier {
		if !floats.Finite(x) || x <= 0 {
			return fmt.Errorf("multiplier[%d] = %v: want a finite positive number", c, x)
		}
	}
	for c, x := range op.FixedMultiplier {
		if x < MinFixedMultiplier {
			return fmt.Errorf("fixed_multiplier[%d] = %d: outside [%d, %d]", c, x, MinFixedMultiplier, MaxFixedMultiplier)
		}
	}
	for c, x := range op.Shift {
		if x < MinShift || x > MaxShift {
			return fmt.Errorf("shift[%d] = %d: outside [%d, %d]", c, x, MinShift, MaxShift)
		}
	}
	return nil
}

// checkClamp checks Output.QMin <= ClampMin <= ClampMax <= Output.QMax.
func (op *Op) checkClamp() error {
	q := op.Output
	if op.ClampMin < q.QMin || op.ClampMax > q.QMax || op.ClampMin > op.ClampMax {
		return fmt.Errorf("clamp_min %d, clamp_max %d: want qmin %d <= clamp_min <= clamp_max <= qmax %d", op.ClampMin, op.ClampMax, q.QMin, q.QMax)
	}
	return nil
}
