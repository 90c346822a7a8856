package onnx

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The subset of the ONNX IR schema (onnx.proto, package "onnx", proto2)
// that holds what the exporters write: the messages of a model, graph,
// node, attribute, tensor and value type with their basic fields. Message,
// field and enum names and numbers are those of the ONNX IR
// specification. Fields for what qat does not use (training info,
// functions, sparse tensors, external and typed tensor data, sequence and
// map types, ...) are left out, which changes nothing on the wire: a
// reader sees them unset.
// TestSchemaNumbers checks every number against a table taken from
// onnx.proto, and TestSchemaMatchesPython against the descriptors of the
// installed onnx Python package.

// Element types of TensorProto.data_type and TypeProto.Tensor.elem_type
// (TensorProto.DataType).
const (
	typeFloat = 1
	typeUint8 = 2
	typeInt8  = 3
	typeInt32 = 6
	typeInt64 = 7
	typeInt4  = 22 // IR version 10 and later
)

// AttributeProto.AttributeType values the exporters use.
const (
	attrFloat = 1
	attrInt   = 2
	attrInts  = 7
)

type (
	fieldType  = descriptorpb.FieldDescriptorProto_Type
	fieldLabel = descriptorpb.FieldDescriptorProto_Label
)

const (
	optional = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	repeated = descriptorpb.FieldDescriptorProto_LABEL_REPEATED

	tInt32   = descriptorpb.FieldDescriptorProto_TYPE_INT32
	tInt64   = descriptorpb.FieldDescriptorProto_TYPE_INT64
	tFloat   = descriptorpb.FieldDescriptorProto_TYPE_FLOAT
	tString  = descriptorpb.FieldDescriptorProto_TYPE_STRING
	tBytes   = descriptorpb.FieldDescriptorProto_TYPE_BYTES
	tMessage = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	tEnum    = descriptorpb.FieldDescriptorProto_TYPE_ENUM
)

// field returns a field descriptor; typeName is the full name of a message
// or enum type (".onnx.X"), "" for scalars.
func field(name string, number int32, label fieldLabel, typ fieldType, typeName string) *descriptorpb.FieldDescriptorProto {
	f := &descriptorpb.FieldDescriptorProto{
		Name: proto.String(name), Number: proto.Int32(number), Label: label.Enum(), Type: typ.Enum(),
	}
	if typeName != "" {
		f.TypeName = proto.String(typeName)
	}
	return f
}

// inOneof puts f in the message's oneof number i.
func inOneof(f *descriptorpb.FieldDescriptorProto, i int32) *descriptorpb.FieldDescriptorProto {
	f.OneofIndex = proto.Int32(i)
	return f
}

func message(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
	return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
}

