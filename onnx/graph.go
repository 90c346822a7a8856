package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Versions written into every model.
const (
	// IRVersion is the ONNX IR version of the models (7: ONNX 1.8).
	IRVersion = 7
	// Opset is the version of the default ("ai.onnx") operator set the
	// models import.
	Opset = 13
	// IRVersionInt4 and OpsetInt4 are the IR version (10: ONNX 1.16) and
	// opset of a QDQ model with int4 weights (QDQOptions.Int4Weights):
	// the first that have int4 tensors and QuantizeLinear and
	// DequantizeLinear of them.
	IRVersionInt4 = 10
	OpsetInt4     = 21
	// Producer is the models' producer_name.
	Producer = "qat"
)

// graph builds a GraphProto: nodes in order, initializers, and the graph's
// inputs and outputs. Every tensor name is defined once (define makes
// names unique); a name used before it is defined is a bug of the
// exporter, kept in err and reported rather than written.
type graph struct {
	g       *dynamicpb.Message
	defined map[string]bool
	err     error
	// ir and opset are the model's IR version and opset: IRVersion and
	// Opset unless the exporter sets others.
	ir, opset int64
}

func newGraph(name string) *graph {
	g := newMessage("GraphProto")
	set(g, "name", name)
	return &graph{g: g, defined: map[string]bool{}, ir: IRVersion, opset: Opset}
}

// define reserves a tensor name and returns it: name itself, or, if
// that is taken, name with the smallest suffix "_2", "_3", ... that is
// not, so that an op named like a name the exporter writes (e.g. "input")
// cannot clash with it.
func (b *graph) define(name string) string {
	n := name
	for i := 2; b.defined[n]; i++ {
		n = fmt.Sprintf("%s_%d", name, i)
	}
	b.defined[n] = true
	return n
}

func (b *graph) use(name string) string {
	if !b.defined[name] && b.err == nil {
		b.err = fmt.Errorf("tensor %q is used before it is defined", name)
	}
	return name
}

// tensor adds an initializer of element type dt, shape dims (nil: a
// scalar) and little-endian raw data, and returns its name.
func (b *graph) tensor(name string, dt int32, dims []int, raw []byte) string {
	name = b.define(name)
	t := newMessage("TensorProto")
	set(t, "name", name)
	set(t, "data_type", dt)
	for _, d := range dims {
		add(t, "dims", int64(d))
	}
	set(t, "raw_data", raw)
	add(b.g, "initializer", t)
	return name
}

func (b *graph) float32s(name string, dims []int, v ...float32) string {
	raw := make([]byte, 0, 4*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
	}
	return b.tensor(name, typeFloat, dims, raw)
}

func (b *graph) uint8s(name string, dims []int, v ...uint8) string {
	return b.tensor(name, typeUint8, dims, append([]byte(nil), v...))
}

func (b *graph) int8s(name string, dims []int, v ...int8) string {
	raw := make([]byte, len(v))
	for i, x := range v {
		raw[i] = byte(x)
	}
	return b.tensor(name, typeInt8, dims, raw)
}

// int4s adds an int4 initializer of codes in [-8, 7], packed as
// TensorProto's INT4: two codes a byte, the first in the low four bits,
// the last byte's high bits 0 for an odd count.
func (b *graph) int4s(name string, dims []int, v ...int8) string {
	raw := make([]byte, (len(v)+1)/2)
	for i, x := range v {
		raw[i/2] |= byte(x&0xf) << (4 * (i % 2))
	}
	return b.tensor(name, typeInt4, dims, raw)
}

func (b *graph) int32s(name string, dims []int, v ...int32) string {
	raw := make([]byte, 0, 4*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, uint32(x))
	}
	return b.tensor(name, typeInt32, dims, raw)
}

func (b *graph) int64s(name string, dims []int, v ...int64) string {
	raw := make([]byte, 0, 8*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(x))
	}
	return b.tensor(name, typeInt64, dims, raw)
}

// node appends a node of type op that reads inputs and writes one output
// named out (made unique), after which the node is named too, and returns
// the output's name.
func (b *graph) node(op, out string, inputs []string, attrs ...*dynamicpb.Message) string {
	n := newMessage("NodeProto")
	for _, in := range inputs {
		add(n, "input", b.use(in))
	}
	out = b.define(out)
	add(n, "output", out)
	set(n, "name", out)
	set(n, "op_type", op)
	for _, a := range attrs {
		add(n, "attribute", a)
	}
	add(b.g, "node", n)
	return out
}

func attribute(name string, typ protoreflect.EnumNumber) *dynamicpb.Message {
	a := newMessage("AttributeProto")
	set(a, "name", name)
	set(a, "type", typ)
	return a
}

func intAttr(name string, v int64) *dynamicpb.Message {
	a := attribute(name, attrInt)
	set(a, "i", v)
	return a
}

func intsAttr(name string, v ...int64) *dynamicpb.Message {
	a := attribute(name, attrInts)
	for _, x := range v {
		add(a, "ints", x)
	}
	return a
}

func floatAttr(name string, v float32) *dynamicpb.Message {
	a := attribute(name, attrFloat)
	set(a, "f", v)
	return a
}

// dim is a tensor dimension: a size, or a symbolic one when param is set.
type dim struct {
	value int
	param string
}

func valueInfo(name string, elemType int32, dims []dim) *dynamicpb.Message {
	shape := newMessage("TensorShapeProto")
	for _, d := range dims {
		m := newMessage("TensorShapeProto.Dimension")
		if d.param != "" {
			set(m, "dim_param", d.param)
		} else {
			set(m, "dim_value", int64(d.value))
		}
		add(shape, "dim", m)
	}
	tt := newMessage("TypeProto.Tensor")
	set(tt, "elem_type", elemType)
	set(tt, "shape", shape)
	tp := newMessage("TypeProto")
	set(tp, "tensor_type", tt)
	vi := newMessage("ValueInfoProto")
	set(vi, "name", name)
	set(vi, "type", tp)
	return vi
}

// input declares a graph input; it must be the first name defined.
func (b *graph) input(name string, elemType int32, dims ...dim) string {
	name = b.define(name)
	add(b.g, "input", valueInfo(name, elemType, dims))
	return name
}

// output declares a graph output, which a node must have written.
func (b *graph) output(name string, elemType int32, dims ...dim) {
	add(b.g, "output", valueInfo(b.use(name), elemType, dims))
}

// marshal wraps the graph in a ModelProto (IR version b.ir, opset
// b.opset, producer Producer, the doc string and metadata key-value pairs)
// and encodes it deterministically.
func (b *graph) marshal(doc string, meta [][2]string) ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	m := newMessage("ModelProto")
	set(m, "ir_version", b.ir)
	op := newMessage("OperatorSetIdProto")
	set(op, "domain", "")
	set(op, "version", b.opset)
	add(m, "opset_import", op)
	set(m, "producer_name", Producer)
	set(m, "doc_string", doc)
	set(m, "graph", b.g)
	for _, kv := range meta {
		e := newMessage("StringStringEntryProto")
		set(e, "key", kv[0])
		set(e, "value", kv[1])
		add(m, "metadata_props", e)
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return out, nil
}
