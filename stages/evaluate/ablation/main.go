// Command ablation measures what each part of a face's description contributes: it runs the
// pipeline once per labelled video and face backend (saving the fingerprints), then re-clusters
// those vectors offline with the face part only, the clothing part only and both (plain
// concatenation as the original, per-part scaled, clothing ×2), with and without the
// cannot-link rule, over a sweep of sim, and scores every clustering against the truth (BCubed
// F). It prints one table and writes a PNG plot of BCubed F against sim.
//
//	go run ./stages/evaluate/ablation [-bin bin/personcluster] [-work out/ablation] [-png ablation.png] [-json]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer"
	"github.com/personcluster/personcluster/stages/evaluate"
)

// Run is one pipeline run whose fingerprints are swept.
type Run struct {
	Name    string   // source id and folder
	Video   string   // file in the video folder
	Backend string   // a face backend (pipeline.FaceBackends)
	Args    []string // extra run flags
	Truth   string   // truth file (default: the video's .truth.json beside it)
}

// Mode is one way of combining the parts.
type Mode struct {
	Name        string
	FaceWeight  float64
	ClothWeight float64
	ScaleParts  bool
}

var modes = []Mode{
	{"face", 1, 0, false},
	{"cloth", 0, 1, false},
	{"face+cloth", 1, 1, false},
	{"face+1.5cloth", 1, 1.5, false},
	{"face+2cloth", 1, 2, false},
	{"face+cloth scaled", 1, 1, true},
}

// constraints are the clustering constraints swept: none (the original), cannot-links, and
// cannot-links with tracks (the tuned profile).
var constraints = []struct{ cannotLink, tracks bool }{{false, false}, {true, false}, {true, true}}

