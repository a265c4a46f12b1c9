package vision

import (
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
)

// The frame every table below is computed for: 100 columns, 80 rows. The original clamps the
// far edges at 79 (rows) and 99 (columns).
const frameW, frameH = 100, 80

// Hand-computed upper-body and clothing regions, and where they land in the 100×80 frame, for
// face boxes in the middle, at every edge and in every corner.
var cropCases = []struct {
	name                string
	box                 messages.Box // top, right, bottom, left
	body, cloth         Region
	bodyPlace, clothPla Placement
}{
	{
		name: "middle", box: messages.Box{30, 60, 50, 40}, // h=20 w=20, int(0.2·20)=4
		body: Region{10, 70, 20, 80}, cloth: Region{54, 70, 20, 80},
		bodyPlace: Placement{Visible: Region{10, 70, 20, 80}},
		clothPla:  Placement{Visible: Region{54, 70, 20, 80}},
	},
	{
		name: "top edge", box: messages.Box{0, 60, 20, 40},
		body: Region{-20, 40, 20, 80}, cloth: Region{24, 40, 20, 80},
		bodyPlace: Placement{Visible: Region{0, 40, 20, 80}, Top: 20},
		clothPla:  Placement{Visible: Region{24, 40, 20, 80}},
	},
	{
		name: "bottom edge", box: messages.Box{60, 60, 80, 40}, // bottom at the frame's last row + 1
		body: Region{40, 100, 20, 80}, cloth: Region{84, 100, 20, 80},
		// rows 40..78 visible (79 is the original's clamp), 21 black rows below
		bodyPlace: Placement{Visible: Region{40, 79, 20, 80}, Bottom: 21},
		// the clothing starts below the frame: all black, 16×60
		clothPla: Placement{Top: 16, Left: 60},
	},
	{
		name: "left edge", box: messages.Box{30, 20, 50, 0},
		body: Region{10, 70, -20, 40}, cloth: Region{54, 70, -20, 40},
		bodyPlace: Placement{Visible: Region{10, 70, 0, 40}, Left: 20},
		clothPla:  Placement{Visible: Region{54, 70, 0, 40}, Left: 20},
	},
	{
		name: "right edge", box: messages.Box{30, 100, 50, 80},
		body: Region{10, 70, 60, 120}, cloth: Region{54, 70, 60, 120},
		bodyPlace: Placement{Visible: Region{10, 70, 60, 99}, Right: 21},
		clothPla:  Placement{Visible: Region{54, 70, 60, 99}, Right: 21},
	},
	{
		name: "top-left corner", box: messages.Box{0, 20, 20, 0},
		body: Region{-20, 40, -20, 40}, cloth: Region{24, 40, -20, 40},
		bodyPlace: Placement{Visible: Region{0, 40, 0, 40}, Top: 20, Left: 20},
		clothPla:  Placement{Visible: Region{24, 40, 0, 40}, Left: 20},
	},
	{
		name: "top-right corner", box: messages.Box{0, 100, 20, 80},
		body: Region{-20, 40, 60, 120}, cloth: Region{24, 40, 60, 120},
		bodyPlace: Placement{Visible: Region{0, 40, 60, 99}, Top: 20, Right: 21},
		clothPla:  Placement{Visible: Region{24, 40, 60, 99}, Right: 21},
	},
	{
		name: "bottom-left corner", box: messages.Box{60, 20, 80, 0},
		body: Region{40, 100, -20, 40}, cloth: Region{84, 100, -20, 40},
		bodyPlace: Placement{Visible: Region{40, 79, 0, 40}, Bottom: 21, Left: 20},
		clothPla:  Placement{Top: 16, Left: 60},
	},
	{
		name: "bottom-right corner", box: messages.Box{60, 100, 80, 80},
		body: Region{40, 100, 60, 120}, cloth: Region{84, 100, 60, 120},
		bodyPlace: Placement{Visible: Region{40, 79, 60, 99}, Bottom: 21, Right: 21},
		clothPla:  Placement{Top: 16, Left: 60},
	},
	{
		// A box ending one row/column before the far edges: the clamp at 79/99 cuts nothing
		// from the face box itself, but the regions still run past and are padded.
		name: "near bottom-right", box: messages.Box{50, 99, 79, 90}, // h=29 w=9, int(5.8)=5
		body: Region{21, 108, 81, 108}, cloth: Region{84, 108, 81, 108},
		bodyPlace: Placement{Visible: Region{21, 79, 81, 99}, Bottom: 29, Right: 9},
		clothPla:  Placement{Top: 24, Left: 27},
	},
	{
		// The clothing ends exactly on the last row: the original's min(H−1, ·) drops that
		// row and pads one black row back.
		name: "clothing ends on the last row", box: messages.Box{40, 60, 60, 40}, // h=20: body/cloth end at 80
		body: Region{20, 80, 20, 80}, cloth: Region{64, 80, 20, 80},
		bodyPlace: Placement{Visible: Region{20, 79, 20, 80}, Bottom: 1},
		clothPla:  Placement{Visible: Region{64, 79, 20, 80}, Bottom: 1},
	},
	{
		// Rows ending one before the last row are not clamped at all.
		name: "clothing ends before the last row", box: messages.Box{39, 60, 59, 40},
		body: Region{19, 79, 20, 80}, cloth: Region{63, 79, 20, 80},
		bodyPlace: Placement{Visible: Region{19, 79, 20, 80}},
		clothPla:  Placement{Visible: Region{63, 79, 20, 80}},
	},
	{
		// A tall narrow box: int(0.2·17) truncates 3.4 to 3.
		name: "odd sizes", box: messages.Box{10, 37, 27, 30}, // h=17 w=7
		body: Region{-7, 44, 23, 44}, cloth: Region{30, 44, 23, 44},
		bodyPlace: Placement{Visible: Region{0, 44, 23, 44}, Top: 7},
		clothPla:  Placement{Visible: Region{30, 44, 23, 44}},
	},
	{
		// A face larger than the frame: padded on all four sides.
		name: "face larger than the frame", box: messages.Box{0, 100, 80, 0}, // h=80 w=100
		body: Region{-80, 160, -100, 200}, cloth: Region{96, 160, -100, 200},
		bodyPlace: Placement{Visible: Region{0, 79, 0, 99}, Top: 80, Bottom: 81, Left: 100, Right: 101},
		clothPla:  Placement{Top: 64, Left: 300},
	},
}

