package onnx

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// More fields of onnx.proto, for Prune.
const (
	graphNode        protowire.Number = 1 // GraphProto.node
	graphInitializer protowire.Number = 5 // GraphProto.initializer
	nodeInput        protowire.Number = 1 // NodeProto.input
	nodeOutput       protowire.Number = 2 // NodeProto.output
	nodeOpType       protowire.Number = 4 // NodeProto.op_type
	valueInfoName    protowire.Number = 1 // ValueInfoProto.name
	tensorName       protowire.Number = 8 // TensorProto.name
)

// Prune returns a copy of an ONNX model that computes only the named graph outputs: the other
// outputs, the nodes that only they need and the weights of those nodes are dropped.
// onnxruntime runs every node of a graph whatever outputs a Run asks for, so a model with a
// second head (the clothing backbone's 1024-channel branch) costs its work on every
// inference. A graph with control flow (If, Loop, Scan: their subgraphs name values of the
// outer graph) is returned as it is.
func Prune(model []byte, keep []string) ([]byte, error) {
	out, err := rewriteFields(model, is(modelGraph), func(_ protowire.Number, graph []byte) ([]byte, error) {
		return pruneGraph(graph, keep)
	})
	if err != nil {
		return nil, fmt.Errorf("onnx: pruning to outputs %v: %w", keep, err)
	}
	return out, nil
}

type protoNode struct {
	inputs, outputs []string
	opType          string
}

func pruneGraph(graph []byte, keep []string) ([]byte, error) {
	var nodes []protoNode
	if _, err := rewriteFields(graph, is(graphNode), func(_ protowire.Number, node []byte) ([]byte, error) {
		n, err := parseNode(node)
		nodes = append(nodes, n)
		return node, err
	}); err != nil {
		return nil, err
	}
	initializers := map[string]bool{}
	if _, err := rewriteFields(graph, is(graphInitializer), func(_ protowire.Number, t []byte) ([]byte, error) {
		initializers[fieldString(t, tensorName)] = true
		return t, nil
	}); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.opType == "If" || n.opType == "Loop" || n.opType == "Scan" {
			return graph, nil
		}
	}
	// Walk back from the kept outputs: nodes are topologically sorted in a valid model, but a
	// fixed point does not rely on it.
	needed := make(map[string]bool, len(keep))
	for _, k := range keep {
		needed[k] = true
	}
	used := make([]bool, len(nodes))
	for changed := true; changed; {
		changed = false
		for i := len(nodes) - 1; i >= 0; i-- {
			if used[i] || !slices.ContainsFunc(nodes[i].outputs, func(o string) bool { return needed[o] }) {
				continue
			}
			used[i], changed = true, true
			for _, in := range nodes[i].inputs {
				needed[in] = true
			}
		}
	}
	index := -1
	return rewriteFields(graph, func(num protowire.Number) bool {
		return num == graphNode || num == graphInput || num == graphOutput || num == graphInitializer
	}, func(num protowire.Number, v []byte) ([]byte, error) {
		switch num {
		case graphInput: // older files list their weights among the inputs too
			if name := fieldString(v, valueInfoName); initializers[name] && !needed[name] {
				return nil, nil
			}
			return v, nil
		case graphNode:
			index++
			if !used[index] {
				return nil, nil
			}
			return v, nil
		case graphOutput:
			if !slices.Contains(keep, fieldString(v, valueInfoName)) {
				return nil, nil
			}
			return v, nil
		default:
			if !needed[fieldString(v, tensorName)] {
				return nil, nil
			}
			return v, nil
		}
	})
}

// fieldString returns the first string field numbered num of a protobuf message ("" if none).
func fieldString(msg []byte, num protowire.Number) string {
	var s string
	found := false
	rewriteFields(msg, is(num), func(_ protowire.Number, v []byte) ([]byte, error) {
		if !found {
			s, found = string(v), true
		}
		return v, nil
	})
	return s
}
