// Package vision wraps OpenCV (gocv v0.31) for personcluster: bounded JPEG decoding and
// encoding, the original's padded crops, model input blobs, and video sources. Every function
// that returns a gocv.Mat hands ownership to the caller, who must Close it.
package vision

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"

	"gocv.io/x/gocv"
)

// Sentinel errors, matched with errors.Is.
var (
	ErrNotJPEG  = errors.New("vision: not a JPEG image")
	ErrTooLarge = errors.New("vision: image too large")
	ErrDecode   = errors.New("vision: cannot decode image")
	ErrEmpty    = errors.New("vision: empty image")
)

// JPEGSize reads a JPEG's width and height from its frame header without decoding it, so a
// decompression bomb (a tiny file declaring 60000×60000) is refused before any allocation.
func JPEGSize(data []byte) (width, height int, err error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return 0, 0, ErrNotJPEG
	}
	i := 2
	for i+4 <= len(data) {
		if data[i] != 0xFF {
			return 0, 0, fmt.Errorf("%w: bad marker at byte %d", ErrNotJPEG, i)
		}
		marker := data[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7) {
			i += 2
			continue
		}
		length := int(binary.BigEndian.Uint16(data[i+2:]))
		if length < 2 {
			return 0, 0, fmt.Errorf("%w: bad segment length", ErrNotJPEG)
		}
		// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
		if marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC {
			if i+9 > len(data) {
				break
			}
			height = int(binary.BigEndian.Uint16(data[i+5:]))
			width = int(binary.BigEndian.Uint16(data[i+7:]))
			if width == 0 || height == 0 {
				return 0, 0, fmt.Errorf("%w: frame header declares %dx%d", ErrNotJPEG, width, height)
			}
			return width, height, nil
		}
		if marker == 0xDA || marker == 0xD9 {
			break
		}
		i += 2 + length
	}
	return 0, 0, fmt.Errorf("%w: no frame header", ErrNotJPEG)
}

// DecodeJPEG decodes a JPEG into an 8-bit BGR image after checking its declared size against
// maxSide. It gives OpenCV's imdecode pixels, decoded directly with libjpeg-turbo (several times
// faster); a JPEG that libjpeg reports as corrupt or truncated is refused with ErrDecode.
func DecodeJPEG(data []byte, maxSide int) (gocv.Mat, error) {
	return DecodeJPEGReduced(data, maxSide, 1)
}

// DecodeJPEGReduced decodes a colour JPEG at 1/factor of its size (factor 1, 2, 4 or 8), using
// libjpeg's DCT-domain scaling: a half-size decode costs about a third of a full one. The
// result is ceil(width/factor)×ceil(height/factor).
func DecodeJPEGReduced(data []byte, maxSide, factor int) (gocv.Mat, error) {
	flag := map[int]gocv.IMReadFlag{1: gocv.IMReadColor, 2: gocv.IMReadReducedColor2, 4: gocv.IMReadReducedColor4, 8: gocv.IMReadReducedColor8}
	f, ok := flag[factor]
	if !ok {
		return gocv.Mat{}, fmt.Errorf("vision: reduction factor %d (1, 2, 4 or 8)", factor)
	}
	w, h, err := JPEGSize(data)
	if err != nil {
		return gocv.Mat{}, err
	}
	if w > maxSide || h > maxSide {
		return gocv.Mat{}, fmt.Errorf("%w: %dx%d, at most %d per side", ErrTooLarge, w, h, maxSide)
	}
	if factor == 1 {
		if m, ok, err := decodeDirect(data, w, h); ok {
			return m, err
		}
	}
	m, err := gocv.IMDecode(data, f)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if m.Empty() {
		m.Close()
		return gocv.Mat{}, fmt.Errorf("%w: %d bytes (corrupt or truncated JPEG)", ErrDecode, len(data))
	}
	return m, nil
}

