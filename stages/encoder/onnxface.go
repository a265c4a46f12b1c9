package encoder

import (
	"errors"
	"fmt"
	"log/slog"
	"math"

	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/vision"
)

// FaceEncoder turns a face crop (with the face's box inside it) into a descriptor.
// Implementations: dlibface.ResNetONNX (the default), dlibface.Encoder (the original's dlib path)
// and ONNXEncoder (MobileFaceNet).
type FaceEncoder interface {
	Encode(crop gocv.Mat, box messages.Box) ([]float32, error)
	Name() string
	Close() error
}

// Face is one face to encode: a BGR crop and the face's box inside it.
type Face struct {
	Crop gocv.Mat
	Box  messages.Box
}

// BatchEncoder is a FaceEncoder that describes several faces (of several frames) in one call.
// The stage uses it when the encoder has it; it returns one descriptor per face, in order.
type BatchEncoder interface {
	FaceEncoder
	EncodeBatch(faces []Face) ([][]float32, error)
}

// Template is the standard 112×112 five-point face template (ArcFace): eye centres, nose tip,
// mouth corners.
var Template = [5][2]float64{{38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366}, {41.5493, 92.3655}, {70.7299, 92.2041}}

// ONNXConfig configures the default face encoder.
type ONNXConfig struct {
	LandmarkPath string // fr_landmark.onnx: [N,1,64,64] grey /256 of the square face box → 68 points
	FeaturePath  string // fr_feature.onnx: [N,3,112,112] aligned RGB (p−127)/128 → 512-d
	Threads      int
	Device       onnx.Device  // cpu, cuda or auto (onnx.Device)
	Logger       *slog.Logger // hears a CUDA fallback
	// MaxBatch bounds the faces per inference for models with a dynamic batch dimension
	// (default 32). The shipped fr_* models are fixed to batch 1 and run one face per call.
	MaxBatch int
}

// ONNXEncoder is fr_landmark + a five-point similarity alignment + fr_feature.
type ONNXEncoder struct {
	landmark, feature *onnx.Session
	lmBatch, ftBatch  int // faces per inference: 1 for fixed-batch models
}

const (
	landmarkSide = 64
	alignedSide  = 112
	landmarkLen  = 136
	featureLen   = 512
)

// NewONNX loads both models, checking their input shapes: a missing or wrong file fails with
// a message naming it and the shape it must take.
func NewONNX(cfg ONNXConfig) (*ONNXEncoder, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 32
	}
	lm, lmBatch, err := openBatched(cfg.LandmarkPath, []int64{-1, 1, landmarkSide, landmarkSide}, cfg,
		"fr_landmark wants input \"input\" [1,1,64,64] (grey /256 of the square face box) and output \"output\" [1,136]")
	if err != nil {
		return nil, err
	}
	ft, ftBatch, err := openBatched(cfg.FeaturePath, []int64{-1, 3, alignedSide, alignedSide}, cfg,
		"fr_feature wants input \"input\" [1,3,112,112] (aligned RGB face, (p−127)/128) and output \"output\" [1,512]")
	if err != nil {
		lm.Close()
		return nil, err
	}
	return &ONNXEncoder{landmark: lm, feature: ft, lmBatch: lmBatch, ftBatch: ftBatch}, nil
}

// openBatched opens a model whose first input dimension is the batch, and returns how many
// faces one inference may take: 1 when the model fixes the batch to 1.
func openBatched(path string, shape []int64, cfg ONNXConfig, want string) (*onnx.Session, int, error) {
	sess, err := onnx.Open(onnx.Spec{Path: path, Input: "input", Shape: shape, Outputs: []string{"output"}},
		onnx.Options{Threads: cfg.Threads, Device: cfg.Device, Logger: cfg.Logger})
	if err != nil {
		return nil, 0, fmt.Errorf("encoder: %s: %w", want, err)
	}
	batch := 1
	if ins, _, err := ort.GetInputOutputInfo(path); err == nil && len(ins) > 0 && len(ins[0].Dimensions) > 0 && ins[0].Dimensions[0] < 0 {
		batch = cfg.MaxBatch
	} else if err == nil && len(ins) > 0 && len(ins[0].Dimensions) > 0 && ins[0].Dimensions[0] != 1 {
		sess.Close()
		return nil, 0, fmt.Errorf("encoder: %s: %w: %s has batch dimension %d", want, onnx.ErrModel, path, ins[0].Dimensions[0])
	}
	return sess, batch, nil
}

func (e *ONNXEncoder) Name() string { return "fr_feature-512" }

// landmarkSquare is the square the landmark model looks at: side = the box's height, centred
// on the box (as faceplugin's detector hands its boxes to fr_landmark).
func landmarkSquare(box messages.Box) vision.Region {
	side := box.Height()
	cy2, cx2 := box.Top()+box.Bottom(), box.Left()+box.Right() // twice the centre
	y1, x1 := (cy2-side)/2, (cx2-side)/2
	return vision.Region{Y1: y1, Y2: y1 + side, X1: x1, X2: x1 + side}
}

func appendLandmarkInput(dst []float32, crop gocv.Mat, sq vision.Region) ([]float32, error) {
	patch, err := vision.Crop(crop, sq)
	if err != nil {
		return dst, err
	}
	defer patch.Close()
	return vision.AppendBlob(dst, patch, vision.BlobOptions{Width: landmarkSide, Height: landmarkSide, Scale: 1.0 / 256, Grey: true,
		Interp: gocv.InterpolationLinear})
}

