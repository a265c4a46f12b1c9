//go:build lean

package output

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
)

// DecodeThumbnail decodes the whole crop with Go's image/jpeg (the lean build links no OpenCV)
// and scales it.
func DecodeThumbnail(data []byte, w, h int) (*image.RGBA, error) {
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
	return thumbnail(img, w, h), nil
}
