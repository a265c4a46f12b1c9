package encoder

import (
	"errors"
	"fmt"
	"math"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/vision"
)

// FaceEncoder turns a face crop (with the face's box inside it) into a descriptor.
type FaceEncoder interface {
	Encode(crop gocv.Mat, box messages.Box) ([]float32, error)
	Name() string
	Close() error
}

// Template is the standard 112×112 five-point face template (ArcFace): eye centres, nose tip,
// mouth corners.
var Template = [5][2]float64{{38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366}, {41.5493, 92.3655}, {70.7299, 92.2041}}

// ONNXConfig configures the default face encoder.
type ONNXConfig struct {
	LandmarkPath string // fr_landmark.onnx: 64×64 grey square face box → 68 points
	FeaturePath  string // fr_feature.onnx: 112×112 aligned RGB face → 512-d
	Threads      int
}

// ONNXEncoder is fr_landmark + a five-point similarity alignment + fr_feature.
type ONNXEncoder struct {
	landmark, feature *onnx.Session
}

// NewONNX loads both models.
func NewONNX(cfg ONNXConfig) (*ONNXEncoder, error) {
	lm, err := onnx.Open(onnx.Spec{Path: cfg.LandmarkPath, Input: "input", Shape: []int64{1, 1, 64, 64}, Outputs: []string{"output"}},
		onnx.Options{Threads: cfg.Threads})
	if err != nil {
		return nil, fmt.Errorf("encoder: %w", err)
	}
	ft, err := onnx.Open(onnx.Spec{Path: cfg.FeaturePath, Input: "input", Shape: []int64{1, 3, 112, 112}, Outputs: []string{"output"}},
		onnx.Options{Threads: cfg.Threads})
	if err != nil {
		lm.Close()
		return nil, fmt.Errorf("encoder: %w", err)
	}
	return &ONNXEncoder{landmark: lm, feature: ft}, nil
}

func (e *ONNXEncoder) Name() string { return "fr_feature-512" }

// Landmarks returns the 68 landmarks of the face at box inside crop, in crop pixels.
func (e *ONNXEncoder) Landmarks(crop gocv.Mat, box messages.Box) ([68][2]float64, error) {
	var pts [68][2]float64
	// The landmark model sees the square around the face box.
	side := max(box.Width(), box.Height())
	cy, cx := (box.Top()+box.Bottom())/2, (box.Left()+box.Right())/2
	sq := vision.Region{Y1: cy - side/2, Y2: cy - side/2 + side, X1: cx - side/2, X2: cx - side/2 + side}
	patch, err := vision.Crop(crop, sq)
	if err != nil {
		return pts, err
	}
	defer patch.Close()
	blob, err := vision.AppendBlob(nil, patch, vision.BlobOptions{Width: 64, Height: 64, Scale: 1.0 / 256, Grey: true, Interp: gocv.InterpolationLinear})
	if err != nil {
		return pts, err
	}
	outs, _, err := e.landmark.Run([]int64{1, 1, 64, 64}, blob)
	if err != nil {
		return pts, err
	}
	if len(outs[0]) != 136 {
		return pts, fmt.Errorf("encoder: landmark model returned %d values, want 136", len(outs[0]))
	}
	for i := range pts {
		pts[i] = [2]float64{float64(sq.X1) + float64(outs[0][2*i])*float64(side), float64(sq.Y1) + float64(outs[0][2*i+1])*float64(side)}
	}
	return pts, nil
}

// FivePoints reduces 68 landmarks to the template's five: eye centres, nose tip, mouth corners.
func FivePoints(lm [68][2]float64) [5][2]float64 {
	mean := func(from, to int) [2]float64 {
		var s [2]float64
		for i := from; i <= to; i++ {
			s[0] += lm[i][0]
			s[1] += lm[i][1]
		}
		n := float64(to - from + 1)
		return [2]float64{s[0] / n, s[1] / n}
	}
	return [5][2]float64{mean(36, 41), mean(42, 47), lm[30], lm[48], lm[54]}
}

// Encode aligns the face and returns its 512-d descriptor.
func (e *ONNXEncoder) Encode(crop gocv.Mat, box messages.Box) ([]float32, error) {
	lm, err := e.Landmarks(crop, box)
	if err != nil {
		return nil, err
	}
	m, err := Similarity(FivePoints(lm), Template)
	if err != nil {
		return nil, err
	}
	aligned, err := warp(crop, m, 112, 112)
	if err != nil {
		return nil, err
	}
	defer aligned.Close()
	blob, err := vision.AppendBlob(nil, aligned, vision.BlobOptions{Width: 112, Height: 112, Scale: 1.0 / 128, Mean: 127, RGB: true, Interp: gocv.InterpolationLinear})
	if err != nil {
		return nil, err
	}
	outs, _, err := e.feature.Run([]int64{1, 3, 112, 112}, blob)
	if err != nil {
		return nil, err
	}
	if len(outs[0]) != 512 {
		return nil, fmt.Errorf("encoder: feature model returned %d values, want 512", len(outs[0]))
	}
	return outs[0], nil
}

func warp(src gocv.Mat, m [2][3]float64, w, h int) (gocv.Mat, error) {
	mat := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer mat.Close()
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			mat.SetDoubleAt(r, c, m[r][c])
		}
	}
	dst := gocv.NewMat()
	gocv.WarpAffineWithParams(src, &dst, mat, imagePt(w, h), gocv.InterpolationLinear, gocv.BorderConstant, blackRGBA)
	if dst.Empty() {
		dst.Close()
		return gocv.Mat{}, errors.New("encoder: alignment produced an empty image")
	}
	return dst, nil
}

// Similarity is the least-squares similarity transform (rotation, uniform scale, translation)
// taking src onto dst (Umeyama's method without reflection), as a 2×3 affine matrix.
func Similarity(src, dst [5][2]float64) ([2][3]float64, error) {
	var ms, md [2]float64
	for i := range src {
		ms[0] += src[i][0] / 5
		ms[1] += src[i][1] / 5
		md[0] += dst[i][0] / 5
		md[1] += dst[i][1] / 5
	}
	// For 2-D similarity the solution has the closed form a = Σ(s·d)/Σ|s|², b = Σ(s×d)/Σ|s|²
	// over centred points, with the matrix [[a, −b], [b, a]].
	var num1, num2, den float64
	for i := range src {
		sx, sy := src[i][0]-ms[0], src[i][1]-ms[1]
		dx, dy := dst[i][0]-md[0], dst[i][1]-md[1]
		num1 += sx*dx + sy*dy
		num2 += sx*dy - sy*dx
		den += sx*sx + sy*sy
	}
	if den < 1e-9 || math.IsNaN(den) {
		return [2][3]float64{}, errors.New("encoder: degenerate landmarks")
	}
	a, b := num1/den, num2/den
	tx := md[0] - (a*ms[0] - b*ms[1])
	ty := md[1] - (b*ms[0] + a*ms[1])
	return [2][3]float64{{a, -b, tx}, {b, a, ty}}, nil
}

// Close frees both sessions; safe to call twice.
func (e *ONNXEncoder) Close() error {
	return errors.Join(e.landmark.Close(), e.feature.Close())
}
