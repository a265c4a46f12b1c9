package output

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/personcluster/personcluster/messages"
)

// A live source's results are windows (messages.ClusterResult.Window, from 1), each clustered
// alone. Its results.json accumulates them: "face_list" holds the faces of every window, each
// with its window, its window's cluster and its person, so one file says who appeared when;
// the other fields are the latest window's, with "faces", "frames_seen", "frames_accepted" and
// "rejected_counts" summed over the windows and "windows" counting them. The folder's crops,
// montage and page are the latest window's, so only that window's faces name an "image".
//
// The file is rewritten a face at a time (its summary first, the face list last), so memory
// stays flat however long the source runs. Window 1 starts the file afresh (a new run of the
// source); a window the file already holds changes nothing (a watcher reading the stored
// results again); a later one is added, even after a gap (a watcher that started late).

// liveSummary is what results.json holds besides its face list.
type liveSummary struct {
	*messages.ClusterResult
	Windows int `json:"windows"`
}

// liveFile is what is read back of an existing results.json: the fields summed over windows.
type liveFile struct {
	Window         int            `json:"window"`
	Windows        int            `json:"windows"`
	Faces          int            `json:"faces"`
	FramesSeen     int64          `json:"frames_seen"`
	FramesAccepted int64          `json:"frames_accepted"`
	RejectedCounts map[string]int `json:"rejected_counts"`
}

const faceListKey = "face_list"

// openLive opens results.json and reads its summary, leaving dec at the start of the face list
// (nil file, no error: there is no live file to go on from).
func openLive(path string) (*os.File, *json.Decoder, *liveFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("output: %w", err)
	}
	dec := json.NewDecoder(bufio.NewReader(f))
	summary := map[string]json.RawMessage{}
	ok := false
	if t, err := dec.Token(); err == nil && t == json.Delim('{') {
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				break
			}
			key, _ := t.(string)
			if key == faceListKey {
				if t, err := dec.Token(); err == nil && t == json.Delim('[') {
					ok = true
				}
				break
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				break
			}
			summary[key] = v
		}
	}
	var lf liveFile
	if ok {
		raw, _ := json.Marshal(summary)
		ok = json.Unmarshal(raw, &lf) == nil && lf.Window > 0
	}
	if !ok {
		// Not a live source's file (a file source's result, an older layout): start afresh.
		f.Close()
		return nil, nil, nil, nil
	}
	return f, dec, &lf, nil
}

// staleWindow reports whether results.json under root already holds a later window than r, a
// live window: r is a stored result read again, and the folder is left as it is.
func staleWindow(root string, r *messages.ClusterResult) (bool, error) {
	if r.Window <= 1 {
		return false, nil
	}
	f, _, lf, err := openLive(filepath.Join(root, "results.json"))
	if f != nil {
		f.Close()
	}
	return lf != nil && r.Window < lf.Window, err
}

// writeLiveResults adds the faces of window r to results.json under root.
func writeLiveResults(root string, r *messages.ClusterResult) error {
	path := filepath.Join(root, "results.json")
	var old *os.File
	var dec *json.Decoder
	var lf *liveFile
	if r.Window > 1 {
		var err error
		if old, dec, lf, err = openLive(path); err != nil {
			return err
		}
	}
	if old != nil {
		defer old.Close()
		if r.Window <= lf.Window {
			return nil // already there
		}
	}
	tmp, err := os.CreateTemp(root, ".results-*.json")
	if err != nil {
		return fmt.Errorf("output: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing
	w := bufio.NewWriter(tmp)
	summary := *r
	windows := 1
	if lf != nil {
		windows = lf.Windows + 1
		summary.Faces += lf.Faces
		summary.FramesSeen += lf.FramesSeen
		summary.FramesAccepted += lf.FramesAccepted
		if len(lf.RejectedCounts) > 0 {
			counts := map[string]int{}
			for k, n := range lf.RejectedCounts {
				counts[k] += n
			}
			for k, n := range r.RejectedCounts {
				counts[k] += n
			}
			summary.RejectedCounts = counts
		}
	}
	head, err := json.MarshalIndent(liveSummary{ClusterResult: &summary, Windows: windows}, "", "  ")
	if err != nil {
		tmp.Close()
		return fmt.Errorf("output: %w", err)
	}
	// The summary without its closing brace, then the face list, one face a line.
	w.Write(head[:len(head)-2])
	fmt.Fprintf(w, ",\n  %q: [", faceListKey)
	first := true
	put := func(rec FaceRecord) error {
		line, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if !first {
			w.WriteByte(',')
		}
		first = false
		w.WriteString("\n    ")
		_, err = w.Write(line)
		return err
	}
	if dec != nil {
		for dec.More() {
			var rec FaceRecord
			if err := dec.Decode(&rec); err != nil {
				tmp.Close()
				return fmt.Errorf("output: reading %s: %w", path, err)
			}
			rec.Image = "" // its crop was the folder of a window since replaced
			if err := put(rec); err != nil {
				tmp.Close()
				return fmt.Errorf("output: %w", err)
			}
		}
	}
	for _, rec := range FaceRecords(r) {
		if err := put(rec); err != nil {
			tmp.Close()
			return fmt.Errorf("output: %w", err)
		}
	}
	w.WriteString("\n  ]\n}\n")
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("output: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}
