package qmodel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"qat/model"
	"qat/safetensors"
)

// Metadata keys of an int8 model file. A reader ignores other keys.
const (
	MetaFormat   = "qat.format" // Format
	MetaModel    = "qat.model"  // the model as a JSON object
	MetaChecksum = "qat.crc32c" // Checksum of the rest, 8 lowercase hex digits
)

// formatFamily prefixes the format string of every version of the int8
// model format ("qat-int8/MAJOR").
const formatFamily = "qat-int8/"

// ErrFormat is wrapped by every error that reports a malformed int8 model
// file: a damaged container, a missing or other format, bad JSON, missing,
// extra or misshapen tensors, or a model that Validate rejects. I/O errors
// (a missing file, a failing reader) do not wrap it.
var ErrFormat = errors.New("invalid int8 model file")

// IsModelFile reports whether f claims to be an int8 model of any version
// of this format (its qat.format metadata starts with "qat-int8/"), which
// tells an int8 model from a checkpoint. FromFile decides whether it is a
// valid one.
func IsModelFile(f *safetensors.File) bool {
	return f != nil && strings.HasPrefix(f.Metadata[MetaFormat], formatFamily)
}

// Write validates m and writes it to w as an int8 model file. Nothing is
// written when m is invalid.
func Write(w io.Writer, m *Model) error {
	f, err := m.File()
	if err != nil {
		return fmt.Errorf("write int8 model: %w", err)
	}
	return f.Write(w)
}

// WriteFile validates m and writes it to path atomically (see
// safetensors.File.WriteFile): the file holds either its old content or
// the complete model. Errors name the path.
func WriteFile(path string, m *Model) error {
	f, err := m.File()
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.WriteFile(path)
}

// Read reads r to EOF and parses an int8 model file.
func Read(r io.Reader) (*Model, error) {
	buf, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read int8 model: %w", err)
	}
	return Parse(buf)
}

// ReadFile reads and parses the named int8 model file. Errors name the
// path.
func ReadFile(path string) (*Model, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err // an *os.PathError, which names the file
	}
	m, err := Parse(buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return m, nil
}

// Parse parses a whole int8 model file held in buf. The model does not
// reference buf. Every error wraps ErrFormat (and, for a damaged
// container, safetensors.ErrFormat).
func Parse(buf []byte) (*Model, error) {
	f, err := safetensors.Parse(buf)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return FromFile(f)
}

