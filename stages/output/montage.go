package output

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"

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
	return encodeOpaquePNG(canvas), nil
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

// drawFit scales src into dst keeping its aspect ratio (nearest neighbour: thumbnails only),
// centred; a thumb is copied as it is.
func drawFit(canvas *image.RGBA, dst image.Rectangle, src image.Image) {
	t, ok := src.(thumb)
	if !ok {
		t = thumb{thumbnail(src, dst.Dx(), dst.Dy())}
	}
	w, h := min(t.Rect.Dx(), dst.Dx()), min(t.Rect.Dy(), dst.Dy())
	ox, oy := dst.Min.X+(dst.Dx()-w)/2, dst.Min.Y+(dst.Dy()-h)/2
	for y := 0; y < h; y++ {
		copy(canvas.Pix[canvas.PixOffset(ox, oy+y):], t.Pix[y*t.Stride:y*t.Stride+4*w])
	}
}

// ResultMontage draws a result's montage, each column headed by its person and face count,
// fetching at most MaxMontageRows crops per person (crops that are missing or do not decode
// are left out), decoding them on every core.
func ResultMontage(r *messages.ClusterResult, fetch Fetcher, cell int) ([]byte, error) {
	return NewThumbnails(cell).ResultMontage(r, fetch)
}

// ResultMontage draws r's montage as the package's ResultMontage does, taking the crops an
// earlier montage decoded from the cache.
func (t *Thumbnails) ResultMontage(r *messages.ClusterResult, fetch Fetcher) ([]byte, error) {
	columns, err := t.columns(r, fetch)
	if err != nil {
		return nil, err
	}
	return LabelledMontage(columns, t.cell)
}

// columns are r's montage columns: the first MaxMontageRows members of each cluster (typical
// first) whose crop exists and decodes. Later members stand in for crops that do not, in a
// further round (rare: one round is the rule).
func (t *Thumbnails) columns(r *messages.ClusterResult, fetch Fetcher) ([]MontageColumn, error) {
	columns := make([]MontageColumn, len(r.Clusters))
	members := make([][]messages.Member, len(r.Clusters))
	next := make([]int, len(r.Clusters)) // each column's next member to try
	for ci, c := range r.Clusters {
		columns[ci] = MontageColumn{Label: montageLabel(c), Count: len(c.Members)}
		members[ci] = typicalFirst(c)
	}
	used := map[string]bool{}
	for {
		var jobs []thumbJob
		for ci := range members {
			for need := MaxMontageRows - len(columns[ci].Images); need > 0 && next[ci] < len(members[ci]); next[ci]++ {
				m := members[ci][next[ci]]
				if m.Image == "" {
					continue
				}
				jobs = append(jobs, thumbJob{key: m.Image, member: m, column: ci})
				need--
			}
		}
		if len(jobs) == 0 {
			break
		}
		for _, j := range jobs {
			used[j.key] = true
		}
		if err := t.fill(jobs, fetch); err != nil {
			return nil, err
		}
		// A column's jobs are in member order, and a round's after the round before.
		for _, j := range jobs {
			if j.img.RGBA != nil {
				columns[j.column].Images = append(columns[j.column].Images, j.img)
			}
		}
	}
	t.retain(used)
	return columns, nil
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