func TestUpperBodyAndClothingRegions(t *testing.T) {
	for _, c := range cropCases {
		t.Run(c.name, func(t *testing.T) {
			if got := UpperBody(c.box); got != c.body {
				t.Errorf("UpperBody(%v) = %+v, want %+v", c.box, got, c.body)
			}
			if got := Clothing(c.box); got != c.cloth {
				t.Errorf("Clothing(%v) = %+v, want %+v", c.box, got, c.cloth)
			}
			if got := Place(c.body, frameW, frameH); got != c.bodyPlace {
				t.Errorf("Place(body %+v) = %+v, want %+v", c.body, got, c.bodyPlace)
			}
			if got := Place(c.cloth, frameW, frameH); got != c.clothPla {
				t.Errorf("Place(cloth %+v) = %+v, want %+v", c.cloth, got, c.clothPla)
			}
		})
	}
}

func TestFaceWithMargin(t *testing.T) {
	for _, c := range []struct {
		box    messages.Box
		margin float64
		want   Region
	}{
		{messages.Box{30, 60, 50, 40}, 0.25, Region{25, 55, 35, 65}},
		{messages.Box{0, 20, 20, 0}, 0.25, Region{-5, 25, -5, 25}},
		{messages.Box{10, 37, 27, 30}, 0.5, Region{2, 35, 27, 40}}, // int(8.5)=8, int(3.5)=3
		{messages.Box{10, 37, 27, 30}, 0, Region{10, 27, 30, 37}},
	} {
		if got := FaceWithMargin(c.box, c.margin); got != c.want {
			t.Errorf("FaceWithMargin(%v, %v) = %+v, want %+v", c.box, c.margin, got, c.want)
		}
	}
}