// FromFile decodes an int8 model from a parsed safetensors file: it checks
// the format, decodes the JSON description, reads every tensor the ops
// need with its exact dtype and shape, rejects tensors no op uses, and
// validates the model. The model copies what it takes from f. Every error
// wraps ErrFormat.
func FromFile(f *safetensors.File) (*Model, error) {
	m, err := fromFile(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return m, nil
}

// fromFile is FromFile without the ErrFormat wrapping.
func fromFile(f *safetensors.File) (*Model, error) {
	version, warnings, err := checkFormat(f)
	if err != nil {
		return nil, err
	}
	m, err := decodeModelMetadata(f, version)
	if err != nil {
		return nil, err
	}
	used, err := m.decodeTensors(f)
	if err != nil {
		return nil, err
	}
	if err := checkExtraTensors(f, used); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	m.Warnings = warnings
	return m, nil
}

// formats lists the format strings this reader reads, by major version.
var formats = []string{1: FormatV1, 2: Format, 3: FormatV3, 4: FormatV4}

// readable lists the format strings this reader reads, for errors.
var readable = fmt.Sprintf("%q, %q, %q and %q", FormatV4, FormatV3, Format, FormatV1)

// checkFormat checks f's format metadata and, from version 2 on, its
// checksum; it returns the major version and the warnings a readable
// older format calls for.
func checkFormat(f *safetensors.File) (int, []string, error) {
	format, ok := f.Metadata[MetaFormat]
	version := slices.Index(formats, format)
	switch {
	case !ok:
		return 0, nil, fmt.Errorf("no %s metadata: not a qat int8 model (this reader reads %s)", MetaFormat, readable)
	case !strings.HasPrefix(format, formatFamily):
		return 0, nil, fmt.Errorf("format %q is not a qat int8 model (this reader reads %s)", format, readable)
	case version < 1:
		return 0, nil, fmt.Errorf("format %q is not supported (this reader reads %s)", format, readable)
	case version == 1:
		return 1, []string{fmt.Sprintf("format %q has no checksum, so damage to the file cannot be detected: export it again to get %q or later", FormatV1, Format)}, nil
	}
	sum, ok := f.Metadata[MetaChecksum]
	if !ok {
		return 0, nil, fmt.Errorf("no %s metadata (format %q has a checksum)", MetaChecksum, format)
	}
	if want := Checksum(f); sum != want {
		return 0, nil, fmt.Errorf("checksum mismatch: %s is %q but the content sums to %q: the file is damaged", MetaChecksum, sum, want)
	}
	return version, nil, nil
}

// decodeModelMetadata decodes the model's JSON description from f, a
// file of the given major version, and checks its requant mode and
// structure, which determine its tensors.
func decodeModelMetadata(f *safetensors.File, version int) (*Model, error) {
	js, ok := f.Metadata[MetaModel]
	if !ok {
		return nil, fmt.Errorf("no %s metadata", MetaModel)
	}
	m, err := decodeModel([]byte(js), version)
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", MetaModel, err)
	}
	if err := checkRequant(m.Requant); err != nil {
		return nil, err
	}
	if _, err := m.Shapes(); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeTensors reads from f every tensor m's ops need, with its exact
// dtype and shape, into the ops; it returns the names of those it read.
func (m *Model) decodeTensors(f *safetensors.File) (map[string]bool, error) {
	used := map[string]bool{}
	for i := range m.Ops {
		op := &m.Ops[i]
		for _, s := range op.tensorSpecs(m.Requant) {
			name := op.Name + "." + s.suffix
			t, ok := f.Tensors[name]
			if !ok {
				return nil, fmt.Errorf("missing tensor %q of %s", name, op.label(i))
			}
			if t.DType != s.dtype || !slices.Equal(t.Shape, s.shape) {
				return nil, fmt.Errorf("tensor %q is %s %v, want %s %v", name, t.DType, t.Shape, s.dtype, s.shape)
			}
			used[name] = true
			if err := op.decodeTensor(s.suffix, t); err != nil {
				return nil, fmt.Errorf("tensor %q: %w", name, err)
			}
		}
	}
	return used, nil
}

// checkExtraTensors rejects the tensors of f that are not in used, naming
// them all.
func checkExtraTensors(f *safetensors.File, used map[string]bool) error {
	var extra []string
	for _, name := range f.Names() {
		if !used[name] {
			extra = append(extra, fmt.Sprintf("%q", name))
		}
	}
	switch len(extra) {
	case 0:
	case 1:
		return fmt.Errorf("unexpected tensor %s: no op uses it", extra[0])
	default:
		return fmt.Errorf("unexpected tensors %s: no op uses them", strings.Join(extra, ", "))
	}
	return nil
}

// Checksum returns the CRC-32C (Castagnoli) of f's content as 8 lowercase
// hex digits: of the qat.format and qat.model metadata values, then of
// every tensor in name order (name, dtype, shape and data), each string
// followed by a zero byte. Other metadata, the checksum itself included,
// and the file's layout do not enter it.
func Checksum(f *safetensors.File) string {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	field := func(b []byte) {
		h.Write(b)
		h.Write([]byte{0})
	}
	field([]byte(f.Metadata[MetaFormat]))
	field([]byte(f.Metadata[MetaModel]))
	for _, name := range f.Names() {
		t := f.Tensors[name]
		field([]byte(name))
		field([]byte(t.DType))
		shape := make([]string, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = strconv.Itoa(d)
		}
		field([]byte(strings.Join(shape, ",")))
		h.Write(t.Data)
	}
	return fmt.Sprintf("%08x", h.Sum32())
}

// File validates m and returns it as a safetensors file: the format
// (m.FormatVersion) and the JSON description as metadata, and the tensors
// of the conv and linear ops. The file copies m's arrays.
func (m *Model) File() (*safetensors.File, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	js, err := m.encode()
	if err != nil {
		return nil, err
	}
	f := &safetensors.File{
		Metadata: map[string]string{MetaFormat: m.FormatVersion(), MetaModel: string(js)},
		Tensors:  map[string]safetensors.Tensor{},
	}
	for i := range m.Ops {
		op := &m.Ops[i]
		for _, s := range op.tensorSpecs(m.Requant) {
			f.Tensors[op.Name+"."+s.suffix] = op.encodeTensor(s)
		}
	}
	f.Metadata[MetaChecksum] = Checksum(f)
	return f, nil
}

// tensorSpec is one tensor of an op: the suffix of its name (after the op
// name and a dot), its dtype and its shape.
type tensorSpec struct {
	suffix string
	dtype  safetensors.DType
	shape  []int
}

// tensorSpecs lists the tensors of op (none for ops without weights), in
// a model with the given requant mode. op's structure must be valid.
func (op *Op) tensorSpecs(mode Requant) []tensorSpec {
	w := tensorSpec{"weight", safetensors.I8, []int{op.Out, op.In}}
	perChannel := []int{op.Out}
	switch op.Type {
	case OpDynamicLinear:
		return []tensorSpec{w, {"weight_scale", safetensors.F32, perChannel}, {"bias", safetensors.F32, perChannel}}
	case model.OpConv:
		w.shape = []int{op.Out, op.In / op.Node().EffectiveGroups(), op.Kernel, op.Kernel}
	case model.OpLinear:
	default:
		return nil
	}
	if op.packed() {
		w.dtype, w.shape = safetensors.U8, []int{packedLen(op.weightCount(), op.WeightBits)}
	}
	specs := []tensorSpec{w, {"weight_scale", safetensors.F32, perChannel}, {"bias", safetensors.I32, perChannel}}
	if mode == RequantFloat {
		return append(specs, tensorSpec{"multiplier", safetensors.F32, perChannel})
	}
	return append(specs, tensorSpec{"fixed_multiplier", safetensors.I32, perChannel}, tensorSpec{"shift", safetensors.I32, perChannel})
}

// packed reports whether op's weight codes are stored packed: 4- and
// 2-bit codes of conv and linear.
func (op *Op) packed() bool { return op.WeightBits == 4 || op.WeightBits == 2 }

// encodeTensor returns the tensor s of op.
func (op *Op) encodeTensor(s tensorSpec) safetensors.Tensor {
	switch s.suffix {
	case "weight":
		if !op.packed() {
			return safetensors.FromInt8(s.shape, op.Weight)
		}
		return safetensors.FromUint8(s.shape, PackWeights(op.Weight, op.WeightBits))
	case "weight_scale":
		return safetensors.FromFloat32(s.shape, op.WeightScale)
	case "bias":
		if op.Type == OpDynamicLinear {
			return safetensors.FromFloat32(s.shape, op.FloatBias)
		}
		return safetensors.FromInt32(s.shape, op.Bias)
	case "multiplier":
		return safetensors.FromFloat32(s.shape, op.Multiplier)
	case "fixed_multiplier":
		return safetensors.FromInt32(s.shape, op.FixedMultiplier)
	}
	return safetensors.FromInt32(s.shape, op.Shift)
}

// decodeTensor stores the content of tensor t, whose dtype and shape are
// those of op's tensor with that suffix, in op.
func (op *Op) decodeTensor(suffix string, t safetensors.Tensor) error {
	var err error
	switch suffix {
	case "weight":
		if !op.packed() {
			op.Weight, err = t.Int8()
			break
		}
		var b []byte
		if b, err = t.Uint8(); err == nil {
			op.Weight, err = unpack(b, op.WeightBits, op.weightCount())
		}
	case "weight_scale":
		op.WeightScale, err = t.Float32()
	case "bias":
		if op.Type == OpDynamicLinear {
			op.FloatBias, err = t.Float32()
			break
		}
		op.Bias, err = t.Int32()
	case "multiplier":
		op.Multiplier, err = t.Float32()
	case "fixed_multiplier":
		op.FixedMultiplier, err = t.Int32()
	case "shift":
		op.Shift, err = t.Int32()
	}
	return err
}

// packedLen is the number of bytes that hold n codes of the given width.
func packedLen(n, bits int) int { return (n*bits + 7) / 8 }

// PackWeights packs 4- or 2-bit weight codes into bytes as the file
// stores them: first code in the low bits, each code in two's complement
// within its field; unused high bits of the last byte are zero.
func PackWeights(codes []int8, bits int) []byte {
	per, mask := 8/bits, byte(1)<<bits-1
	b := make([]byte, packedLen(len(codes), bits))
	for i, c := range codes {
		b[i/per] |= byte(c) & mask << (i % per * bits)
	}
	return b
}

// unpack reverses PackWeights for n codes, rejecting nonzero unused bits.
func unpack(b []byte, bits, n int) ([]int8, error) {
	per, mask, shift := 8/bits, byte(1)<<bits-1, 8-bits
	codes := make([]int8, n)
	for i := range codes {
		field := b[i/per] >> (i % per * bits) & mask
		codes[i] = int8(field<<shift) >> shift // sign-extend
	}
	if used := n % per; used != 0 {
		if rest := b[len(b)-1] >> (used * bits); rest != 0 {
			return nil, fmt.Errorf("unused high bits of the last byte (0x%02x) are not zero", b[len(b)-1])
		}
	}
	return codes, nil
}

// The JSON description. Norm and Quant convert to these types (the field
// names and types match; only the tags differ).
type (
	jsonNorm struct {
		Mean        float32   `json:"mean"`
		Std         float32   `json:"std"`
		ChannelMean []float32 `json:"channel_mean,omitempty"`
		ChannelStd  []float32 `json:"channel_std,omitempty"`
	}
	jsonQuant struct {
		Scale     float32 `json:"scale"`
		ZeroPoint int32   `json:"zero_point"`
		QMin      int32   `json:"qmin"`
		QMax      int32   `json:"qmax"`
	}
	jsonModel struct {
		Name       string            `json:"name"`
		Input      [3]int            `json:"input"`
		Classes    int               `json:"classes"`
		Norm       jsonNorm          `json:"norm"`
		InputQuant *jsonQuant        `json:"input_quant,omitempty"` // nil: float input
		Requant    Requant           `json:"requant"`
		Ops        []json.RawMessage `json:"ops"`
	}
)

// encode returns the JSON description of a valid model, compact, fields
// in the order of the specification.
func (m *Model) encode() ([]byte, error) {
	j := jsonModel{Name: m.Name, Input: m.Input, Classes: m.Classes, Norm: jsonNorm(m.Norm),
		Requant: m.Requant, Ops: make([]json.RawMessage, len(m.Ops))}
	if !m.FloatInput {
		q := jsonQuant(m.InputQuant)
		j.InputQuant = &q
	}
	for i := range m.Ops {
		op, err := m.Ops[i].encode()
		if err != nil {
			return nil, err
		}
		j.Ops[i] = op
	}
	return json.Marshal(j)
}

// encode returns the JSON object of op: type, name, then the fields that
// apply to its type, but for optional ones that are zero (and a flatten's
// output, which is zero for a flatten of floats only).
func (op *Op) encode() ([]byte, error) {
	b, err := json.Marshal(struct {
		Type model.OpType `json:"type"`
		Name string       `json:"name"`
	}{op.Type, op.Name})
	if err != nil {
		return nil, err
	}
	b = b[:len(b)-1] // reopen the object
	for _, name := range opFields[op.Type] {
		v := op.field(name)
		if optionalIn(op.Type, name, 4) && op.zero(name) {
			continue
		}
		if q, ok := v.(*Quant); ok {
			v = jsonQuant(*q)
		}
		js, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("op %q: %s: %w", op.Name, name, err)
		}
		b = fmt.Appendf(b, ",%q:%s", name, js)
	}
	return append(b, '}'), nil
}

