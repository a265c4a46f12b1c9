package main

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/personcluster/personcluster/stages/clusterer"
	"github.com/personcluster/personcluster/stages/evaluate"
)

// parts are one video's faces, split back into their face and clothing vectors.
type parts struct {
	faces    clusterer.Faces
	boxes    []evaluate.Box
	frameNos []int64
	faceDim  int
	model    string // face model
	cloth    string // clothing model
}

// loadParts reads a fingerprints file written with weights 1 and 1, whose points are
// [face/‖face‖, cloth/‖cloth‖].
func loadParts(path string) (*parts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ablation: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("ablation: %s: %w", path, err)
	}
	var fp clusterer.FingerprintFile
	if err := json.NewDecoder(zr).Decode(&fp); err != nil {
		return nil, fmt.Errorf("ablation: %s: %w", path, err)
	}
	if fp.FaceWeight != 1 || fp.ClothWeight != 1 {
		return nil, fmt.Errorf("ablation: %s was written with part weights %v/%v, need 1/1", path, fp.FaceWeight, fp.ClothWeight)
	}
	p := &parts{}
	k, err := commonSplit(fp.Points)
	if err != nil {
		return nil, fmt.Errorf("ablation: %s: %w", path, err)
	}
	p.faceDim, p.model, p.cloth = k, fp.FaceModel, fp.ClothModel
	for i, pt := range fp.Points {
		p.faces.Face = append(p.faces.Face, toF32(pt[:k]))
		p.faces.Cloth = append(p.faces.Cloth, toF32(pt[k:]))
		m := fp.Members[i]
		p.faces.Frame = append(p.faces.Frame, m.Seq)
		p.faces.Box = append(p.faces.Box, m.Box)
		p.frameNos = append(p.frameNos, m.Frame)
		p.boxes = append(p.boxes, evaluate.Box{m.Box[0], m.Box[1], m.Box[2], m.Box[3]})
	}
	return p, nil
}

// commonSplit finds the length of the face part: the k at which every point splits into two
// unit vectors.
func commonSplit(points [][]float64) (int, error) {
	if len(points) == 0 {
		return 0, errors.New("no points")
	}
	for k := 1; k < len(points[0]); k++ {
		ok := true
		for _, pt := range points {
			if len(pt) != len(points[0]) || !unitAt(pt, k) {
				ok = false
				break
			}
		}
		if ok {
			return k, nil
		}
	}
	return 0, errors.New("the points are not pairs of unit vectors")
}

func unitAt(pt []float64, k int) bool {
	var a, b float64
	for _, x := range pt[:k] {
		a += x * x
	}
	for _, x := range pt[k:] {
		b += x * x
	}
	return math.Abs(a-1) < 1e-4 && math.Abs(b-1) < 1e-4
}

func toF32(xs []float64) []float32 {
	out := make([]float32, len(xs))
	for i, x := range xs {
		out[i] = float32(x)
	}
	return out
}

// score clusters the faces under s and returns the evaluation against truth.
func (p *parts) score(truth *evaluate.Truth, s clusterer.Scheme) (*evaluate.Report, int, error) {
	kept, _, _, err := clusterer.ClusterFaces(p.faces, s)
	if err != nil {
		return nil, 0, err
	}
	label := make([]int, len(p.boxes))
	for i := range label {
		label[i] = evaluate.Dropped
	}
	for c, members := range kept {
		for _, i := range members {
			label[i] = c
		}
	}
	faces := make([]evaluate.Face, len(p.boxes))
	for i := range faces {
		faces[i] = evaluate.Face{Frame: p.frameNos[i], Box: p.boxes[i], Cluster: label[i]}
	}
	r, err := evaluate.Evaluate(truth, faces, evaluate.Options{})
	return r, len(kept), err
}
