package output

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"
)

// bomb is a JFIF header declaring 60000×60000 pixels.
var bomb = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xEA, 0x60, 0x03,
	0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9}

func smallJPEG(t testing.TB) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 24, 16)), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeThumbnailBounded(t *testing.T) {
	img, err := DecodeThumbnail(smallJPEG(t), 96, 96)
	if err != nil || img.Bounds().Dx() != 96 || img.Bounds().Dy() != 64 {
		t.Fatalf("small JPEG: %v, %v", img.Bounds(), err)
	}
	if _, err := DecodeThumbnail(bomb, 96, 96); !errors.Is(err, ErrImageTooLarge) {
		t.Errorf("bomb: %v, want ErrImageTooLarge", err)
	}
	if _, err := DecodeThumbnail([]byte("not a jpeg"), 96, 96); err == nil || errors.Is(err, ErrImageTooLarge) || !strings.HasPrefix(err.Error(), "output: ") {
		t.Errorf("garbage: %v", err)
	}
}

// A thumbnail decoded at a reduced size is the size of the one scaled from the whole decode,
// and looks the same: on smooth content, a few levels of difference at most.
func TestDecodeThumbnailMatchesTheWholeDecode(t *testing.T) {
	for _, size := range [][2]int{{300, 250}, {97, 400}, {800, 760}, {50, 40}} {
		src := image.NewRGBA(image.Rect(0, 0, size[0], size[1]))
		for y := range size[1] {
			for x := range size[0] {
				src.Set(x, y, color.RGBA{uint8(255 * x / size[0]), uint8(255 * y / size[1]), 128, 255})
			}
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		whole, err := jpeg.Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		want := thumbnail(whole, 96, 96)
		got, err := DecodeThumbnail(buf.Bytes(), 96, 96)
		if err != nil {
			t.Fatal(err)
		}
		if got.Rect != want.Rect {
			t.Fatalf("%v: thumbnail %v, want %v", size, got.Rect, want.Rect)
		}
		worst := 0
		for i := range got.Pix {
			worst = max(worst, abs(int(got.Pix[i])-int(want.Pix[i])))
		}
		if worst > 12 {
			t.Errorf("%v: a channel differs by %d from the whole decode's thumbnail", size, worst)
		}
	}
}

// DecodeThumbnail never panics and never returns more than the cell.
func FuzzDecodeThumbnail(f *testing.F) {
	f.Add(smallJPEG(f))
	f.Add(bomb)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeThumbnail(data, 96, 64)
		if err != nil {
			return
		}
		if b := img.Bounds(); b.Dx() > 96 || b.Dy() > 64 {
			t.Fatalf("decoded %v", b)
		}
	})
}
