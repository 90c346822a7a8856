package onnx

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"qat/qmodel"
)

// schemaFields lists every field of the schema subset as onnx.proto (ONNX
// IR version 7 and later; https://github.com/onnx/onnx/blob/main/onnx/onnx.proto)
// declares it: message, field name, field number, repeated.
var schemaFields = []struct {
	message, field string
	number         protoreflect.FieldNumber
	repeated       bool
}{
	{"ModelProto", "ir_version", 1, false},
	{"ModelProto", "producer_name", 2, false},
	{"ModelProto", "producer_version", 3, false},
	{"ModelProto", "doc_string", 6, false},
	{"ModelProto", "graph", 7, false},
	{"ModelProto", "opset_import", 8, true},
	{"ModelProto", "metadata_props", 14, true},
	{"OperatorSetIdProto", "domain", 1, false},
	{"OperatorSetIdProto", "version", 2, false},
	{"StringStringEntryProto", "key", 1, false},
	{"StringStringEntryProto", "value", 2, false},
	{"GraphProto", "node", 1, true},
	{"GraphProto", "name", 2, false},
	{"GraphProto", "initializer", 5, true},
	{"GraphProto", "doc_string", 10, false},
	{"GraphProto", "input", 11, true},
	{"GraphProto", "output", 12, true},
	{"NodeProto", "input", 1, true},
	{"NodeProto", "output", 2, true},
	{"NodeProto", "name", 3, false},
	{"NodeProto", "op_type", 4, false},
	{"NodeProto", "attribute", 5, true},
	{"NodeProto", "doc_string", 6, false},
	{"NodeProto", "domain", 7, false},
	{"AttributeProto", "name", 1, false},
	{"AttributeProto", "f", 2, false},
	{"AttributeProto", "i", 3, false},
	{"AttributeProto", "s", 4, false},
	{"AttributeProto", "t", 5, false},
	{"AttributeProto", "floats", 7, true},
	{"AttributeProto", "ints", 8, true},
	{"AttributeProto", "doc_string", 13, false},
	{"AttributeProto", "type", 20, false},
	{"TensorProto", "dims", 1, true},
	{"TensorProto", "data_type", 2, false},
	{"TensorProto", "name", 8, false},
	{"TensorProto", "raw_data", 9, false},
	{"TensorProto", "doc_string", 12, false},
	{"ValueInfoProto", "name", 1, false},
	{"ValueInfoProto", "type", 2, false},
	{"ValueInfoProto", "doc_string", 3, false},
	{"TypeProto", "tensor_type", 1, false},
	{"TypeProto.Tensor", "elem_type", 1, false},
	{"TypeProto.Tensor", "shape", 2, false},
	{"TensorShapeProto", "dim", 1, true},
	{"TensorShapeProto.Dimension", "dim_value", 1, false},
	{"TensorShapeProto.Dimension", "dim_param", 2, false},
}

func TestSchemaNumbers(t *testing.T) {
	count := 0
	for _, f := range schemaFields {
		md := newMessage(f.message).Descriptor()
		fd := md.Fields().ByName(protoreflect.Name(f.field))
		if fd == nil {
			t.Errorf("%s has no field %s", f.message, f.field)
			continue
		}
		if fd.Number() != f.number || (fd.Cardinality() == protoreflect.Repeated) != f.repeated {
			t.Errorf("%s.%s is number %d (repeated %v), onnx.proto says %d (repeated %v)",
				f.message, f.field, fd.Number(), fd.Cardinality() == protoreflect.Repeated, f.number, f.repeated)
		}
	}
	// Every field of the schema is in the table.
	var walk func(ms protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			count += ms.Get(i).Fields().Len()
			walk(ms.Get(i).Messages())
		}
	}
	walk(schema.Messages())
	if count != len(schemaFields) {
		t.Errorf("the schema has %d fields, the table %d", count, len(schemaFields))
	}
	if schema.Syntax() != protoreflect.Proto2 || schema.Package() != "onnx" {
		t.Errorf("schema is %v package %s, want proto2 package onnx", schema.Syntax(), schema.Package())
	}
	// onnx.proto's TensorProto.DataType and AttributeProto.AttributeType.
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"FLOAT", typeFloat, 1}, {"UINT8", typeUint8, 2}, {"INT8", typeInt8, 3}, {"INT32", typeInt32, 6}, {"INT64", typeInt64, 7},
		{"INT4", typeInt4, 22}, // IR version 10; the installed onnx package may predate it
		{"attribute FLOAT", attrFloat, 1}, {"attribute INT", attrInt, 2}, {"attribute INTS", attrInts, 7},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, onnx.proto says %d", c.name, c.got, c.want)
		}
	}
}

