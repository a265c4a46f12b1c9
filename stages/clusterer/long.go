package clusterer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
)

// A file source can hold more faces than one clustering takes (Config.MaxFaces: the distances
// grow as n²). With the people gallery on, such a source is clustered like a live one, in
// windows of Quota accepted frames, each linked to gallery people and then forgotten, so
// memory stays flat however long the video; its final result joins the windows' clusters by
// person (one cluster per person, every window's faces). What the windows left is kept in the
// object store, so a restarted clusterer goes on where it stopped. A source that fits is
// clustered at once, as before (the original's single clustering).

// longState is what the windows of a long source left: their clusters joined by person.
type longState struct {
	Windows    int                `json:"windows"`
	Base       int64              `json:"base"` // frames before it were clustered in a window
	Accepted   int64              `json:"accepted"`
	Clusters   []messages.Cluster `json:"clusters"` // one per person, in order of first sight
	Dropped    []messages.Member  `json:"dropped"`
	FaceModel  string             `json:"face_model"`
	ClothModel string             `json:"cloth_model"`
	Bucket     string             `json:"bucket,omitempty"`
	// What the face-quality gate refused in the windows' frames.
	Rejected       []messages.RejectedFace `json:"rejected,omitempty"`
	RejectedCounts map[string]int          `json:"rejected_counts,omitempty"`
}

func longKey(src string) string { return src + "/long-source.json" }

// add joins a window's result: each cluster to its person's.
func (l *longState) add(res *messages.ClusterResult) {
	for _, c := range res.Clusters {
		k := -1
		for i := range l.Clusters {
			if l.Clusters[i].Person == c.Person {
				k = i
				break
			}
		}
		if k < 0 {
			l.Clusters = append(l.Clusters, messages.Cluster{ID: len(l.Clusters), Person: c.Person, Typical: c.Typical}) // the first window's typical face
			k = len(l.Clusters) - 1
		}
		l.Clusters[k].Name = c.Name
		l.Clusters[k].Members = append(l.Clusters[k].Members, c.Members...)
	}
	l.Dropped = append(l.Dropped, res.Dropped...)
	for _, r := range res.Rejected {
		if len(l.Rejected) < messages.MaxRejectedListed {
			l.Rejected = append(l.Rejected, r)
		}
	}
	for reason, n := range res.RejectedCounts {
		if l.RejectedCounts == nil {
			l.RejectedCounts = map[string]int{}
		}
		l.RejectedCounts[reason] += n
	}
	l.FaceModel, l.ClothModel = res.FaceModel, res.ClothModel
	if res.Bucket != "" {
		l.Bucket = res.Bucket
	}
}

// final is the source's final result.
func (l *longState) final(src string, st *sourceState) *messages.ClusterResult {
	res := &messages.ClusterResult{Source: src, Final: true, Params: st.params, FramesSeen: st.prefix, FramesAccepted: l.Accepted,
		Clusters: l.Clusters, Dropped: l.Dropped, FaceModel: l.FaceModel, ClothModel: l.ClothModel, Bucket: l.Bucket,
		Rejected: l.Rejected, RejectedCounts: l.RejectedCounts, AtMillis: time.Now().UnixMilli()}
	if st.eosFace != nil && len(st.eosFace.Reason) >= 6 && st.eosFace.Reason[:6] == "error:" {
		res.Partial = true
	}
	res.Faces = len(res.Dropped)
	for _, c := range res.Clusters {
		res.Faces += len(c.Members)
	}
	return res
}

// linkWindows clusters a file source in windows once it holds more faces than MaxFaces and
// the gallery can link them (a window of the Quota oldest accepted frames at a time; at the
// end, the rest too). It returns the accepted frames left.
func (s *Stage) linkWindows(ctx context.Context, src string, st *sourceState, accepted []int64, ended bool) ([]int64, error) {
	quota := st.params.Quota
	if st.long == nil {
		faces := 0
		for _, seq := range accepted {
			faces += len(st.frames[seq].face.Vectors)
		}
		if faces <= s.cfg.MaxFaces || len(accepted) == 0 || st.params.NoPeople || st.params.FaceWeight == 0 {
			return accepted, nil
		}
		if _, ok := s.cfg.LinkCut(st.frames[accepted[0]].face.Model); !ok {
			return accepted, nil
		}
		if g, err := s.openGallery(ctx); err != nil || g == nil {
			return accepted, err
		}
		s.cfg.Logger.Info("source holds more faces than one clustering takes; clustering it in windows linked by person", "source", src, "faces", faces, "max_faces", s.cfg.MaxFaces)
		st.long = &longState{}
	}
	for len(accepted) >= quota || (ended && len(accepted) > 0) {
		window := accepted[:min(quota, len(accepted))]
		res, err := s.result(ctx, src, st, window, false, fmt.Sprintf("w%d", st.long.Windows))
		if err != nil {
			return accepted, err
		}
		// Stored before the window is forgotten, and taken only once stored: a failure leaves
		// the window to be clustered again.
		next := *st.long
		next.Clusters = slices.Clone(st.long.Clusters)
		next.RejectedCounts = maps.Clone(st.long.RejectedCounts)
		next.add(res)
		next.Windows++
		next.Accepted += int64(len(window))
		next.Base = window[len(window)-1] + 1
		if err := s.saveLong(ctx, src, &next); err != nil {
			return accepted, err
		}
		*st.long = next
		st.forget(next.Base)
		s.purge(ctx, src, st.keepFrom())
		accepted = accepted[len(window):]
	}
	return accepted, nil
}

func (s *Stage) saveLong(ctx context.Context, src string, l *longState) error {
	if s.images == nil {
		return nil // nowhere to keep it: a restart starts the source's windows again
	}
	data, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("clusterer: encoding the windows of %s: %w", src, err)
	}
	if _, err := s.images.PutBytes(ctx, longKey(src), data); err != nil {
		return fmt.Errorf("clusterer: storing the windows of %s: %w", src, err)
	}
	return nil
}

// loadLong restores what a long source's windows left before a restart.
func (s *Stage) loadLong(ctx context.Context, src string, st *sourceState) error {
	if s.images == nil {
		return nil
	}
	data, err := s.images.GetBytes(ctx, longKey(src))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clusterer: reading the windows of %s: %w", src, err)
	}
	var l longState
	if err := json.Unmarshal(data, &l); err != nil {
		return stage.Permanent(fmt.Errorf("clusterer: decoding the windows of %s: %w", src, err))
	}
	st.long = &l
	st.base, st.prefix = l.Base, l.Base
	st.quotaDone = true // windows start after the quota result
	return nil
}

func (s *Stage) dropLong(ctx context.Context, src string) {
	if s.images == nil {
		return
	}
	if err := s.images.Delete(ctx, longKey(src)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		s.cfg.Logger.Warn("deleting a long source's window state failed", "source", src, "err", err)
	}
}
