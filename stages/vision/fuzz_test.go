package vision

import (
	"errors"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
)

// bomb is a JPEG header declaring 60000×60000 pixels.
var bomb = []byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xEA, 0x60, 0x03,
	0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9}

func seedJPEGs(f *testing.F) {
	good := testJPEG(f, 64, 48)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(testJPEG(f, 1, 1))
	f.Add(bomb)
	f.Add([]byte{})
	f.Add([]byte{0xFF, 0xD8})
	grey := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 0, 0, 0), 8, 12, gocv.MatTypeCV8UC1)
	defer grey.Close()
	if data, err := EncodeJPEG(grey, 75); err == nil {
		f.Add(data)
	}
}

// JPEGSize never panics, and a size it reports is a real JPEG frame size.
func FuzzJPEGSize(f *testing.F) {
	seedJPEGs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		w, h, err := JPEGSize(data)
		if err != nil {
			if !errors.Is(err, ErrNotJPEG) {
				t.Fatalf("error %v is not ErrNotJPEG", err)
			}
			return
		}
		if w <= 0 || h <= 0 || w > 65535 || h > 65535 {
			t.Fatalf("size %dx%d", w, h)
		}
	})
}

// DecodeJPEG never crashes on any bytes, and whatever path decodes (libjpeg-turbo directly or
// OpenCV), the image is the size the header declared and within the bound: a decompression
// bomb can never be decoded.
func FuzzDecodeJPEG(f *testing.F) {
	seedJPEGs(f)
	const maxSide = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeJPEG(data, maxSide)
		if err != nil {
			if !errors.Is(err, ErrNotJPEG) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v is none of ErrNotJPEG, ErrTooLarge, ErrDecode", err)
			}
			return
		}
		defer m.Close()
		w, h, err := JPEGSize(data)
		if err != nil {
			t.Fatalf("decoded a JPEG whose size JPEGSize cannot read: %v", err)
		}
		if m.Cols() != w || m.Rows() != h || w > maxSide || h > maxSide || m.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("decoded %dx%d type %v; header %dx%d, bound %d", m.Cols(), m.Rows(), m.Type(), w, h, maxSide)
		}
	})
}

func clampInt(v, lo, hi int) int { return min(max(v, lo), hi) }

// Place's geometry: the visible part lies in the frame (minus the original's last row and
// column), and visible plus padding is exactly the wanted region, in the right place.
func FuzzPlace(f *testing.F) {
	f.Add(10, 50, 20, 80, 640, 360)
	f.Add(-30, 10, -40, 5, 64, 48)
	f.Add(300, 400, 600, 700, 640, 360)
	f.Add(0, 1, 0, 1, 1, 1)
	f.Fuzz(func(t *testing.T, y1, y2, x1, x2, w, h int) {
		const lim = 1 << 20
		y1, y2, x1, x2 = clampInt(y1, -lim, lim), clampInt(y2, -lim, lim), clampInt(x1, -lim, lim), clampInt(x2, -lim, lim)
		w, h = clampInt(w, 1, messages.MaxFrameSide), clampInt(h, 1, messages.MaxFrameSide)
		r := Region{Y1: y1, Y2: y2, X1: x1, X2: x2}
		if r.Width() <= 0 || r.Height() <= 0 {
			return // Crop refuses empty regions before placing them
		}
		p := Place(r, w, h)
		if p.Top < 0 || p.Bottom < 0 || p.Left < 0 || p.Right < 0 {
			t.Fatalf("negative padding %+v for %+v in %dx%d", p, r, w, h)
		}
		if p.Empty() {
			if p.Top != r.Height() || p.Left != r.Width() {
				t.Fatalf("empty placement %+v of %+v", p, r)
			}
			// Really nothing visible: the region misses [0,w-1)×[0,h-1) (empty for a frame one
			// pixel wide or tall: the original's clamp drops the last row and column).
			if r.Y1 < h-1 && r.Y2 > 0 && r.X1 < w-1 && r.X2 > 0 && w > 1 && h > 1 {
				t.Fatalf("%+v in %dx%d has a visible part, Place says none", r, w, h)
			}
			return
		}
		v := p.Visible
		if v.Y1 < 0 || v.X1 < 0 || v.Y2 > h-1 || v.X2 > w-1 {
			t.Fatalf("visible %+v outside %dx%d (far edges at h-1, w-1)", v, w, h)
		}
		if p.Top+v.Height()+p.Bottom != r.Height() || p.Left+v.Width()+p.Right != r.Width() {
			t.Fatalf("visible %+v + padding %+v != %dx%d", v, p, r.Width(), r.Height())
		}
		if v.Y1-p.Top != r.Y1 || v.X1-p.Left != r.X1 {
			t.Fatalf("visible %+v is not at its place in %+v", v, r)
		}
	})
}

