package output

import (
	"errors"
	"fmt"
)

// MaxThumbnailSide bounds the side of a crop decoded for a montage: its header is read first,
// so a decompression bomb (a few bytes declaring 60000×60000) is never allocated.
const MaxThumbnailSide = 4096

// ErrImageTooLarge is returned by DecodeThumbnail for a JPEG over MaxThumbnailSide.
var ErrImageTooLarge = errors.New("output: image too large")

// checkThumbnailSize refuses a crop whose header declares more than MaxThumbnailSide a side.
// DecodeThumbnail (jpeg_opencv.go, or jpeg_lean.go in the lean build, which links no OpenCV)
// calls it before decoding a crop for a montage and scaling it to fit w×h as thumbnail does.
func checkThumbnailSize(width, height int) error {
	if width > MaxThumbnailSide || height > MaxThumbnailSide {
		return fmt.Errorf("%w: %dx%d, at most %d per side", ErrImageTooLarge, width, height, MaxThumbnailSide)
	}
	return nil
}
