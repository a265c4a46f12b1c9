//go:build !lean

package output

import (
	"fmt"
	"image"

	"github.com/personcluster/personcluster/stages/vision"
)

// DecodeThumbnail decodes a crop for a montage and scales it to fit w×h. It decodes at the
// smallest of libjpeg's reduced sizes (1/2, 1/4, 1/8: scaled in the DCT, a fraction of a whole
// decode) that is still at least the thumbnail's size: decoding the crops was most of a
// montage's time (0.33 CPU-s of the pipeline's 19 on cast_public with Go's image/jpeg at full
// size).
func DecodeThumbnail(data []byte, w, h int) (*image.RGBA, error) {
	width, height, err := vision.JPEGSize(data)
	if err != nil {
		return nil, fmt.Errorf("output: reading a JPEG header: %w", err)
	}
	if err := checkThumbnailSize(width, height); err != nil {
		return nil, err
	}
	tw, th, scale := fit(width, height, w, h)
	factor := 1
	for factor < 8 && width/(2*factor) >= tw && height/(2*factor) >= th {
		factor *= 2
	}
	img, err := vision.DecodeJPEGReduced(data, MaxThumbnailSide, factor)
	if err != nil {
		return nil, fmt.Errorf("output: decoding a JPEG: %w", err)
	}
	defer img.Close()
	rw, rh := img.Cols(), img.Rows()
	bgr, err := img.DataPtrUint8()
	if err != nil || img.Channels() != 3 || len(bgr) < 3*rw*rh {
		return nil, fmt.Errorf("output: decoding a JPEG: %d×%d×%d pixels, want BGR: %v", rw, rh, img.Channels(), err)
	}
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	xs := make([]int, tw)
	for x := range xs {
		xs[x] = min(rw-1, int(float64(x)/scale)/factor)
	}
	for y := 0; y < th; y++ {
		src := bgr[3*rw*min(rh-1, int(float64(y)/scale)/factor):]
		row := dst.Pix[y*dst.Stride : y*dst.Stride+4*tw]
		for x, sx := range xs {
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = src[3*sx+2], src[3*sx+1], src[3*sx], 255
		}
	}
	return dst, nil
}
