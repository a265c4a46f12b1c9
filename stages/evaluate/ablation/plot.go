package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Plot geometry: one panel per run, three a row.
const (
	panelW, panelH = 380, 280
	marginL        = 40
	marginB        = 30
	marginT        = 34
	marginR        = 12
	perRow         = 3
	legendH        = 40
)

var modeColors = map[string]color.RGBA{
	"face":              {31, 119, 180, 255},
	"cloth":             {255, 127, 14, 255},
	"face+cloth":        {44, 160, 44, 255},
	"face+2cloth":       {214, 39, 40, 255},
	"face+cloth scaled": {148, 103, 189, 255},
}

// writePlot draws BCubed F against sim, one panel per run: every mode with cannot-links as a
// solid line, the original's face+cloth without them dotted in grey.
func writePlot(path string, points []Point) error {
	var runs []string
	byRun := map[string][]Point{}
	for _, p := range points {
		if _, ok := byRun[p.Run]; !ok {
			runs = append(runs, p.Run)
		}
		byRun[p.Run] = append(byRun[p.Run], p)
	}
	if len(runs) == 0 {
		return nil
	}
	cols := min(len(runs), perRow)
	rows := (len(runs) + perRow - 1) / perRow
	img := image.NewRGBA(image.Rect(0, 0, cols*panelW, rows*panelH+legendH))
	fill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	for i, run := range runs {
		x0, y0 := (i%perRow)*panelW, (i/perRow)*panelH
		drawPanel(img, x0, y0, run, byRun[run])
	}
	// Legend under the panels.
	x, y := 10, rows*panelH+12
	for _, m := range modes {
		c := modeColors[m.Name]
		hline(img, x, x+24, y+5, c, 3)
		x = text(img, x+30, y, m.Name, color.RGBA{0, 0, 0, 255}) + 18
	}
	dotted(img, x, x+24, y+5, color.RGBA{128, 128, 128, 255})
	text(img, x+30, y, "face+cloth, no cannot-link (the original)", color.RGBA{0, 0, 0, 255})
	text(img, 10, y+16, "bcubed f (y) against sim (x); solid: with cannot-links", color.RGBA{90, 90, 90, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("ablation: plot: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("ablation: plot: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("ablation: plot: %w", err)
	}
	return nil
}

func drawPanel(img *image.RGBA, x0, y0 int, run string, ps []Point) {
	black, grid := color.RGBA{0, 0, 0, 255}, color.RGBA{225, 225, 225, 255}
	left, right := x0+marginL, x0+panelW-marginR
	top, bottom := y0+marginT, y0+panelH-marginB
	px := func(sim float64) int { return left + int(math.Round(sim*float64(right-left))) }
	py := func(f float64) int { return bottom - int(math.Round(f*float64(bottom-top))) }
	for k := 0; k <= 10; k += 2 {
		v := float64(k) / 10
		hline(img, left, right, py(v), grid, 1)
		vline(img, px(v), top, bottom, grid)
		label := fmt.Sprintf("%.1f", v)
		text(img, left-8-6*len(label), py(v)-4, label, black)
		text(img, px(v)-3*len(label), bottom+6, label, black)
	}
	hline(img, left, right, bottom, black, 1)
	vline(img, left, top, bottom, black)
	text(img, left, y0+10, run, black)
	series := func(mode string, cl, tracks bool) []Point {
		var out []Point
		for _, p := range ps {
			if p.Mode == mode && p.CannotLink == cl && p.Tracks == tracks && !p.Default {
				out = append(out, p)
			}
		}
		return out
	}
	orig := series("face+cloth", false, false)
	for i := 1; i < len(orig); i++ {
		segment(img, px(orig[i-1].Sim), py(orig[i-1].F), px(orig[i].Sim), py(orig[i].F), color.RGBA{128, 128, 128, 255}, true)
	}
	for _, m := range modes {
		s := series(m.Name, true, true)
		for i := 1; i < len(s); i++ {
			segment(img, px(s[i-1].Sim), py(s[i-1].F), px(s[i].Sim), py(s[i].F), modeColors[m.Name], false)
		}
	}
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x1, x2, y int, c color.RGBA, width int) {
	for w := 0; w < width; w++ {
		for x := x1; x <= x2; x++ {
			img.SetRGBA(x, y+w-width/2, c)
		}
	}
}

func vline(img *image.RGBA, x, y1, y2 int, c color.RGBA) {
	for y := y1; y <= y2; y++ {
		img.SetRGBA(x, y, c)
	}
}

func dotted(img *image.RGBA, x1, x2, y int, c color.RGBA) {
	for x := x1; x <= x2; x += 4 {
		img.SetRGBA(x, y, c)
		img.SetRGBA(x+1, y, c)
	}
}

// segment draws a line two pixels wide (one pixel, every other step, when dotted).
func segment(img *image.RGBA, x1, y1, x2, y2 int, c color.RGBA, dots bool) {
	steps := max(abs(x2-x1), abs(y2-y1), 1)
	for i := 0; i <= steps; i++ {
		if dots && (i/3)%2 == 1 {
			continue
		}
		x := x1 + (x2-x1)*i/steps
		y := y1 + (y2-y1)*i/steps
		img.SetRGBA(x, y, c)
		if !dots {
			img.SetRGBA(x, y+1, c)
			img.SetRGBA(x+1, y, c)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// text writes s in a 3×5 pixel font doubled to 6×10 and returns the x after it. Letters are
// drawn as capitals.
func text(img *image.RGBA, x, y int, s string, c color.RGBA) int {
	for _, r := range strings.ToUpper(s) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
		}
		for row, bits := range g {
			for col := 0; col < 3; col++ {
				if bits[col] == '#' {
					fill(img, image.Rect(x+2*col, y+2*row, x+2*col+2, y+2*row+2), c)
				}
			}
		}
		x += 8
	}
	return x
}

var glyphs = map[rune][5]string{
	'A': {".#.", "#.#", "###", "#.#", "#.#"}, 'B': {"##.", "#.#", "##.", "#.#", "##."},
	'C': {".##", "#..", "#..", "#..", ".##"}, 'D': {"##.", "#.#", "#.#", "#.#", "##."},
	'E': {"###", "#..", "##.", "#..", "###"}, 'F': {"###", "#..", "##.", "#..", "#.."},
	'G': {".##", "#..", "#.#", "#.#", ".##"}, 'H': {"#.#", "#.#", "###", "#.#", "#.#"},
	'I': {"###", ".#.", ".#.", ".#.", "###"}, 'J': {"..#", "..#", "..#", "#.#", ".#."},
	'K': {"#.#", "#.#", "##.", "#.#", "#.#"}, 'L': {"#..", "#..", "#..", "#..", "###"},
	'M': {"#.#", "###", "###", "#.#", "#.#"}, 'N': {"##.", "#.#", "#.#", "#.#", "#.#"},
	'O': {".#.", "#.#", "#.#", "#.#", ".#."}, 'P': {"##.", "#.#", "##.", "#..", "#.."},
	'Q': {".#.", "#.#", "#.#", "##.", ".##"}, 'R': {"##.", "#.#", "##.", "#.#", "#.#"},
	'S': {".##", "#..", ".#.", "..#", "##."}, 'T': {"###", ".#.", ".#.", ".#.", ".#."},
	'U': {"#.#", "#.#", "#.#", "#.#", "###"}, 'V': {"#.#", "#.#", "#.#", "#.#", ".#."},
	'W': {"#.#", "#.#", "###", "###", "#.#"}, 'X': {"#.#", "#.#", ".#.", "#.#", "#.#"},
	'Y': {"#.#", "#.#", ".#.", ".#.", ".#."}, 'Z': {"###", "..#", ".#.", "#..", "###"},
	'0': {"###", "#.#", "#.#", "#.#", "###"}, '1': {".#.", "##.", ".#.", ".#.", "###"},
	'2': {"##.", "..#", ".#.", "#..", "###"}, '3': {"##.", "..#", ".#.", "..#", "##."},
	'4': {"#.#", "#.#", "###", "..#", "..#"}, '5': {"###", "#..", "##.", "..#", "##."},
	'6': {".##", "#..", "###", "#.#", "###"}, '7': {"###", "..#", ".#.", ".#.", ".#."},
	'8': {"###", "#.#", "###", "#.#", "###"}, '9': {"###", "#.#", "###", "..#", "##."},
	'.': {"...", "...", "...", "...", ".#."}, ',': {"...", "...", "...", ".#.", "#.."},
	'+': {"...", ".#.", "###", ".#.", "..."}, '-': {"...", "...", "###", "...", "..."},
	'_': {"...", "...", "...", "...", "###"}, ':': {"...", ".#.", "...", ".#.", "..."},
	'(': {".#.", "#..", "#..", "#..", ".#."}, ')': {".#.", "..#", "..#", "..#", ".#."},
	';': {"...", ".#.", "...", ".#.", "#.."}, '?': {"##.", "..#", ".#.", "...", ".#."},
	' ': {"...", "...", "...", "...", "..."},
}