// Point is one score of the sweep.
type Point struct {
	Run        string  `json:"run"`
	Mode       string  `json:"mode"`
	CannotLink bool    `json:"cannot_link"`
	Tracks     bool    `json:"tracks"` // tracks clustered, not single faces (with cannot-links)
	Sim        float64 `json:"sim"`
	Clusters   int     `json:"clusters"`
	F          float64 `json:"bcubed_f"`
	Precision  float64 `json:"bcubed_precision"`
	Recall     float64 `json:"bcubed_recall"`
	DetRecall  float64 `json:"detection_recall"`
	// Default marks the score at the tuned profile's cut (the face model's calibrated height)
	// rather than at Sim.
	Default bool `json:"default_cut,omitempty"`
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ablation", flag.ContinueOnError)
	bin := fs.String("bin", "bin/personcluster", "personcluster binary that runs the pipeline")
	work := fs.String("work", "out/ablation", "folder for the runs' results (kept: a second sweep reuses them)")
	videos := fs.String("videos", "../shared/testdata/video", "folder of the labelled videos and their .truth.json")
	pngPath := fs.String("png", "out/ablation/ablation.png", "PNG plot of BCubed F against sim (empty: none)")
	asJSON := fs.Bool("json", false, "print every point as JSON")
	only := fs.String("runs", "", "comma-separated run names (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	realTruth := filepath.Join("testdata", "truth", "short_hamilton_clip.mp4.truth.json") // hand-labelled real footage
	runs := []Run{
		{"cast_public-mobilefacenet", "cast_public.mp4", "mobilefacenet", nil, ""},
		{"cast_public-dlib-resnet", "cast_public.mp4", "dlib-resnet", nil, ""},
		{"cast_hard-mobilefacenet", "cast_hard_public.mp4", "mobilefacenet", nil, ""},
		{"cast_hard-dlib-resnet", "cast_hard_public.mp4", "dlib-resnet", nil, ""},
		{"hamilton-mobilefacenet", "short_hamilton_clip.mp4", "mobilefacenet", nil, realTruth},
		{"hamilton-dlib-resnet", "short_hamilton_clip.mp4", "dlib-resnet", nil, realTruth},
		// What the face-quality gate does on real footage, and the earlier detectors.
		{"hamilton-dlib-resnet-nogate", "short_hamilton_clip.mp4", "dlib-resnet", []string{"--gate=false"}, realTruth},
		{"hamilton-dlib-resnet-ultraface320", "short_hamilton_clip.mp4", "dlib-resnet", []string{"--detector", "ultraface-320"}, realTruth},
		{"cast_hard-dlib-resnet-ultraface320", "cast_hard_public.mp4", "dlib-resnet", []string{"--detector", "ultraface-320"}, ""},
		{"cast_hard-dlib-resnet-hog", "cast_hard_public.mp4", "dlib-resnet", []string{"--detector", "dlib-hog"}, ""},
	}
	var points []Point
	for _, r := range runs {
		if *only != "" && !strings.Contains(","+*only+",", ","+r.Name+",") {
			continue
		}
		fp := filepath.Join(*work, r.Name, "fingerprints.json.gz")
		if _, err := os.Stat(fp); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "ablation: running the pipeline on %s with the %s backend\n", r.Video, r.Backend)
			cmdArgs := append([]string{"run", "--source", r.Name, "--out", *work, "--face-backend", r.Backend, "--json"}, r.Args...)
			cmd := exec.Command(*bin, append(cmdArgs, filepath.Join(*videos, r.Video))...)
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("ablation: %s: %w", r.Name, err)
			}
		}
		truthPath := r.Truth
		if truthPath == "" {
			truthPath = filepath.Join(*videos, r.Video+".truth.json")
		}
		truth, err := evaluate.LoadTruth(truthPath)
		if err != nil {
			return err
		}
		p, err := loadParts(fp)
		if err != nil {
			return err
		}
		for _, m := range modes {
			for _, c := range constraints {
				cl := c.cannotLink
				params := messages.DefaultParams()
				params.FaceWeight, params.ClothWeight, params.CannotLink, params.Tracks, params.Cut = m.FaceWeight, m.ClothWeight, cl, c.tracks, messages.CutCalibrated
				def, _ := clusterer.SchemeFor(params, "euclidean", p.model, p.cloth)
				if def.ScaleParts = m.ScaleParts; m.ScaleParts {
					def.Cut = 0 // calibrated for unscaled parts only: scaled parts are cut at sim 0.55
				}
				rep, k, err := p.score(truth, def)
				if err != nil {
					return fmt.Errorf("ablation: %s %s default cut: %w", r.Name, m.Name, err)
				}
				points = append(points, Point{Run: r.Name, Mode: m.Name, CannotLink: cl, Tracks: c.tracks, Sim: def.Sim, Clusters: k, Default: true,
					F: rep.Clustering.BCubed.F, Precision: rep.Clustering.BCubed.Precision, Recall: rep.Clustering.BCubed.Recall,
					DetRecall: rep.All.Recall})
				for s := 1; s <= 19; s++ {
					sim := float64(s) * 0.05
					rep, k, err := p.score(truth, clusterer.Scheme{Method: "average", Metric: "euclidean", MinCSize: 3,
						FaceWeight: m.FaceWeight, ClothWeight: m.ClothWeight, Sim: sim, ScaleParts: m.ScaleParts, CannotLink: cl, TrackLink: def.TrackLink})
					if err != nil {
						return fmt.Errorf("ablation: %s %s sim %.2f: %w", r.Name, m.Name, sim, err)
					}
					points = append(points, Point{Run: r.Name, Mode: m.Name, CannotLink: cl, Tracks: c.tracks, Sim: sim, Clusters: k,
						F: rep.Clustering.BCubed.F, Precision: rep.Clustering.BCubed.Precision, Recall: rep.Clustering.BCubed.Recall,
						DetRecall: rep.All.Recall})
				}
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(points)
	}
	writeTable(stdout, points)
	if *pngPath != "" {
		if err := writePlot(*pngPath, points); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nplot: %s\n", *pngPath)
	}
	return nil
}

// writeTable prints, per run and mode, F at the original's sim 0.55, the best F and its sim.
func writeTable(w io.Writer, points []Point) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tdet recall\tmode\tcannot-link\tF default\tclusters\tF@0.55\tbest F\tat sim\tclusters\tF by sim 0.10 … 0.90")
	type key struct {
		run, mode  string
		cl, tracks bool
	}
	var order []key
	byKey := map[key][]Point{}
	for _, p := range points {
		k := key{p.Run, p.Mode, p.CannotLink, p.Tracks}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], p)
	}
	for _, k := range order {
		ps := byKey[k]
		def := ps[0] // the default cut's point comes first
		ps = ps[1:]
		best := ps[0]
		var at055 Point
		var curve []string
		for _, p := range ps {
			if p.F > best.F {
				best = p
			}
			if fmt.Sprintf("%.2f", p.Sim) == "0.55" {
				at055 = p
			}
			if s := fmt.Sprintf("%.2f", p.Sim); s[len(s)-1] == '0' {
				curve = append(curve, fmt.Sprintf("%.2f", p.F))
			}
		}
		cl := "no"
		if k.cl {
			cl = "yes"
		}
		if k.tracks {
			cl += "+tracks"
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%s\t%s\t%.3f\t%d\t%.3f\t%.3f\t%.2f\t%d\t%s\n", k.run, def.DetRecall, k.mode, cl, def.F, def.Clusters,
			at055.F, best.F, best.Sim, best.Clusters, strings.Join(curve, " "))
	}
	tw.Flush()
}
