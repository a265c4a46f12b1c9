// Package output turns a ClusterResult into what people look at, as the original did: one
// folder per cluster with its members' upper-body images, a montage (one column per cluster),
// results.json and an index.html that opens from disk. Pure Go.
package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"

	"github.com/personcluster/personcluster/messages"
)

// FaceRecord is one face in results.json.
type FaceRecord struct {
	Frame   int64        `json:"frame"` // 0-based frame number in the source video
	PTS     int64        `json:"pts_ms"`
	Box     messages.Box `json:"box"` // top, right, bottom, left
	Cluster int          `json:"cluster"`
	Person  string       `json:"person,omitempty"` // the gallery person of its cluster (package people)
	Image   string       `json:"image,omitempty"`
}

// Results is results.json.
type Results struct {
	*messages.ClusterResult
	Faces []FaceRecord `json:"faces"`
}

// FaceRecords lists every face of a result, members first, with its cluster (−1 if dropped).
func FaceRecords(r *messages.ClusterResult) []FaceRecord {
	var out []FaceRecord
	for _, c := range r.Clusters {
		for _, m := range c.Members {
			out = append(out, FaceRecord{Frame: m.Frame, PTS: m.PTSMillis, Box: m.Box, Cluster: c.ID, Person: c.Person, Image: memberFile(c.ID, m)})
		}
	}
	for _, m := range r.Dropped {
		out = append(out, FaceRecord{Frame: m.Frame, PTS: m.PTSMillis, Box: m.Box, Cluster: -1})
	}
	return out
}

func memberFile(cluster int, m messages.Member) string {
	return filepath.ToSlash(filepath.Join("clusters", fmt.Sprint(cluster), fmt.Sprintf("frame%06d_face%d.jpg", m.Frame, m.Face)))
}

// Fetcher returns a stored object by key (nil, nil if it does not exist).
type Fetcher func(key string) ([]byte, error)

// Write writes the result folder under dir/<source>, fetching images and fingerprints by key. dir must exist or be creatable; the
// source id was validated (messages.ValidateSourceID), so it cannot escape dir.
func Write(dir string, r *messages.ClusterResult, fetch Fetcher) (string, error) {
	if err := messages.ValidateSourceID(r.Source); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	root := filepath.Join(dir, r.Source)
	if err := os.RemoveAll(filepath.Join(root, "clusters")); err != nil {
		return "", fmt.Errorf("output: clearing %s: %w", root, err)
	}
	// A result with no clusters still gets its folder (results.json, an empty montage, fingerprints).
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	thumbs := make([][]image.Image, len(r.Clusters))
	for ci, c := range r.Clusters {
		cdir := filepath.Join(root, "clusters", fmt.Sprint(c.ID))
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return "", fmt.Errorf("output: %w", err)
		}
		for _, m := range c.Members {
			if m.Image == "" {
				continue
			}
			data, err := fetch(m.Image)
			if err != nil {
				return "", fmt.Errorf("output: image of frame %d face %d: %w", m.Frame, m.Face, err)
			}
			if data == nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(root, memberFile(c.ID, m)), data, 0o644); err != nil {
				return "", fmt.Errorf("output: %w", err)
			}
			if img, err := DecodeJPEG(data); err == nil {
				thumbs[ci] = append(thumbs[ci], img)
			}
		}
	}
	if r.Fingerprints != "" {
		data, err := fetch(r.Fingerprints)
		if err != nil {
			return "", fmt.Errorf("output: fingerprints: %w", err)
		}
		if data != nil {
			if err := os.WriteFile(filepath.Join(root, "fingerprints.json.gz"), data, 0o644); err != nil {
				return "", fmt.Errorf("output: %w", err)
			}
		}
	}
	res := Results{ClusterResult: r, Faces: FaceRecords(r)}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "results.json"), js, 0o644); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	montage, err := Montage(thumbs, 96)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "montage.png"), montage, 0o644); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	var page bytes.Buffer
	if err := pageTemplate.Execute(&page, res); err != nil {
		return "", fmt.Errorf("output: rendering index.html: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "index.html"), page.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	return root, nil
}

// MaxMontageRows bounds the montage's height; longer clusters show their first members.
const MaxMontageRows = 24

// Montage draws one column per cluster, each member a cell×cell thumbnail (aspect kept), on a
// dark background, as a PNG.
func Montage(columns [][]image.Image, cell int) ([]byte, error) {
	if cell <= 0 {
		return nil, errors.New("output: montage cell size must be positive")
	}
	rows := 1
	for _, c := range columns {
		rows = max(rows, min(len(c), MaxMontageRows))
	}
	const gap = 4
	w := max(1, len(columns))*(cell+gap) + gap
	h := rows*(cell+gap) + gap
	canvas := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(canvas, canvas.Bounds(), &image.Uniform{color.RGBA{24, 24, 24, 255}}, image.Point{}, draw.Src)
	for x, col := range columns {
		for y, img := range col {
			if y >= MaxMontageRows {
				break
			}
			cellRect := image.Rect(gap+x*(cell+gap), gap+y*(cell+gap), gap+x*(cell+gap)+cell, gap+y*(cell+gap)+cell)
			drawFit(canvas, cellRect, img)
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

var pageTemplate = template.Must(template.New("index").Funcs(template.FuncMap{
	"file": memberFile,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>personcluster: {{.Source}}</title>
<style>
body{font-family:system-ui,sans-serif;background:#181818;color:#eee;margin:1.5em}
.cluster{margin:1em 0;padding:.5em;background:#222;border-radius:6px}
.cluster img{height:96px;margin:2px;border-radius:3px}
figure{display:inline-block;margin:2px;text-align:center;font-size:11px;color:#aaa}
</style></head><body>
<h1>{{.Source}}: {{len .Clusters}} people</h1>
<p>{{.FramesAccepted}} accepted frames of {{.FramesSeen}} read, {{.Faces}} faces{{if .Partial}} (partial: the quota of {{.Params.Quota}} frames was not reached){{end}}.
Linkage {{.Params.Method}}, sim {{.Params.Sim}}, cut at {{printf "%.4f" .Threshold}}, min_csize {{.Params.MinCSize}}; face model {{.FaceModel}}, clothing model {{.ClothModel}}.
{{len .Dropped}} faces were in clusters smaller than min_csize.</p>
<p><img src="montage.png" alt="montage: one column per person" style="max-width:100%"></p>
{{range $c := .Clusters}}<div class="cluster"><h2>Person {{$c.ID}} ({{len $c.Members}} faces)</h2>
{{range $m := $c.Members}}<figure><img src="{{file $c.ID $m}}" alt="frame {{$m.Frame}}"><figcaption>frame {{$m.Frame}}</figcaption></figure>{{end}}
</div>{{end}}
</body></html>
`))
