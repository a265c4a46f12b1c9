package vision

import "github.com/personcluster/personcluster/messages"

// Region is a wanted rectangle in frame pixels, rows [Y1,Y2) and columns [X1,X2); it may run
// past the frame's edges.
type Region struct{ Y1, Y2, X1, X2 int }

// Width and Height of the wanted crop (which padding keeps whatever the edges).
func (r Region) Width() int  { return r.X2 - r.X1 }
func (r Region) Height() int { return r.Y2 - r.Y1 }

// UpperBody is DESIGN step 4: rows [top−h, bottom+h], columns [left−w, right+w].
func UpperBody(b messages.Box) Region {
	h, w := b.Height(), b.Width()
	return Region{Y1: b.Top() - h, Y2: b.Bottom() + h, X1: b.Left() - w, X2: b.Right() + w}
}

// Clothing is DESIGN step 4: rows [bottom+int(0.2·h), bottom+h], the upper body's columns.
func Clothing(b messages.Box) Region {
	h, w := b.Height(), b.Width()
	return Region{Y1: b.Bottom() + int(0.2*float64(h)), Y2: b.Bottom() + h, X1: b.Left() - w, X2: b.Right() + w}
}

// FaceWithMargin is the face box grown by margin×size on every side, for the encoder.
func FaceWithMargin(b messages.Box, margin float64) Region {
	my, mx := int(margin*float64(b.Height())), int(margin*float64(b.Width()))
	return Region{Y1: b.Top() - my, Y2: b.Bottom() + my, X1: b.Left() - mx, X2: b.Right() + mx}
}

// Placement says which part of the frame a crop copies and how much black padding surrounds it.
type Placement struct {
	// Visible is the part of the frame copied, rows [Y1,Y2) and columns [X1,X2); empty when the
	// region lies wholly outside the frame.
	Visible                  Region
	Top, Bottom, Left, Right int // padding
}

// Empty reports whether nothing of the frame is visible.
func (p Placement) Empty() bool { return p.Visible.Y2 <= p.Visible.Y1 || p.Visible.X2 <= p.Visible.X1 }

// Place clamps r to a frame of width×height exactly as the original did: the near edges at 0,
// the far edges at height−1 and width−1 (an off-by-one of the original that drops the last row
// and column; kept, because reproducing its results is the requirement), then pads back to the
// wanted size with black. A region with nothing visible becomes all padding.
func Place(r Region, width, height int) Placement {
	v := Region{Y1: max(0, r.Y1), Y2: min(height-1, r.Y2), X1: max(0, r.X1), X2: min(width-1, r.X2)}
	if v.Y2 <= v.Y1 || v.X2 <= v.X1 {
		return Placement{Visible: Region{}, Top: r.Height(), Left: r.Width()}
	}
	return Placement{Visible: v, Top: v.Y1 - r.Y1, Bottom: r.Y2 - v.Y2, Left: v.X1 - r.X1, Right: r.X2 - v.X2}
}
