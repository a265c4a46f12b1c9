package output

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
)

// MaxThumbnailSide bounds the side of a crop decoded for a montage: its header is read first,
// so a decompression bomb (a few bytes declaring 60000×60000) is never allocated.
const MaxThumbnailSide = 4096

// ErrImageTooLarge is returned by DecodeJPEG for a JPEG over MaxThumbnailSide.
var ErrImageTooLarge = errors.New("output: image too large")

// DecodeJPEG decodes a crop for a montage after checking its declared size.
func DecodeJPEG(data []byte) (image.Image, error) {
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("output: reading a JPEG header: %w", err)
	}
	if cfg.Width > MaxThumbnailSide || cfg.Height > MaxThumbnailSide {
		return nil, fmt.Errorf("%w: %dx%d, at most %d per side", ErrImageTooLarge, cfg.Width, cfg.Height, MaxThumbnailSide)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("output: decoding a JPEG: %w", err)
	}
	return img, nil
}