// jsonField is a key of a JSON object and where its value goes: a pointer
// for json.Unmarshal.
type jsonField struct {
	key    string
	target any
}

// decodeObject decodes the JSON object raw strictly: keys match exactly
// (case included), each at most once, each one of fields, with a non-null
// value that json.Unmarshal accepts for its target. Values are decoded in
// the order of fields, whatever their order in raw; unknown keys are
// reported after the known fields are decoded. It returns the keys it
// found.
func decodeObject(raw []byte, fields []jsonField) (map[string]bool, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(err)
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var keys []string
	values := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		key := tok.(string) // the decoder returns object keys as strings
		if _, dup := values[key]; dup {
			return nil, fmt.Errorf("duplicate field %q", key)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, jsonError(err)
		}
		keys, values[key] = append(keys, key), v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	seen := map[string]bool{}
	for _, f := range fields {
		v, ok := values[f.key]
		if !ok {
			continue
		}
		if string(v) == "null" {
			return nil, fmt.Errorf("field %q is null", f.key)
		}
		if err := json.Unmarshal(v, f.target); err != nil {
			return nil, fmt.Errorf("field %q: %w", f.key, err)
		}
		seen[f.key] = true
	}
	for _, key := range keys {
		if !seen[key] {
			return nil, fmt.Errorf("unknown field %q", key)
		}
	}
	return seen, nil
}