// positionFrame is a 100×80 BGR frame whose pixel (y, x) holds (x+1, y+1, 200): every pixel is
// non-black and tells where it came from.
func positionFrame(t testing.TB) gocv.Mat {
	t.Helper()
	m := gocv.NewMatWithSize(frameH, frameW, gocv.MatTypeCV8UC3)
	for y := 0; y < frameH; y++ {
		for x := 0; x < frameW; x++ {
			m.SetUCharAt(y, 3*x, uint8(x+1))
			m.SetUCharAt(y, 3*x+1, uint8(y+1))
			m.SetUCharAt(y, 3*x+2, 200)
		}
	}
	return m
}

// Crop copies exactly the visible part of the frame into place and leaves the rest black.
func TestCropPixels(t *testing.T) {
	frame := positionFrame(t)
	defer frame.Close()
	check := func(t *testing.T, r Region, p Placement) {
		t.Helper()
		out, err := Crop(frame, r)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		if out.Rows() != r.Height() || out.Cols() != r.Width() || out.Channels() != 3 {
			t.Fatalf("crop of %+v is %dx%dx%d, want %dx%dx3", r, out.Cols(), out.Rows(), out.Channels(), r.Width(), r.Height())
		}
		bad := 0
		for oy := 0; oy < out.Rows(); oy++ {
			for ox := 0; ox < out.Cols(); ox++ {
				y, x := r.Y1+oy, r.X1+ox
				want := [3]uint8{}
				if !p.Empty() && y >= p.Visible.Y1 && y < p.Visible.Y2 && x >= p.Visible.X1 && x < p.Visible.X2 {
					want = [3]uint8{uint8(x + 1), uint8(y + 1), 200}
				}
				got := [3]uint8{out.GetUCharAt(oy, 3*ox), out.GetUCharAt(oy, 3*ox+1), out.GetUCharAt(oy, 3*ox+2)}
				if got != want && bad < 5 {
					bad++
					t.Errorf("crop %+v pixel (%d,%d) = %v, want %v", r, oy, ox, got, want)
				}
			}
		}
	}
	for _, c := range cropCases {
		t.Run(c.name, func(t *testing.T) {
			check(t, c.body, c.bodyPlace)
			check(t, c.cloth, c.clothPla)
		})
	}
	// The padding really is on the side the region ran past: spot checks in frame terms.
	out, err := Crop(frame, Region{-2, 3, 97, 102}) // top-right corner, 5×5
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if v := out.GetUCharAt(2, 0); v != 98 { // output (2,0) is frame (0,97): blue = 97+1
		t.Errorf("corner crop pixel (2,0) blue = %d, want 98", v)
	}
	if v := out.GetUCharAt(2, 3*2); v != 0 { // frame column 99 is dropped by the original's clamp
		t.Errorf("corner crop pixel (2,2) = %d, want black (column 99 is clamped away)", v)
	}
}

func TestCropRejectsEmpty(t *testing.T) {
	frame := positionFrame(t)
	defer frame.Close()
	for _, r := range []Region{{10, 10, 0, 5}, {10, 5, 0, 5}, {0, 5, 7, 7}} {
		if m, err := Crop(frame, r); err == nil {
			m.Close()
			t.Errorf("Crop(%+v) succeeded, want an error", r)
		}
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if m, err := Crop(empty, Region{0, 5, 0, 5}); err == nil {
		m.Close()
		t.Error("cropping an empty image succeeded")
	}
}

// A grey image crops and pads too (the bbt faces are grey).
func TestCropGrey(t *testing.T) {
	grey := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(77, 0, 0, 0), 10, 10, gocv.MatTypeCV8U)
	defer grey.Close()
	out, err := Crop(grey, Region{-1, 4, 8, 12})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if out.Rows() != 5 || out.Cols() != 4 || out.Channels() != 1 {
		t.Fatalf("grey crop is %dx%dx%d", out.Cols(), out.Rows(), out.Channels())
	}
	if out.GetUCharAt(0, 0) != 0 || out.GetUCharAt(1, 0) != 77 || out.GetUCharAt(1, 1) != 0 {
		t.Errorf("grey crop pixels %d %d %d, want 0 77 0", out.GetUCharAt(0, 0), out.GetUCharAt(1, 0), out.GetUCharAt(1, 1))
	}
}
