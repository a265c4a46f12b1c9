// Package output turns a ClusterResult into what people look at, as the original did: one
// folder per cluster with its members' upper-body images, a montage (one column per cluster),
// results.json and an index.html that opens from disk. Pure Go.
package output

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	Window  int          `json:"window,omitempty"` // a live source's window the face is in (its cluster is that window's)
	Image   string       `json:"image,omitempty"`
}

// Results is results.json and what `run --json` prints: the result ("faces" is its number of
// faces) and every face as a record ("face_list"). The list has its own Go and JSON name so it
// cannot shadow the count.
type Results struct {
	*messages.ClusterResult
	FaceList []FaceRecord `json:"face_list"`
}

// NewResults is results.json of r.
func NewResults(r *messages.ClusterResult) Results {
	return Results{ClusterResult: r, FaceList: FaceRecords(r)}
}

// FaceRecords lists every face of a result, members first, with its cluster (−1 if dropped)
// and the crop's file in the folder (none where the result stored no crop).
func FaceRecords(r *messages.ClusterResult) []FaceRecord {
	var out []FaceRecord
	for _, c := range r.Clusters {
		for _, m := range c.Members {
			rec := FaceRecord{Frame: m.Frame, PTS: m.PTSMillis, Box: m.Box, Cluster: c.ID, Person: c.Person, Window: r.Window}
			if m.Image != "" {
				rec.Image = memberFile(c.ID, m)
			}
			out = append(out, rec)
		}
	}
	for _, m := range r.Dropped {
		out = append(out, FaceRecord{Frame: m.Frame, PTS: m.PTSMillis, Box: m.Box, Cluster: -1, Window: r.Window})
	}
	return out
}

func memberFile(cluster int, m messages.Member) string {
	return filepath.ToSlash(filepath.Join("clusters", fmt.Sprint(cluster), fmt.Sprintf("frame%06d_face%d.jpg", m.Frame, m.Face)))
}

// montageSpares is how many crops per person beyond MaxMontageRows Write keeps in memory for
// its montage after writing them (stand-ins for crops that do not decode); any other crop the
// montage needs is fetched again.
const montageSpares = 4

// Fetcher returns a stored object by key (nil, nil if it does not exist).
type Fetcher func(key string) ([]byte, error)

// Write writes the result folder under dir/<source>, fetching images and fingerprints by key. dir must exist or be creatable; the
// source id was validated (messages.ValidateSourceID), so it cannot escape dir.
func Write(dir string, r *messages.ClusterResult, fetch Fetcher) (string, error) {
	if err := messages.ValidateSourceID(r.Source); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	root := filepath.Join(dir, r.Source)
	if stale, err := staleWindow(root, r); err != nil || stale {
		return root, err
	}
	if err := os.RemoveAll(filepath.Join(root, "clusters")); err != nil {
		return "", fmt.Errorf("output: clearing %s: %w", root, err)
	}
	// A result with no clusters still gets its folder (results.json, an empty montage, fingerprints).
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	crops := map[string][]byte{} // fetched for the files, kept for the montage
	for _, c := range r.Clusters {
		cdir := filepath.Join(root, "clusters", fmt.Sprint(c.ID))
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return "", fmt.Errorf("output: %w", err)
		}
		kept := 0
		for _, m := range typicalFirst(c) {
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
			if kept < MaxMontageRows+montageSpares {
				crops[m.Image] = data
				kept++
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
		if err := writeNPYFingerprints(root, r.Fingerprints, fetch); err != nil {
			return "", err
		}
	}
	if r.Window > 0 {
		if err := writeLiveResults(root, r); err != nil {
			return "", err
		}
	} else {
		js, err := json.MarshalIndent(NewResults(r), "", "  ")
		if err != nil {
			return "", fmt.Errorf("output: %w", err)
		}
		if err := os.WriteFile(filepath.Join(root, "results.json"), js, 0o644); err != nil {
			return "", fmt.Errorf("output: %w", err)
		}
	}
	montage, err := NewThumbnails(96).ResultMontage(r, func(key string) ([]byte, error) {
		if data, ok := crops[key]; ok {
			return data, nil
		}
		return fetch(key)
	})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "montage.png"), montage, 0o644); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	var page bytes.Buffer
	if err := WritePage(&page, r, DiskLinks()); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "index.html"), page.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("output: %w", err)
	}
	return root, nil
}