// decodeAll is decodeObject for an object that must hold every field.
func decodeAll(raw []byte, fields []jsonField) error {
	seen, err := decodeObject(raw, fields)
	if err != nil {
		return err
	}
	for _, f := range fields {
		if !seen[f.key] {
			return fmt.Errorf("missing field %q", f.key)
		}
	}
	return nil
}

// jsonError describes a syntax error of the JSON description.
func jsonError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("not valid JSON: %w", err)
}

// decodeModel decodes the JSON description of a file of the given major
// version: the model without its arrays.
func decodeModel(raw []byte, version int) (*Model, error) {
	m := &Model{}
	var input []int
	var norm, inputQuant json.RawMessage
	var ops []json.RawMessage
	fields := []jsonField{
		{"name", &m.Name}, {"input", &input}, {"classes", &m.Classes}, {"norm", &norm},
		{"input_quant", &inputQuant}, {"requant", &m.Requant}, {"ops", &ops},
	}
	seen, err := decodeObject(raw, fields)
	if err != nil {
		return nil, err
	}
	for _, f := range fields {
		// From FormatV4 on, a model without input_quant reads floats.
		if !seen[f.key] && (f.key != "input_quant" || version < 4) {
			return nil, fmt.Errorf("missing field %q", f.key)
		}
	}
	m.FloatInput = !seen["input_quant"]
	if len(input) != 3 {
		return nil, fmt.Errorf("input %v: want [C, H, W]", input)
	}
	copy(m.Input[:], input)
	seen, err = decodeObject(norm, []jsonField{{"mean", &m.Norm.Mean}, {"std", &m.Norm.Std},
		{"channel_mean", &m.Norm.ChannelMean}, {"channel_std", &m.Norm.ChannelStd}})
	switch {
	case err != nil:
	case !seen["mean"] || !seen["std"]:
		err = errors.New(`missing field "mean" or "std"`)
	case version < 3 && (seen["channel_mean"] || seen["channel_std"]):
		err = fmt.Errorf("per-channel constants (channel_mean, channel_std) are not in format %q (%q has them)", formats[version], FormatV3)
	}
	if err != nil {
		return nil, fmt.Errorf("norm: %w", err)
	}
	if !m.FloatInput {
		if m.InputQuant, err = decodeQuant(inputQuant); err != nil {
			return nil, fmt.Errorf("input_quant: %w", err)
		}
	}
	m.Ops = make([]Op, len(ops))
	for i, raw := range ops {
		if err := m.Ops[i].decode(raw, version); err != nil {
			if m.Ops[i].Type == "" || m.Ops[i].Name == "" {
				return nil, fmt.Errorf("op %d: %w", i, err)
			}
			return nil, fmt.Errorf("%s: %w", m.Ops[i].label(i), err)
		}
	}
	return m, nil
}

