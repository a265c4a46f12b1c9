package embedder_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// A hand-rolled ONNX protobuf writer for tiny test models: one Identity node from "input" to
// "features", float32, with the given shape (a dimension < 0 is the dynamic "N"). With pool the
// stage averages its output per channel, so the vector of a crop is its preprocessed image's
// channel means, which the tests compute independently.

func pbVarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func pbTag(b []byte, field, wire int) []byte { return pbVarint(b, uint64(field<<3|wire)) }

func pbInt(b []byte, field int, v int64) []byte { return pbVarint(pbTag(b, field, 0), uint64(v)) }

func pbBytes(b []byte, field int, v []byte) []byte {
	return append(pbVarint(pbTag(b, field, 2), uint64(len(v))), v...)
}

func pbString(b []byte, field int, s string) []byte { return pbBytes(b, field, []byte(s)) }

func valueInfo(name string, shape []int64) []byte {
	var dims []byte
	for _, d := range shape {
		var dim []byte
		if d < 0 {
			dim = pbString(dim, 2, "N") // dim_param
		} else {
			dim = pbInt(dim, 1, d) // dim_value
		}
		dims = pbBytes(dims, 1, dim)
	}
	tensor := pbInt(nil, 1, 1) // elem_type FLOAT
	tensor = pbBytes(tensor, 2, dims)
	typ := pbBytes(nil, 1, tensor) // TypeProto.tensor_type
	vi := pbString(nil, 1, name)
	return pbBytes(vi, 2, typ)
}

func identityModel(shape []int64) []byte {
	node := pbString(nil, 1, "input")
	node = pbString(node, 2, "features")
	node = pbString(node, 3, "identity")
	node = pbString(node, 4, "Identity")
	graph := pbBytes(nil, 1, node)
	graph = pbString(graph, 2, "tiny")
	graph = pbBytes(graph, 11, valueInfo("input", shape))
	graph = pbBytes(graph, 12, valueInfo("features", shape))
	model := pbInt(nil, 1, 8) // ir_version
	model = pbString(model, 2, "personcluster-test")
	model = pbBytes(model, 7, graph)
	opset := pbString(nil, 1, "")
	opset = pbInt(opset, 2, 13)
	return pbBytes(model, 8, opset)
}

// writeIdentityModel writes the model into a temporary folder and returns its path.
func writeIdentityModel(t testing.TB, shape []int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "identity.onnx")
	if err := os.WriteFile(p, identityModel(shape), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
