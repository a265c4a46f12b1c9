package onnx

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
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

// protoGraph is what Prune and FoldInputAffine read of a GraphProto: its nodes in order, its
// initializers (TensorProto bytes) by name, and the names of its outputs.
type protoGraph struct {
	nodes        []protoNode
	initializers map[string][]byte
	outputs      []string
}

func parseGraph(graph []byte) (protoGraph, error) {
	g := protoGraph{initializers: map[string][]byte{}}
	err := eachField(graph, func(num protowire.Number, v []byte) error {
		switch num {
		case graphNode:
			n, err := parseNode(v)
			g.nodes = append(g.nodes, n)
			return err
		case graphInitializer:
			g.initializers[fieldString(v, tensorName)] = v
		case graphOutput:
			g.outputs = append(g.outputs, fieldString(v, valueInfoName))
		}
		return nil
	})
	return g, err
}

func parseNode(node []byte) (protoNode, error) {
	var n protoNode
	err := eachField(node, func(num protowire.Number, v []byte) error {
		switch num {
		case nodeInput:
			n.inputs = append(n.inputs, string(v))
		case nodeOutput:
			n.outputs = append(n.outputs, string(v))
		case nodeOpType:
			n.opType = string(v)
		}
		return nil
	})
	return n, err
}

// hasSubgraphs tells whether a node carries subgraphs (If, Loop, Scan), which may name values of
// the outer graph: rewriting such a graph by its node inputs alone would be wrong.
func (g protoGraph) hasSubgraphs() bool {
	return slices.ContainsFunc(g.nodes, func(n protoNode) bool {
		return n.opType == "If" || n.opType == "Loop" || n.opType == "Scan"
	})
}

func pruneGraph(graph []byte, keep []string) ([]byte, error) {
	g, err := parseGraph(graph)
	if err != nil {
		return nil, err
	}
	if g.hasSubgraphs() {
		return graph, nil
	}
	nodes := g.nodes
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
			name := fieldString(v, valueInfoName)
			if _, weight := g.initializers[name]; weight && !needed[name] {
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