func decodeQuant(raw []byte) (Quant, error) {
	var q Quant
	err := decodeAll(raw, []jsonField{{"scale", &q.Scale}, {"zero_point", &q.ZeroPoint}, {"qmin", &q.QMin}, {"qmax", &q.QMax}})
	return q, err
}

// decode decodes the JSON object of an op in a file of the given major
// version: type and name, and exactly the fields that apply to the type
// in that version, the optional ones (FormatV3's additions, a
// dynamic_linear's act, from FormatV4 on a flatten's output) only if
// present, and then not empty.
func (op *Op) decode(raw []byte, version int) error {
	var output json.RawMessage
	fields := []jsonField{{"type", &op.Type}, {"name", &op.Name}, {"output", &output}, {"inputs", &op.Inputs}, {"act", &op.Act}}
	for _, name := range scalarFields {
		fields = append(fields, jsonField{name, op.field(name)})
	}
	seen, err := decodeObject(raw, fields)
	if err != nil {
		return err
	}
	for _, key := range []string{"type", "name"} {
		if !seen[key] {
			return fmt.Errorf("missing field %q", key)
		}
	}
	if _, ok := opFields[op.Type]; !ok {
		return fmt.Errorf("unknown type %q (want %s)", string(op.Type), typeList())
	}
	if version < 3 && slices.Contains(v3Types, op.Type) {
		return fmt.Errorf("type %s is not in format %q (%q has it)", op.Type, formats[version], FormatV3)
	}
	if version < 4 && op.Type == OpDynamicLinear {
		return fmt.Errorf("type %s is not in format %q (%q has it)", op.Type, formats[version], FormatV4)
	}
	for _, f := range fields[2:] {
		ok, opt := applies(op.Type, f.key), optionalIn(op.Type, f.key, version)
		switch {
		case ok && !opt && !seen[f.key]:
			return fmt.Errorf("missing field %q", f.key)
		case !ok && seen[f.key]:
			return fmt.Errorf("field %q does not apply to %s", f.key, op.Type)
		case opt && seen[f.key] && version < 3:
			return fmt.Errorf("field %q does not apply to %s in format %q (%q has it)", f.key, op.Type, formats[version], FormatV3)
		}
	}
	if seen["inputs"] && len(op.Inputs) == 0 {
		return errors.New(`field "inputs" is empty (leave it out to read the op before)`)
	}
	if seen["act"] && op.Act == "" {
		return errors.New(`field "act" is empty (leave it out for no activation)`)
	}
	if seen["output"] {
		if op.Output, err = decodeQuant(output); err != nil {
			return fmt.Errorf("output: %w", err)
		}
	}
	return nil
}
