package evaluate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// BoxOrder is the only box order the truth format uses.
const BoxOrder = "top,right,bottom,left"

// Truth is a ground-truth file (the format of testdata/video/*.truth.json).
type Truth struct {
	Video                string           `json:"video"`
	FPS                  float64          `json:"fps"`
	Width                int              `json:"width"`
	Height               int              `json:"height"`
	BoxOrder             string           `json:"box_order"` // "" or BoxOrder
	Identities           []string         `json:"identities"`
	SharedOutfits        [][]string       `json:"shared_outfits,omitempty"`
	OutfitChangesAtFrame map[string]int64 `json:"outfit_changes_at_frame,omitempty"`
	Frames               []TruthFrame     `json:"frames"`
	// LabelledBy says how the labels were made (hand-labelled real footage says so here).
	LabelledBy string `json:"labelled_by,omitempty"`
}

// TruthFrame lists the people visible in one frame and, in hand-labelled real footage, what
// else a detector proposes there.
type TruthFrame struct {
	Frame  int64    `json:"frame"` // 0-based
	People []Person `json:"people"`
	// Unclear are real faces too blurred, dark, small or hidden to tell who they are: a result
	// face on one is neither a false face nor scored in the clustering.
	Unclear []Box `json:"unclear,omitempty"`
	// NonFaces are boxes a detector proposed that are not faces (a hand, hair, a logo); a result
	// face on one counts as a false face, as does any result face matching nothing.
	NonFaces []NonFace `json:"non_faces,omitempty"`
}

// NonFace is a labelled box that is not a face, with what it shows.
type NonFace struct {
	Box  Box    `json:"box"`
	What string `json:"what"`
}

// Person is one labelled face.
type Person struct {
	Identity string `json:"identity"`
	Box      Box    `json:"box"` // top, right, bottom, left
}

// Validate checks a truth: at least one frame, frame numbers non-negative and unique, boxes not
// empty, identities non-empty, listed in Identities when that list is given, and at most once per
// frame.
func (t *Truth) Validate() error {
	if t.BoxOrder != "" && strings.ReplaceAll(t.BoxOrder, " ", "") != BoxOrder {
		return fmt.Errorf("evaluate: truth box_order %q: only %q is supported", t.BoxOrder, BoxOrder)
	}
	if math.IsNaN(t.FPS) || math.IsInf(t.FPS, 0) || t.FPS < 0 || t.Width < 0 || t.Height < 0 {
		return fmt.Errorf("evaluate: truth fps %v or size %dx%d is negative or not finite", t.FPS, t.Width, t.Height)
	}
	if len(t.Frames) == 0 {
		return errors.New("evaluate: truth has no frames")
	}
	known := map[string]bool{}
	for i, id := range t.Identities {
		if id == "" {
			return fmt.Errorf("evaluate: truth identity %d is empty", i)
		}
		if known[id] {
			return fmt.Errorf("evaluate: truth identity %q listed twice", id)
		}
		known[id] = true
	}
	seen := map[int64]bool{}
	for i, fr := range t.Frames {
		if fr.Frame < 0 {
			return fmt.Errorf("evaluate: truth frames[%d]: negative frame %d", i, fr.Frame)
		}
		if seen[fr.Frame] {
			return fmt.Errorf("evaluate: truth frame %d listed twice", fr.Frame)
		}
		seen[fr.Frame] = true
		inFrame := map[string]bool{}
		for j, p := range fr.People {
			switch {
			case p.Identity == "":
				return fmt.Errorf("evaluate: truth frame %d, person %d: empty identity", fr.Frame, j)
			case len(known) > 0 && !known[p.Identity]:
				return fmt.Errorf("evaluate: truth frame %d, person %d: identity %q not in identities", fr.Frame, j, p.Identity)
			case inFrame[p.Identity]:
				return fmt.Errorf("evaluate: truth frame %d: identity %q appears twice", fr.Frame, p.Identity)
			}
			inFrame[p.Identity] = true
			if err := p.Box.valid(); err != nil {
				return fmt.Errorf("evaluate: truth frame %d, person %d (%s): %w", fr.Frame, j, p.Identity, err)
			}
		}
		for j, b := range fr.Unclear {
			if err := b.valid(); err != nil {
				return fmt.Errorf("evaluate: truth frame %d, unclear face %d: %w", fr.Frame, j, err)
			}
		}
		for j, nf := range fr.NonFaces {
			if err := nf.Box.valid(); err != nil {
				return fmt.Errorf("evaluate: truth frame %d, non-face %d (%s): %w", fr.Frame, j, nf.What, err)
			}
		}
	}
	return nil
}

