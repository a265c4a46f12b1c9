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
	if err := checkThumbnailSize(cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("output: decoding a JPEG: %w", err)
	}
	return thumbnail(img, w, h), nil
}
