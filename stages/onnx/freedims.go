package onnx

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// The numbers of the fields of onnx.proto that FreeDims walks through.
const (
	modelGraph      protowire.Number = 7  // ModelProto.graph
	graphInput      protowire.Number = 11 // GraphProto.input
	graphOutput     protowire.Number = 12 // GraphProto.output
	graphValueInfo  protowire.Number = 13 // GraphProto.value_info
	valueInfoType   protowire.Number = 2  // ValueInfoProto.type
	typeTensor      protowire.Number = 1  // TypeProto.tensor_type
	tensorTypeShape protowire.Number = 2  // TypeProto.Tensor.shape
	shapeDim        protowire.Number = 1  // TensorShapeProto.dim
	dimensionParam  protowire.Number = 2  // TensorShapeProto.Dimension.dim_param
)

// errProtobuf marks a model file whose bytes are not the protobuf FreeDims expects.
var errProtobuf = errors.New("not an ONNX protobuf")

// FreeDims returns a copy of an ONNX model whose graph inputs and outputs declare the
// dimensions at the given indices free (named "free<i>") instead of the fixed sizes the file
// states, and which carries no intermediate shapes (value_info; onnxruntime infers them again).
// A fully convolutional graph exported with a fixed input size (RetinaFace's 640×640) then runs
// at any size: onnxruntime refuses an input whose dimensions differ from the declared ones, but
// the operators themselves do not depend on them. The caller must know that the graph is such
// a graph; a reshape to fixed sizes inside it fails at Run, with onnxruntime's message.
func FreeDims(model []byte, dims ...int) ([]byte, error) {
	free := func(_ protowire.Number, shape []byte) ([]byte, error) {
		index := -1
		return rewriteFields(shape, is(shapeDim), func(_ protowire.Number, dim []byte) ([]byte, error) {
			index++
			if !slices.Contains(dims, index) {
				return dim, nil
			}
			out := protowire.AppendTag(nil, dimensionParam, protowire.BytesType)
			return protowire.AppendString(out, fmt.Sprintf("free%d", index)), nil
		})
	}
	valueInfo := func(num protowire.Number, vi []byte) ([]byte, error) {
		if num == graphValueInfo {
			return nil, nil // an intermediate shape, wrong once the input is freed
		}
		return rewriteFields(vi, is(valueInfoType), func(_ protowire.Number, typ []byte) ([]byte, error) {
			return rewriteFields(typ, is(typeTensor), func(_ protowire.Number, tensor []byte) ([]byte, error) {
				return rewriteFields(tensor, is(tensorTypeShape), free)
			})
		})
	}
	out, err := rewriteFields(model, is(modelGraph), func(_ protowire.Number, graph []byte) ([]byte, error) {
		return rewriteFields(graph, func(n protowire.Number) bool {
			return n == graphInput || n == graphOutput || n == graphValueInfo
		}, valueInfo)
	})
	if err != nil {
		return nil, fmt.Errorf("onnx: freeing dimensions %v: %w", dims, err)
	}
	return out, nil
}

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
