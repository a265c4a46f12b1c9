package onnx

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The numbers of the fields of onnx.proto that FreeDims, Prune and FoldInputAffine read and
// rewrite, and the protobuf walking they share.
const (
	modelGraph protowire.Number = 7 // ModelProto.graph

	graphNode        protowire.Number = 1  // GraphProto.node
	graphInitializer protowire.Number = 5  // GraphProto.initializer
	graphInput       protowire.Number = 11 // GraphProto.input
	graphOutput      protowire.Number = 12 // GraphProto.output
	graphValueInfo   protowire.Number = 13 // GraphProto.value_info

	nodeInput  protowire.Number = 1 // NodeProto.input
	nodeOutput protowire.Number = 2 // NodeProto.output
	nodeOpType protowire.Number = 4 // NodeProto.op_type

	valueInfoName   protowire.Number = 1 // ValueInfoProto.name
	valueInfoType   protowire.Number = 2 // ValueInfoProto.type
	typeTensor      protowire.Number = 1 // TypeProto.tensor_type
	tensorTypeShape protowire.Number = 2 // TypeProto.Tensor.shape
	shapeDim        protowire.Number = 1 // TensorShapeProto.dim
	dimensionParam  protowire.Number = 2 // TensorShapeProto.Dimension.dim_param

	tensorDims      protowire.Number = 1 // TensorProto.dims
	tensorDataType  protowire.Number = 2 // TensorProto.data_type
	tensorFloatData protowire.Number = 4 // TensorProto.float_data
	tensorName      protowire.Number = 8 // TensorProto.name
	tensorRawData   protowire.Number = 9 // TensorProto.raw_data
	tensorFloat                      = 1 // TensorProto.FLOAT, a data_type
)

// errProtobuf marks a model file whose bytes are not the protobuf these functions expect.
var errProtobuf = errors.New("not an ONNX protobuf")

func is(n protowire.Number) func(protowire.Number) bool {
	return func(m protowire.Number) bool { return m == n }
}

// rewriteFields copies the protobuf message msg, passing the contents of every length-delimited
// field whose number match accepts through edit (which returns nil to drop the field).
func rewriteFields(msg []byte, match func(protowire.Number) bool, edit func(protowire.Number, []byte) ([]byte, error)) ([]byte, error) {
	out := make([]byte, 0, len(msg))
	for len(msg) > 0 {
		num, typ, tagLen := protowire.ConsumeTag(msg)
		if tagLen < 0 {
			return nil, fmt.Errorf("%w: %v", errProtobuf, protowire.ParseError(tagLen))
		}
		valLen := protowire.ConsumeFieldValue(num, typ, msg[tagLen:])
		if valLen < 0 {
			return nil, fmt.Errorf("%w: field %d: %v", errProtobuf, num, protowire.ParseError(valLen))
		}
		field := msg[:tagLen+valLen]
		msg = msg[tagLen+valLen:]
		if typ != protowire.BytesType || !match(num) {
			out = append(out, field...)
			continue
		}
		content, _ := protowire.ConsumeBytes(field[tagLen:])
		edited, err := edit(num, content)
		if err != nil {
			return nil, err
		}
		if edited == nil {
			continue
		}
		out = protowire.AppendTag(out, num, protowire.BytesType)
		out = protowire.AppendBytes(out, edited)
	}
	return out, nil
}

// eachField calls fn with the number and contents of every length-delimited field of a
// protobuf message, without copying it (rewriteFields copies: reading a model's weights
// through it copied every tensor).
func eachField(msg []byte, fn func(protowire.Number, []byte) error) error {
	for len(msg) > 0 {
		num, typ, tagLen := protowire.ConsumeTag(msg)
		if tagLen < 0 {
			return fmt.Errorf("%w: %v", errProtobuf, protowire.ParseError(tagLen))
		}
		valLen := protowire.ConsumeFieldValue(num, typ, msg[tagLen:])
		if valLen < 0 {
			return fmt.Errorf("%w: field %d: %v", errProtobuf, num, protowire.ParseError(valLen))
		}
		if typ == protowire.BytesType {
			content, _ := protowire.ConsumeBytes(msg[tagLen : tagLen+valLen])
			if err := fn(num, content); err != nil {
				return err
			}
		}
		msg = msg[tagLen+valLen:]
	}
	return nil
}

// errFound stops eachField at the field fieldString looks for.
var errFound = errors.New("found")

// fieldString returns the first string field numbered num of a protobuf message ("" if none).
func fieldString(msg []byte, num protowire.Number) string {
	var s string
	eachField(msg, func(n protowire.Number, v []byte) error {
		if n != num {
			return nil
		}
		s = string(v)
		return errFound
	})
	return s
}
