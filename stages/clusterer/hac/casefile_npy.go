package hac

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/personcluster/personcluster/stages/clusterer/hac/npy"
)

// A case can also be saved as points in NumPy's .npy format (n × d,
// float32 or float64; np.load reads it) with its parameters in a JSON
// sidecar beside it: the case object without "points" (SidecarPath). This
// reads several times faster than the JSON case, and Python users can load
// and save the vectors directly.

// SidecarPath is the parameter file of the .npy points file at path: the
// same name with ".json" added (fingerprints.npy → fingerprints.npy.json).
func SidecarPath(path string) string { return path + ".json" }

// isNPY reports whether the file at path starts with NumPy's magic.
func isNPY(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("hac: %w", err)
	}
	defer f.Close()
	head := make([]byte, len(npy.Magic))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("hac: %w", err)
	}
	return bytes.Equal(head[:n], []byte(npy.Magic)), nil
}

// ReadNPYCase reads a case saved as a .npy points file and its sidecar
// (SidecarPath). Without a sidecar the case takes DecodeCase's defaults.
// A sidecar that carries points is rejected: they belong in the .npy.
func ReadNPYCase(path string) (*Case, error) {
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	points, err := a.Rows()
	if err != nil {
		return nil, fmt.Errorf("%w: %w (file %s)", ErrBadInput, err, path)
	}
	var cj caseJSON
	side := SidecarPath(path)
	switch text, err := os.ReadFile(side); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("hac: sidecar: %w", err)
	default:
		if err := decodeJSON(bytes.NewReader(text), &cj); err != nil {
			return nil, fmt.Errorf("%w (file %s)", err, side)
		}
		if len(cj.Points) > 0 {
			return nil, fmt.Errorf("%w: sidecar %s has points; they belong in %s", ErrBadInput, side, path)
		}
	}
	cj.Points = pointsJSON(points)
	c := cj.toCase()
	if err := c.Params().Validate(); err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, side)
	}
	if len(c.Points) == 0 {
		return nil, fmt.Errorf("%w: %s has no points", ErrTooFewPoints, path)
	}
	if c.Timestamps != nil && len(c.Timestamps) != len(c.Points) {
		return nil, fmt.Errorf("%w: %s has %d timestamps for %d points", ErrBadInput, side, len(c.Timestamps), len(c.Points))
	}
	return &c, nil
}

// WriteNPYCase saves c as path (.npy, float64 so values stay exact) and its
// sidecar; Expected is not written.
func WriteNPYCase(path string, c *Case) error {
	var pts bytes.Buffer
	if err := npy.EncodeRows(&pts, c.Points, false); err != nil {
		return fmt.Errorf("hac: %w", err)
	}
	params := sidecar{Name: c.Name, Method: c.Method, Metric: c.Metric, Sim: c.Sim, MinCSize: c.MinCSize,
		Timestamps: c.Timestamps, Alpha: c.Alpha, TruePerson: c.TruePerson}
	var side bytes.Buffer
	if err := jsonEncode(&side, params); err != nil {
		return err
	}
	if err := os.WriteFile(path, pts.Bytes(), 0o644); err != nil {
		return fmt.Errorf("hac: %w", err)
	}
	if err := os.WriteFile(SidecarPath(path), side.Bytes(), 0o644); err != nil {
		return fmt.Errorf("hac: %w", err)
	}
	return nil
}

// sidecar is a case's parameters without its points.
type sidecar struct {
	Name       string    `json:"name,omitempty"`
	Method     string    `json:"method"`
	Metric     string    `json:"metric"`
	Sim        float64   `json:"sim"`
	MinCSize   int       `json:"min_csize"`
	Timestamps []float64 `json:"timestamps,omitempty"`
	Alpha      float64   `json:"alpha,omitempty"`
	TruePerson []int     `json:"true_person,omitempty"`
}