// EncodeJPEG encodes img at quality (1..100): OpenCV's imencode bytes, written directly with
// libjpeg-turbo for 8-bit BGR images.
func EncodeJPEG(img gocv.Mat, quality int) ([]byte, error) {
	if img.Empty() {
		return nil, ErrEmpty
	}
	if data, ok, err := encodeDirect(img, quality); ok {
		return data, err
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, img, []int{gocv.IMWriteJpegQuality, quality})
	if err != nil {
		return nil, fmt.Errorf("vision: encoding JPEG: %w", err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}

// Crop cuts r out of img as the original did (see Place), padding with black where r runs past
// the frame. The result is always r.Height()×r.Width().
func Crop(img gocv.Mat, r Region) (gocv.Mat, error) {
	if r.Width() <= 0 || r.Height() <= 0 {
		return gocv.Mat{}, fmt.Errorf("vision: empty crop region %+v", r)
	}
	if img.Empty() {
		return gocv.Mat{}, ErrEmpty
	}
	p := Place(r, img.Cols(), img.Rows())
	if p.Empty() {
		return gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), r.Height(), r.Width(), img.Type()), nil
	}
	visible := img.Region(image.Rect(p.Visible.X1, p.Visible.Y1, p.Visible.X2, p.Visible.Y2))
	defer visible.Close()
	out := gocv.NewMat()
	// BorderIsolated: without it OpenCV fills the border of a region from the pixels around it
	// in the parent image (here the last row and column, which the original's clamp drops and
	// pads with black, as NumPy slicing does).
	gocv.CopyMakeBorder(visible, &out, p.Top, p.Bottom, p.Left, p.Right, gocv.BorderConstant|gocv.BorderIsolated, color.RGBA{})
	if out.Empty() {
		out.Close()
		return gocv.Mat{}, fmt.Errorf("vision: cropping %+v from a %dx%d image failed", r, img.Cols(), img.Rows())
	}
	return out, nil
}

// BlobOptions describe a model's input normalisation: value = (pixel − Mean)·Scale.
type BlobOptions struct {
	Width, Height int
	Scale         float64
	Mean          float64
	RGB           bool // swap OpenCV's BGR to RGB
	Grey          bool // single channel
	Interp        gocv.InterpolationFlags
	// Channel, where set, maps each value of plane c of the blob (after the RGB swap) once
	// more: a model's own input normalisation, taken out of its graph (onnx.InputAffine).
	Channel func(c int, v float32) float32
}

// AppendBlob resizes img (8-bit grey, BGR or BGRA) and appends its NCHW float32 values to dst:
// one plane per channel (BGR, RGB with o.RGB, one grey plane with o.Grey), (p − Mean)·Scale,
// then through o.Channel.
func AppendBlob(dst []float32, img gocv.Mat, o BlobOptions) ([]float32, error) {
	if img.Empty() {
		return dst, ErrEmpty
	}
	if o.Width <= 0 || o.Height <= 0 {
		return dst, fmt.Errorf("vision: blob size %dx%d", o.Width, o.Height)
	}
	resized := gocv.NewMat()
	defer resized.Close()
	gocv.Resize(img, &resized, image.Pt(o.Width, o.Height), 0, 0, o.Interp)
	src := resized
	conv := gocv.NewMat()
	defer conv.Close()
	switch ch := resized.Channels(); {
	case o.Grey && ch == 3:
		gocv.CvtColor(resized, &conv, gocv.ColorBGRToGray)
		src = conv
	case o.Grey && ch == 4:
		gocv.CvtColor(resized, &conv, gocv.ColorBGRAToGray)
		src = conv
	case !o.Grey && ch == 4:
		gocv.CvtColor(resized, &conv, gocv.ColorBGRAToBGR)
		src = conv
	}
	if src.Type() != gocv.MatTypeCV8UC1 && src.Type() != gocv.MatTypeCV8UC3 {
		return dst, fmt.Errorf("vision: blob from an image of type %v (want 8-bit grey, BGR or BGRA)", img.Type())
	}
	if !src.IsContinuous() {
		return dst, errors.New("vision: blob from a non-continuous image")
	}
	pix, err := src.DataPtrUint8()
	if err != nil {
		return dst, fmt.Errorf("vision: reading pixels: %w", err)
	}
	ch, n := src.Channels(), o.Width*o.Height
	if len(pix) < ch*n {
		return dst, fmt.Errorf("vision: %d pixel bytes for %dx%dx%d", len(pix), o.Width, o.Height, ch)
	}
	// Lookup tables, one per plane: every 8-bit value maps to one float, computed once.
	var luts [3][256]float32
	for c := range ch {
		for v := range luts[c] {
			luts[c][v] = float32((float64(v) - o.Mean) * o.Scale)
			if o.Channel != nil {
				luts[c][v] = o.Channel(c, luts[c][v])
			}
		}
	}
	start := len(dst)
	dst = append(dst, make([]float32, ch*n)...)
	out := dst[start:]
	if ch == 1 {
		for i, p := range pix[:n] {
			out[i] = luts[0][p]
		}
		return dst, nil
	}
	// Source channel k (BGR) goes to plane k, or 2−k with the RGB swap.
	p0, p1, p2 := out[:n], out[n:2*n], out[2*n:3*n]
	l0, l1, l2 := &luts[0], &luts[1], &luts[2]
	if o.RGB {
		p0, p2 = p2, p0
		l0, l2 = l2, l0
	}
	pix = pix[:3*n]
	for i := 0; i < n; i++ {
		px := pix[3*i : 3*i+3 : 3*i+3]
		p0[i], p1[i], p2[i] = l0[px[0]], l1[px[1]], l2[px[2]]
	}
	return dst, nil
}