// DecodeTruth reads and validates a truth file.
func DecodeTruth(r io.Reader) (*Truth, error) {
	var t Truth
	if err := decodeOne(r, &t); err != nil {
		return nil, fmt.Errorf("evaluate: truth: %w", err)
	}
	if t.Frames == nil {
		return nil, errors.New(`evaluate: truth: not a ground-truth file (no "frames" list)`)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// LoadTruth reads and validates a truth file from disk.
func LoadTruth(path string) (*Truth, error) {
	return decodeFile(path, DecodeTruth)
}

// decodeFile opens path and decodes it with decode; decode's errors name the file.
func decodeFile[T any](path string, decode func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("evaluate: %w", err)
	}
	defer f.Close()
	v, err := decode(f)
	if err != nil {
		return zero, fmt.Errorf("%w (%s)", err, path)
	}
	return v, nil
}

// results is what DecodeResults reads of results.json: its face list ("face_list"; "faces" in
// files written before the count took that name back), or failing that its clusters and
// dropped faces (a bare ClusterResult, as the clusterer publishes it, where "faces" is the
// number of faces).
type results struct {
	FaceList json.RawMessage `json:"face_list"`
	Faces    json.RawMessage `json:"faces"`
	Clusters json.RawMessage `json:"clusters"`
	Dropped  json.RawMessage `json:"dropped"`
}

type resultCluster struct {
	ID      int            `json:"id"`
	Members []resultMember `json:"members"`
}

type resultMember struct {
	Frame int64 `json:"frame"`
	Box   Box   `json:"box"`
}

// DecodeResults reads the faces of a results.json (written by `personcluster run --out DIR`): its
// "face_list" (or an older file's "faces" list), or, when there is no list (a bare ClusterResult), the members of its
// "clusters" and "dropped" (cluster −1). A JSON object with none of these is an error, so a
// truth file given in the place of results is caught.
func DecodeResults(r io.Reader) ([]Face, error) {
	var res results
	if err := decodeOne(r, &res); err != nil {
		return nil, fmt.Errorf("evaluate: results: %w", err)
	}
	var faces []Face
	list := bytes.TrimSpace(res.Faces)
	if res.FaceList != nil {
		list = bytes.TrimSpace(res.FaceList)
	}
	isNull := string(list) == "null"
	switch {
	case len(list) > 0 && list[0] == '[':
		var recs []faceRecord
		if err := json.Unmarshal(list, &recs); err != nil {
			return nil, fmt.Errorf("evaluate: results: faces: %w", err)
		}
		faces = byIdentity(recs)
	case len(list) > 0 && !isNull && !strings.ContainsRune("-0123456789", rune(list[0])):
		return nil, fmt.Errorf("evaluate: results: faces is neither a list nor a count: %.20s", list)
	case isNull || res.Clusters != nil || res.Dropped != nil:
		var clusters []resultCluster
		var dropped []resultMember
		if err := unmarshalIfAny(res.Clusters, &clusters); err != nil {
			return nil, fmt.Errorf("evaluate: results: clusters: %w", err)
		}
		if err := unmarshalIfAny(res.Dropped, &dropped); err != nil {
			return nil, fmt.Errorf("evaluate: results: dropped: %w", err)
		}
		for _, c := range clusters {
			if c.ID < 0 {
				return nil, fmt.Errorf("evaluate: results: cluster id %d < 0", c.ID)
			}
			for _, m := range c.Members {
				faces = append(faces, Face{Frame: m.Frame, Box: m.Box, Cluster: c.ID})
			}
		}
		for _, m := range dropped {
			faces = append(faces, Face{Frame: m.Frame, Box: m.Box, Cluster: Dropped})
		}
	default:
		return nil, errors.New(`evaluate: results: not a personcluster results file (no "faces", "clusters" or "dropped" list)`)
	}
	if err := validateFaces(faces); err != nil {
		return nil, err
	}
	return faces, nil
}

// faceRecord is one face of a results.json face list.
type faceRecord struct {
	Face
	Person string `json:"person"`
	Window int    `json:"window"`
}

// byIdentity returns the faces of a face list. A live source's list holds many windows, each
// numbering its clusters from 0: there a face's cluster is its person (the gallery's identity
// across windows), or without one its window's cluster apart from every other window's.
func byIdentity(recs []faceRecord) []Face {
	faces := make([]Face, len(recs))
	live := false
	for i, r := range recs {
		faces[i] = r.Face
		live = live || r.Window > 0
	}
	if !live {
		return faces
	}
	ids := map[string]int{}
	for i, r := range recs {
		if r.Cluster < 0 {
			continue
		}
		key := r.Person
		if key == "" {
			key = fmt.Sprintf("window %d cluster %d", r.Window, r.Cluster)
		}
		k, ok := ids[key]
		if !ok {
			k = len(ids)
			ids[key] = k
		}
		faces[i].Cluster = k
	}
	return faces
}

func unmarshalIfAny(data json.RawMessage, v any) error {
	if data == nil {
		return nil
	}
	return json.Unmarshal(data, v)
}

// ResultsFile finds results.json from a path: the file itself, a result folder (DIR/<source>)
// holding results.json, or an output folder (DIR) holding exactly one <source>/results.json.
func ResultsFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("evaluate: %w", err)
	}
	if !st.IsDir() {
		return path, nil
	}
	if p := filepath.Join(path, "results.json"); fileExists(p) {
		return p, nil
	}
	found, _ := filepath.Glob(filepath.Join(path, "*", "results.json"))
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("evaluate: no results.json in %s or its subfolders", path)
	default:
		return "", fmt.Errorf("evaluate: %d sources in %s: name one (%s, ...)", len(found), path, filepath.Dir(found[0]))
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// LoadResults reads the faces of a results.json from disk (see ResultsFile for the paths it takes).
func LoadResults(path string) ([]Face, error) {
	p, err := ResultsFile(path)
	if err != nil {
		return nil, err
	}
	return decodeFile(p, DecodeResults)
}

// decodeOne decodes exactly one JSON object from r.
func decodeOne(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return errors.New("empty file")
	}
	if trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.InputOffset() != int64(len(trimmed)) {
		return errors.New("data after the JSON object")
	}
	return nil
}
