package output

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/personcluster/personcluster/messages"
)

// MaxMontageRows bounds the montage's height; longer clusters show their first members.
const MaxMontageRows = 24

// MontageColumn is one person's column: a header (Label and Count faces) over their crops.
type MontageColumn struct {
	Label  string
	Count  int // faces of the person, which may exceed the images shown
	Images []image.Image
}

// montageHeader is the height of a column's header: two lines of basicfont's 7×13 face.
const montageHeader = 2*13 + 6

// LabelledMontage draws one column per person, headed by its label and face count (a negative
// Count leaves the count out), each crop a cell×cell thumbnail (aspect kept), as a PNG.
func LabelledMontage(columns []MontageColumn, cell int) ([]byte, error) {
	if cell <= 0 {
		return nil, errors.New("output: montage cell size must be positive")
	}
	rows := 1
	for _, c := range columns {
		rows = max(rows, min(len(c.Images), MaxMontageRows))
	}
	const gap = 4
	w := max(1, len(columns))*(cell+gap) + gap
	h := montageHeader + rows*(cell+gap) + gap
	canvas := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(canvas, canvas.Bounds(), &image.Uniform{color.RGBA{24, 24, 24, 255}}, image.Point{}, draw.Src)
	for x, col := range columns {
		left := gap + x*(cell+gap)
		drawLabel(canvas, left, 2+13, cell, col.Label, color.RGBA{238, 238, 238, 255})
		if col.Count >= 0 {
			drawLabel(canvas, left, 2+2*13+2, cell, fmt.Sprintf("%d faces", col.Count), color.RGBA{170, 170, 170, 255})
		}
		for y, img := range col.Images {
			if y >= MaxMontageRows {
				break
			}
			top := montageHeader + gap + y*(cell+gap)
			drawFit(canvas, image.Rect(left, top, left+cell, top+cell), img)
		}
	}
	var buf bytes.Buffer
	// Fastest deflate: the montage is written twice per source (quota and final result) and
	// default compression cost more CPU than the rest of the clusterer's result.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, canvas); err != nil {
		return nil, fmt.Errorf("output: encoding montage: %w", err)
	}
	return buf.Bytes(), nil
}

// drawLabel writes text with its baseline at y, cut to width pixels.
func drawLabel(canvas *image.RGBA, x, y, width int, text string, c color.Color) {
	face := basicfont.Face7x13
	maxRunes := width / face.Advance
	if r := []rune(text); len(r) > maxRunes {
		text = string(r[:max(0, maxRunes-1)]) + "~" // basicfont has ASCII only: no "…"
	}
	d := font.Drawer{Dst: canvas, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(text)
}

// drawFit scales src into dst keeping its aspect ratio (nearest neighbour: thumbnails only).
func drawFit(canvas *image.RGBA, dst image.Rectangle, src image.Image) {
	sb := src.Bounds()
	if sb.Dx() == 0 || sb.Dy() == 0 {
		return
	}
	scale := min(float64(dst.Dx())/float64(sb.Dx()), float64(dst.Dy())/float64(sb.Dy()))
	w, h := int(float64(sb.Dx())*scale), int(float64(sb.Dy())*scale)
	ox, oy := dst.Min.X+(dst.Dx()-w)/2, dst.Min.Y+(dst.Dy()-h)/2
	for y := 0; y < h; y++ {
		sy := sb.Min.Y + int(float64(y)/scale)
		for x := 0; x < w; x++ {
			canvas.Set(ox+x, oy+y, src.At(sb.Min.X+int(float64(x)/scale), sy))
		}
	}
}

// ResultMontage draws a result's montage, each column headed by its person and face count,
// fetching at most MaxMontageRows crops per person (crops that are missing or do not decode
// are left out).
func ResultMontage(r *messages.ClusterResult, fetch Fetcher, cell int) ([]byte, error) {
	columns := make([]MontageColumn, len(r.Clusters))
	for ci, c := range r.Clusters {
		columns[ci] = MontageColumn{Label: montageLabel(c), Count: len(c.Members)}
		for _, m := range typicalFirst(c) {
			if len(columns[ci].Images) >= MaxMontageRows {
				break
			}
			if m.Image == "" {
				continue
			}
			data, err := fetch(m.Image)
			if err != nil {
				return nil, fmt.Errorf("output: montage: image of frame %d face %d: %w", m.Frame, m.Face, err)
			}
			if img, err := DecodeJPEG(data); err == nil && data != nil {
				columns[ci].Images = append(columns[ci].Images, img)
			}
		}
	}
	return LabelledMontage(columns, cell)
}

// typicalFirst is a cluster's members with its typical face (Cluster.Typical) first: the
// montage's first cell.
func typicalFirst(c messages.Cluster) []messages.Member {
	k := c.Typical
	if k <= 0 || k >= len(c.Members) {
		return c.Members
	}
	out := make([]messages.Member, 0, len(c.Members))
	out = append(out, c.Members[k])
	out = append(out, c.Members[:k]...)
	return append(out, c.Members[k+1:]...)
}

// montageLabel heads a montage column: the person's name, else their id (a column fits 13
// characters: "Person <id>" would not), else the cluster's number.
func montageLabel(c messages.Cluster) string {
	switch {
	case c.Name != "":
		return c.Name
	case c.Person != "":
		return c.Person
	}
	return fmt.Sprintf("Person %d", c.ID)
}
