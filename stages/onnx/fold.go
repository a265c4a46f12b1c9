package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// InputAffine is the (x − Sub)·Mul that a model's graph applied to its input first, taken out
// of the graph for the caller to apply while it builds the input: one value for every channel
// or one per channel of an NCHW input. The zero InputAffine is the identity.
type InputAffine struct{ Sub, Mul []float32 }

// Channel returns channel c's subtrahend and factor.
func (a InputAffine) Channel(c int) (sub, mul float32) {
	sub, mul = 0, 1
	if len(a.Sub) == 1 {
		sub = a.Sub[0]
	} else if c < len(a.Sub) {
		sub = a.Sub[c]
	}
	if len(a.Mul) == 1 {
		mul = a.Mul[0]
	} else if c < len(a.Mul) {
		mul = a.Mul[c]
	}
	return sub, mul
}

// Apply returns v − sub then times mul in float32, as onnxruntime's Sub and Mul compute it.
func (a InputAffine) Apply(c int, v float32) float32 {
	sub, mul := a.Channel(c)
	return (v - sub) * mul
}

// FoldInputAffine returns a copy of an ONNX model without the Sub and Mul by constants that its
// input goes through first (RetinaFace's mean and scale, dlib's channel means and 1/256), and
// those constants. onnxruntime spends a pass over the whole input on each (0.5 ms of
// RetinaFace's 14 on a 640×384 input) that costs nothing where the caller converts bytes to
// floats through a lookup table anyway. A graph that does not begin so is returned as it is,
// with the identity.
func FoldInputAffine(model []byte, input string) ([]byte, InputAffine, error) {
	var affine InputAffine
	out, err := rewriteFields(model, is(modelGraph), func(_ protowire.Number, graph []byte) ([]byte, error) {
		g, a, err := foldGraph(graph, input)
		affine = a
		return g, err
	})
	if err != nil {
		return nil, InputAffine{}, fmt.Errorf("onnx: folding the input's normalisation: %w", err)
	}
	return out, affine, nil
}

func foldGraph(graph []byte, input string) ([]byte, InputAffine, error) {
	g, err := parseGraph(graph)
	if err != nil {
		return nil, InputAffine{}, err
	}
	if g.hasSubgraphs() {
		return graph, InputAffine{}, nil
	}
	nodes, tensors, outputs := g.nodes, g.initializers, g.outputs
	consumers := func(name string) []int {
		var idx []int
		for i, n := range nodes {
			if slices.Contains(n.inputs, name) {
				idx = append(idx, i)
			}
		}
		return idx
	}
	// constOperand returns the constant of a binary node whose other operand is x.
	constOperand := func(n protoNode, x string, order bool) ([]float32, bool) {
		if len(n.inputs) != 2 || len(n.outputs) != 1 || slices.Contains(outputs, n.outputs[0]) {
			return nil, false
		}
		other := n.inputs[1]
		switch {
		case n.inputs[0] == x:
		case !order && n.inputs[1] == x:
			other = n.inputs[0]
		default:
			return nil, false
		}
		t, ok := tensors[other]
		if !ok {
			return nil, false
		}
		vals, ok := channelConstant(t)
		return vals, ok
	}
	first := consumers(input)
	if len(first) != 1 || nodes[first[0]].opType != "Sub" {
		return graph, InputAffine{}, nil
	}
	sub, ok := constOperand(nodes[first[0]], input, true)
	if !ok {
		return graph, InputAffine{}, nil
	}
	second := consumers(nodes[first[0]].outputs[0])
	if len(second) != 1 || nodes[second[0]].opType != "Mul" {
		return graph, InputAffine{}, nil
	}
	mul, ok := constOperand(nodes[second[0]], nodes[first[0]].outputs[0], false)
	if !ok {
		return graph, InputAffine{}, nil
	}
	folded := nodes[second[0]].outputs[0]
	index := -1
	out, err := rewriteFields(graph, is(graphNode), func(_ protowire.Number, node []byte) ([]byte, error) {
		index++
		if index == first[0] || index == second[0] {
			return nil, nil
		}
		return rewriteFields(node, is(nodeInput), func(_ protowire.Number, name []byte) ([]byte, error) {
			if string(name) == folded {
				return []byte(input), nil
			}
			return name, nil
		})
	})
	return out, InputAffine{Sub: sub, Mul: mul}, err
}

// channelConstant reads a float tensor that broadcasts over an NCHW input by channel: one
// value (any shape of one element), or C values shaped [C,1,1] or [1,C,1,1].
func channelConstant(t []byte) ([]float32, bool) {
	var dims []int64
	var vals []float32
	dataType := 0
	for len(t) > 0 {
		num, typ, n := protowire.ConsumeTag(t)
		if n < 0 {
			return nil, false
		}
		t = t[n:]
		switch {
		case num == tensorDims && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(t)
			if m < 0 {
				return nil, false
			}
			dims, t = append(dims, int64(v)), t[m:]
			continue
		case num == tensorDims && typ == protowire.BytesType:
			b, m := protowire.ConsumeBytes(t)
			if m < 0 {
				return nil, false
			}
			for len(b) > 0 {
				v, k := protowire.ConsumeVarint(b)
				if k < 0 {
					return nil, false
				}
				dims, b = append(dims, int64(v)), b[k:]
			}
			t = t[m:]
			continue
		case num == tensorDataType && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(t)
			if m < 0 {
				return nil, false
			}
			dataType, t = int(v), t[m:]
			continue
		case (num == tensorFloatData || num == tensorRawData) && typ == protowire.BytesType:
			b, m := protowire.ConsumeBytes(t)
			if m < 0 || len(b)%4 != 0 {
				return nil, false
			}
			for i := 0; i < len(b); i += 4 {
				vals = append(vals, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
			}
			t = t[m:]
			continue
		case num == tensorFloatData && typ == protowire.Fixed32Type:
			v, m := protowire.ConsumeFixed32(t)
			if m < 0 {
				return nil, false
			}
			vals, t = append(vals, math.Float32frombits(v)), t[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, t)
		if m < 0 {
			return nil, false
		}
		t = t[m:]
	}
	count := int64(1)
	for _, d := range dims {
		count *= d
	}
	if dataType != tensorFloat || int64(len(vals)) != count || count == 0 {
		return nil, false
	}
	if count == 1 {
		return vals, true
	}
	shape := dims
	for len(shape) > 3 && shape[0] == 1 {
		shape = shape[1:]
	}
	if len(shape) != 3 || shape[1] != 1 || shape[2] != 1 {
		return nil, false
	}
	return vals, true
}