// schemaProto returns the file descriptor of the schema subset.
func schemaProto() *descriptorpb.FileDescriptorProto {
	attrType := &descriptorpb.EnumDescriptorProto{Name: proto.String("AttributeType")}
	for _, v := range []struct {
		name   string
		number int32
	}{
		{"UNDEFINED", 0}, {"FLOAT", 1}, {"INT", 2}, {"STRING", 3}, {"TENSOR", 4}, {"GRAPH", 5},
		{"SPARSE_TENSOR", 11}, {"TYPE_PROTO", 13}, {"FLOATS", 6}, {"INTS", 7}, {"STRINGS", 8},
		{"TENSORS", 9}, {"GRAPHS", 10}, {"SPARSE_TENSORS", 12}, {"TYPE_PROTOS", 14},
	} {
		attrType.Value = append(attrType.Value, &descriptorpb.EnumValueDescriptorProto{Name: proto.String(v.name), Number: proto.Int32(v.number)})
	}
	attribute := message("AttributeProto",
		field("name", 1, optional, tString, ""),
		field("doc_string", 13, optional, tString, ""),
		field("type", 20, optional, tEnum, ".onnx.AttributeProto.AttributeType"),
		field("f", 2, optional, tFloat, ""),
		field("i", 3, optional, tInt64, ""),
		field("s", 4, optional, tBytes, ""),
		field("t", 5, optional, tMessage, ".onnx.TensorProto"),
		field("floats", 7, repeated, tFloat, ""),
		field("ints", 8, repeated, tInt64, ""),
	)
	attribute.EnumType = []*descriptorpb.EnumDescriptorProto{attrType}

	typeProto := message("TypeProto", inOneof(field("tensor_type", 1, optional, tMessage, ".onnx.TypeProto.Tensor"), 0))
	typeProto.NestedType = []*descriptorpb.DescriptorProto{message("Tensor",
		field("elem_type", 1, optional, tInt32, ""),
		field("shape", 2, optional, tMessage, ".onnx.TensorShapeProto"),
	)}
	typeProto.OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("value")}}

	dimension := message("Dimension",
		inOneof(field("dim_value", 1, optional, tInt64, ""), 0),
		inOneof(field("dim_param", 2, optional, tString, ""), 0),
	)
	dimension.OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("value")}}
	shape := message("TensorShapeProto", field("dim", 1, repeated, tMessage, ".onnx.TensorShapeProto.Dimension"))
	shape.NestedType = []*descriptorpb.DescriptorProto{dimension}

	return &descriptorpb.FileDescriptorProto{
		Name:    proto.String("qat/onnx/onnx-subset.proto"),
		Package: proto.String("onnx"),
		Syntax:  proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{
			attribute,
			message("ValueInfoProto",
				field("name", 1, optional, tString, ""),
				field("type", 2, optional, tMessage, ".onnx.TypeProto"),
				field("doc_string", 3, optional, tString, ""),
			),
			message("NodeProto",
				field("input", 1, repeated, tString, ""),
				field("output", 2, repeated, tString, ""),
				field("name", 3, optional, tString, ""),
				field("op_type", 4, optional, tString, ""),
				field("domain", 7, optional, tString, ""),
				field("attribute", 5, repeated, tMessage, ".onnx.AttributeProto"),
				field("doc_string", 6, optional, tString, ""),
			),
			message("ModelProto",
				field("ir_version", 1, optional, tInt64, ""),
				field("opset_import", 8, repeated, tMessage, ".onnx.OperatorSetIdProto"),
				field("producer_name", 2, optional, tString, ""),
				field("producer_version", 3, optional, tString, ""),
				field("doc_string", 6, optional, tString, ""),
				field("graph", 7, optional, tMessage, ".onnx.GraphProto"),
				field("metadata_props", 14, repeated, tMessage, ".onnx.StringStringEntryProto"),
			),
			message("StringStringEntryProto",
				field("key", 1, optional, tString, ""),
				field("value", 2, optional, tString, ""),
			),
			message("GraphProto",
				field("node", 1, repeated, tMessage, ".onnx.NodeProto"),
				field("name", 2, optional, tString, ""),
				field("initializer", 5, repeated, tMessage, ".onnx.TensorProto"),
				field("doc_string", 10, optional, tString, ""),
				field("input", 11, repeated, tMessage, ".onnx.ValueInfoProto"),
				field("output", 12, repeated, tMessage, ".onnx.ValueInfoProto"),
			),
			message("TensorProto",
				field("dims", 1, repeated, tInt64, ""),
				field("data_type", 2, optional, tInt32, ""),
				field("name", 8, optional, tString, ""),
				field("doc_string", 12, optional, tString, ""),
				field("raw_data", 9, optional, tBytes, ""),
			),
			shape,
			typeProto,
			message("OperatorSetIdProto",
				field("domain", 1, optional, tString, ""),
				field("version", 2, optional, tInt64, ""),
			),
		},
	}
}

// schema is the built descriptor of the schema subset.
var schema = mustSchema()

func mustSchema() protoreflect.FileDescriptor {
	fd, err := protodesc.NewFile(schemaProto(), nil)
	if err != nil {
		panic(fmt.Sprintf("onnx: the built-in schema is invalid: %v", err))
	}
	return fd
}

// newMessage returns an empty message of the schema's type name, e.g.
// "ModelProto" or "TypeProto.Tensor".
func newMessage(name string) *dynamicpb.Message {
	d := schema.FullName() + "." + protoreflect.FullName(name)
	md, ok := findMessage(schema.Messages(), d)
	if !ok {
		panic(fmt.Sprintf("onnx: no message %s in the schema", d))
	}
	return dynamicpb.NewMessage(md)
}

func findMessage(ms protoreflect.MessageDescriptors, name protoreflect.FullName) (protoreflect.MessageDescriptor, bool) {
	for i := 0; i < ms.Len(); i++ {
		m := ms.Get(i)
		if m.FullName() == name {
			return m, true
		}
		if n, ok := findMessage(m.Messages(), name); ok {
			return n, true
		}
	}
	return nil, false
}

// fieldOf returns the descriptor of m's field name; an unknown name is a
// programmer error.
func fieldOf(m protoreflect.Message, name string) protoreflect.FieldDescriptor {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		panic(fmt.Sprintf("onnx: %s has no field %s", m.Descriptor().FullName(), name))
	}
	return fd
}

// set sets a singular field of m to v: a string, []byte, int32, int64,
// float32, protoreflect.EnumNumber or *dynamicpb.Message.
func set(m *dynamicpb.Message, name string, v any) {
	m.Set(fieldOf(m, name), valueOf(v))
}

// add appends v to the repeated field of m.
func add(m *dynamicpb.Message, name string, v any) {
	m.Mutable(fieldOf(m, name)).List().Append(valueOf(v))
}

func valueOf(v any) protoreflect.Value {
	switch v := v.(type) {
	case *dynamicpb.Message:
		return protoreflect.ValueOfMessage(v)
	case protoreflect.EnumNumber:
		return protoreflect.ValueOfEnum(v)
	}
	return protoreflect.ValueOf(v)
}