// TestSchemaMatchesPython compares the schema with the descriptors of the
// onnx Python package, when there is one: every field's number, type,
// label, message or enum type and oneof, the AttributeType values, and
// the DataType values the exporters use.
func TestSchemaMatchesPython(t *testing.T) {
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import onnx").Run() != nil {
		t.Skipf("%s cannot import onnx", py)
	}
	var names []string
	var walk func(ms protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			names = append(names, string(ms.Get(i).FullName()))
			walk(ms.Get(i).Messages())
		}
	}
	walk(schema.Messages())
	const script = `
import json, sys, onnx
pool = onnx.ModelProto.DESCRIPTOR.file.pool
out = {"messages": {}, "attribute_types": {}, "data_types": {}}
for n in sys.argv[1:]:
    d = pool.FindMessageTypeByName(n)
    out["messages"][n] = {f.name: [f.number, f.type, f.label,
        f.message_type.full_name if f.message_type else (f.enum_type.full_name if f.enum_type else ""),
        f.containing_oneof.name if f.containing_oneof else ""] for f in d.fields}
for v in pool.FindEnumTypeByName("onnx.AttributeProto.AttributeType").values:
    out["attribute_types"][v.name] = v.number
for v in pool.FindEnumTypeByName("onnx.TensorProto.DataType").values:
    out["data_types"][v.name] = v.number
print(json.dumps(out))
`
	raw, err := exec.Command(py, append([]string{"-c", script}, names...)...).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var ref struct {
		Messages       map[string]map[string][5]any
		AttributeTypes map[string]int32 `json:"attribute_types"`
		DataTypes      map[string]int   `json:"data_types"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		md, _ := findMessage(schema.Messages(), protoreflect.FullName(n))
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			r, ok := ref.Messages[n][string(fd.Name())]
			if !ok {
				t.Errorf("%s.%s is not in the onnx package", n, fd.Name())
				continue
			}
			typeName := ""
			if fd.Message() != nil {
				typeName = string(fd.Message().FullName())
			} else if fd.Enum() != nil {
				typeName = string(fd.Enum().FullName())
			}
			oneof := ""
			if fd.ContainingOneof() != nil {
				oneof = string(fd.ContainingOneof().Name())
			}
			got := [5]any{float64(fd.Number()), float64(descriptorpb.FieldDescriptorProto_Type(fd.Kind())),
				float64(descriptorpb.FieldDescriptorProto_Label(fd.Cardinality())), typeName, oneof}
			if got != r {
				t.Errorf("%s.%s: number, type, label, type name, oneof = %v, the onnx package says %v", n, fd.Name(), got, r)
			}
		}
	}
	ev := newMessage("AttributeProto").Descriptor().Fields().ByName("type").Enum().Values()
	if ev.Len() != len(ref.AttributeTypes) {
		t.Errorf("AttributeType has %d values, the onnx package %d", ev.Len(), len(ref.AttributeTypes))
	}
	for i := 0; i < ev.Len(); i++ {
		if v := ev.Get(i); ref.AttributeTypes[string(v.Name())] != int32(v.Number()) {
			t.Errorf("AttributeType %s = %d, the onnx package says %d", v.Name(), v.Number(), ref.AttributeTypes[string(v.Name())])
		}
	}
	for name, v := range map[string]int{"FLOAT": typeFloat, "UINT8": typeUint8, "INT8": typeInt8, "INT32": typeInt32, "INT64": typeInt64} {
		if ref.DataTypes[name] != v {
			t.Errorf("DataType %s = %d, the onnx package says %d", name, v, ref.DataTypes[name])
		}
	}
}

// TestRoundTrip decodes an exported model with the schema and checks what
// it holds against the int8 model it came from; encoding the decoded
// message again gives the same bytes.
func TestRoundTrip(t *testing.T) {
	m, err := qmodel.ReadFile("../qmodel/testdata/small.qmodel")
	if err != nil {
		t.Fatal(err)
	}
	b, err := FromInt8(m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := FromInt8(m)
	if err != nil || !bytes.Equal(b, again) {
		t.Fatalf("a second export differs (error %v)", err)
	}
	pm := newMessage("ModelProto")
	if err := proto.Unmarshal(b, pm); err != nil {
		t.Fatal(err)
	}
	re, err := proto.MarshalOptions{Deterministic: true}.Marshal(pm)
	if err != nil || !bytes.Equal(re, b) {
		t.Errorf("re-encoding the decoded model gives other bytes (error %v)", err)
	}
	get := func(msg protoreflect.Message, name string) protoreflect.Value { return msg.Get(fieldOf(msg, name)) }
	if v := get(pm, "ir_version").Int(); v != IRVersion {
		t.Errorf("ir_version %d", v)
	}
	if v := get(pm, "producer_name").String(); v != "qat" {
		t.Errorf("producer_name %q", v)
	}
	ops := get(pm, "opset_import").List()
	if ops.Len() != 1 || get(ops.Get(0).Message(), "domain").String() != "" || get(ops.Get(0).Message(), "version").Int() != Opset {
		t.Errorf("opset_import %v", ops)
	}
	g := get(pm, "graph").Message()
	var types []string
	nodes := get(g, "node").List()
	for i := 0; i < nodes.Len(); i++ {
		types = append(types, get(nodes.Get(i).Message(), "op_type").String())
	}
	// small.qmodel: conv c1 (fused ReLU), relu6, maxpool, avgpool, flatten,
	// linear; input zero point 33 over [0, 255].
	want := []string{"Sub", "Div", "Mul", "QuantizeLinear", "QLinearConv", "Clip", "Clip", "MaxPool",
		"Cast", "AveragePool", "QuantizeLinear", "Flatten", "Reshape", "QLinearConv", "Flatten", "DequantizeLinear"}
	if !slices.Equal(types, want) {
		t.Errorf("nodes %v, want %v", types, want)
	}
	shape := func(vi protoreflect.Message) (dims []any) {
		tt := get(get(vi, "type").Message(), "tensor_type").Message()
		ds := get(get(tt, "shape").Message(), "dim").List()
		for i := 0; i < ds.Len(); i++ {
			d := ds.Get(i).Message()
			if p := get(d, "dim_param").String(); p != "" {
				dims = append(dims, p)
			} else {
				dims = append(dims, get(d, "dim_value").Int())
			}
		}
		return append(dims, get(tt, "elem_type").Int())
	}
	in, out := get(g, "input").List().Get(0).Message(), get(g, "output").List().Get(0).Message()
	if n, s := get(in, "name").String(), shape(in); n != "input" || !slices.Equal(s, []any{"N", int64(1), int64(6), int64(6), int64(typeFloat)}) {
		t.Errorf("input %s %v", n, s)
	}
	if n, s := get(out, "name").String(), shape(out); n != "logits" || !slices.Equal(s, []any{"N", int64(3), int64(typeFloat)}) {
		t.Errorf("output %s %v", n, s)
	}
	inits := get(g, "initializer").List()
	found := false
	for i := 0; i < inits.Len(); i++ {
		tp := inits.Get(i).Message()
		if get(tp, "name").String() != "c1/weight" {
			continue
		}
		found = true
		raw := get(tp, "raw_data").Bytes()
		if get(tp, "data_type").Int() != typeInt8 || len(raw) != len(m.Ops[0].Weight) {
			t.Fatalf("c1/weight: type %d, %d bytes", get(tp, "data_type").Int(), len(raw))
		}
		for j, w := range m.Ops[0].Weight {
			if int8(raw[j]) != w {
				t.Fatalf("c1/weight[%d] = %d, want %d", j, int8(raw[j]), w)
			}
		}
	}
	if !found {
		t.Error("no initializer c1/weight")
	}
}
