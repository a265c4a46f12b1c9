package onnx

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

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