// Landmarks returns the 68 landmarks of the face at box inside crop, in crop pixels.
func (e *ONNXEncoder) Landmarks(crop gocv.Mat, box messages.Box) ([68][2]float64, error) {
	lms, err := e.landmarks([]Face{{crop, box}})
	if err != nil {
		return [68][2]float64{}, err
	}
	return lms[0], nil
}

func (e *ONNXEncoder) landmarks(faces []Face) ([][68][2]float64, error) {
	per := landmarkSide * landmarkSide
	blob := make([]float32, 0, len(faces)*per)
	squares := make([]vision.Region, len(faces))
	for i, f := range faces {
		if f.Box.Width() <= 0 || f.Box.Height() <= 0 {
			return nil, fmt.Errorf("encoder: empty face box %v", f.Box)
		}
		squares[i] = landmarkSquare(f.Box)
		var err error
		if blob, err = appendLandmarkInput(blob, f.Crop, squares[i]); err != nil {
			return nil, fmt.Errorf("encoder: landmark input: %w", err)
		}
	}
	outs, err := RunChunks(e.landmark, []int64{1, landmarkSide, landmarkSide}, e.lmBatch, blob, len(faces), landmarkLen)
	if err != nil {
		return nil, err
	}
	pts := make([][68][2]float64, len(faces))
	for i, o := range outs {
		side := float64(squares[i].Height())
		for j := range pts[i] {
			pts[i][j] = [2]float64{float64(squares[i].X1) + float64(o[2*j])*side, float64(squares[i].Y1) + float64(o[2*j+1])*side}
		}
	}
	return pts, nil
}

// RunChunks runs sess over n inputs of the given per-item shape, at most batch at a time, and
// returns each item's output (outLen values).
func RunChunks(sess *onnx.Session, item []int64, batch int, data []float32, n, outLen int) ([][]float32, error) {
	per := 1
	for _, d := range item {
		per *= int(d)
	}
	out := make([][]float32, 0, n)
	for start := 0; start < n; start += batch {
		k := min(batch, n-start)
		shape := append([]int64{int64(k)}, item...)
		outs, _, err := sess.Run(shape, data[start*per:(start+k)*per])
		if err != nil {
			return nil, fmt.Errorf("encoder: %w", err)
		}
		if len(outs[0]) != k*outLen {
			return nil, fmt.Errorf("encoder: %s returned %d values for %d faces, want %d each", sess.Spec().Path, len(outs[0]), k, outLen)
		}
		for i := 0; i < k; i++ {
			v := outs[0][i*outLen : (i+1)*outLen : (i+1)*outLen]
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return nil, fmt.Errorf("encoder: %s returned a non-finite value", sess.Spec().Path)
				}
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// FivePoints reduces 68 landmarks to the template's five as faceplugin does: each eye centre
// the mean of its four lid points (37,38,40,41 and 43,44,46,47), the nose tip (30), and each
// mouth corner the mean of its outer and inner corner points (48,60 and 54,64).
func FivePoints(lm [68][2]float64) [5][2]float64 {
	mean := func(idx ...int) [2]float64 {
		var s [2]float64
		for _, i := range idx {
			s[0] += lm[i][0]
			s[1] += lm[i][1]
		}
		n := float64(len(idx))
		return [2]float64{s[0] / n, s[1] / n}
	}
	return [5][2]float64{mean(37, 38, 40, 41), mean(43, 44, 46, 47), lm[30], mean(48, 60), mean(54, 64)}
}

// Encode aligns the face and returns its 512-d descriptor (not normalised).
func (e *ONNXEncoder) Encode(crop gocv.Mat, box messages.Box) ([]float32, error) {
	out, err := e.EncodeBatch([]Face{{crop, box}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// EncodeBatch describes several faces: landmarks for all, then the aligned faces for all,
// each model run on as many faces per inference as it accepts.
func (e *ONNXEncoder) EncodeBatch(faces []Face) ([][]float32, error) {
	if len(faces) == 0 {
		return nil, nil
	}
	lms, err := e.landmarks(faces)
	if err != nil {
		return nil, err
	}
	per := 3 * alignedSide * alignedSide
	blob := make([]float32, 0, len(faces)*per)
	for i, f := range faces {
		if blob, err = appendAligned(blob, f.Crop, lms[i]); err != nil {
			return nil, err
		}
	}
	return RunChunks(e.feature, []int64{3, alignedSide, alignedSide}, e.ftBatch, blob, len(faces), featureLen)
}

// appendAligned warps the face onto the 112×112 template and appends its RGB (p−127)/128 values.
func appendAligned(dst []float32, crop gocv.Mat, lm [68][2]float64) ([]float32, error) {
	m, err := Similarity(FivePoints(lm), Template)
	if err != nil {
		return dst, err
	}
	aligned, err := warp(crop, m, alignedSide, alignedSide)
	if err != nil {
		return dst, err
	}
	defer aligned.Close()
	return vision.AppendBlob(dst, aligned, vision.BlobOptions{Width: alignedSide, Height: alignedSide, Scale: 1.0 / 128, Mean: 127, RGB: true,
		Interp: gocv.InterpolationLinear})
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
	if !(den > 1e-9) || math.IsInf(den, 0) || math.IsNaN(num1+num2) {
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