// The original's regions of any face box inside a frame: the upper body holds the face, the
// clothing lies under it within the upper body's columns, the margin grows the face.
func FuzzRegions(f *testing.F) {
	f.Add(10, 60, 50, 20, 0.2)
	f.Add(0, 1, 1, 0, 0.0)
	f.Fuzz(func(t *testing.T, top, right, bottom, left int, margin float64) {
		const side = messages.MaxFrameSide
		top, bottom = clampInt(top, 0, side), clampInt(bottom, 0, side)
		left, right = clampInt(left, 0, side), clampInt(right, 0, side)
		if bottom <= top || right <= left || !(margin >= 0 && margin <= 2) {
			return
		}
		b := messages.Box{top, right, bottom, left}
		ub, cl, fm := UpperBody(b), Clothing(b), FaceWithMargin(b, margin)
		if ub.Y1 > top || ub.Y2 < bottom || ub.X1 > left || ub.X2 < right || ub.Height() != 3*b.Height() || ub.Width() != 3*b.Width() {
			t.Fatalf("upper body %+v of %v", ub, b)
		}
		if cl.Y1 < bottom || cl.Y2 != ub.Y2 || cl.X1 != ub.X1 || cl.X2 != ub.X2 || cl.Height() < 0 {
			t.Fatalf("clothing %+v, upper body %+v of %v", cl, ub, b)
		}
		if fm.Y1 > top || fm.Y2 < bottom || fm.X1 > left || fm.X2 < right {
			t.Fatalf("face with margin %v: %+v of %v", margin, fm, b)
		}
	})
}

// Crop cuts exactly r.Height()×r.Width() pixels: frame pixels where Place says visible, black
// elsewhere.
func FuzzCrop(f *testing.F) {
	f.Add(5, 20, 3, 30, 40, 30)
	f.Add(-10, 10, -10, 10, 16, 16)
	f.Add(35, 50, 45, 60, 40, 30)
	f.Fuzz(func(t *testing.T, y1, y2, x1, x2, w, h int) {
		w, h = clampInt(w, 1, 64), clampInt(h, 1, 64)
		y1, x1 = clampInt(y1, -100, 160), clampInt(x1, -100, 160)
		y2, x2 = clampInt(y2, y1-1, y1+96), clampInt(x2, x1-1, x1+96)
		r := Region{Y1: y1, Y2: y2, X1: x1, X2: x2}
		img := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
		defer img.Close()
		pix, err := img.DataPtrUint8()
		if err != nil {
			t.Fatal(err)
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				i := 3 * (y*w + x)
				pix[i], pix[i+1], pix[i+2] = byte(x+1), byte(y+1), 7
			}
		}
		out, err := Crop(img, r)
		if r.Width() <= 0 || r.Height() <= 0 {
			if err == nil {
				out.Close()
				t.Fatalf("empty region %+v cropped", r)
			}
			return
		}
		if err != nil {
			t.Fatalf("crop %+v of %dx%d: %v", r, w, h, err)
		}
		defer out.Close()
		if out.Rows() != r.Height() || out.Cols() != r.Width() || !out.IsContinuous() {
			t.Fatalf("crop %+v is %dx%d", r, out.Cols(), out.Rows())
		}
		got, err := out.DataPtrUint8()
		if err != nil {
			t.Fatal(err)
		}
		v := Place(r, w, h).Visible
		for oy := 0; oy < r.Height(); oy++ {
			for ox := 0; ox < r.Width(); ox++ {
				y, x := r.Y1+oy, r.X1+ox
				want := [3]byte{}
				if y >= v.Y1 && y < v.Y2 && x >= v.X1 && x < v.X2 {
					want = [3]byte{byte(x + 1), byte(y + 1), 7}
				}
				i := 3 * (oy*r.Width() + ox)
				if [3]byte(got[i:i+3]) != want {
					t.Fatalf("crop %+v of %dx%d: pixel (%d,%d) is %v, want %v", r, w, h, ox, oy, got[i:i+3], want)
				}
			}
		}
	})
}
