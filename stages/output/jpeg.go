package output

import "errors"

// MaxThumbnailSide bounds the side of a crop decoded for a montage: its header is read first,
// so a decompression bomb (a few bytes declaring 60000×60000) is never allocated.
const MaxThumbnailSide = 4096

// ErrImageTooLarge is returned by DecodeThumbnail for a JPEG over MaxThumbnailSide.
// DecodeThumbnail (jpeg_opencv.go, or jpeg_lean.go in the lean build, which links no OpenCV)
// decodes a crop for a montage, after checking its declared size, and scales it to fit w×h as
// thumbnail does.
var ErrImageTooLarge = errors.New("output: image too large")
