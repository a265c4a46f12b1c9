package people_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer"
	"github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

const fingerprintsKey = "src/fingerprints-final.json.gz"

// publishResult stores the final result of source "src" as the clusterer would: two clusters
// of four faces (frames 0–3 and 10–13, face 0, crops src/faces/<frame>-0.jpg) linked to the
// given people, and its fingerprint file.
func publishResult(t *testing.T, env *stagetest.Env, images jetstream.ObjectStore, links []people.Link) {
	t.Helper()
	ctx := context.Background()
	res := &messages.ClusterResult{Source: "src", Final: true, Params: messages.DefaultParams(), Bucket: stage.ImagesBucket, Fingerprints: fingerprintsKey}
	var members []messages.Member
	var points [][]float64
	for ci, l := range links {
		c := messages.Cluster{ID: ci, Person: l.Person}
		for fi := range 4 {
			frame := int64(10*ci + fi)
			m := messages.Member{Seq: frame, Frame: frame, Box: messages.Box{0, 10, 10, 0}, Image: fmt.Sprintf("src/faces/%06d-0.jpg", frame)}
			c.Members = append(c.Members, m)
			members = append(members, m)
			points = append(points, []float64{float64(frame), 1})
		}
		res.Clusters = append(res.Clusters, c)
	}
	fp, err := clusterer.EncodeFingerprints(res, points, members, "euclidean")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.PutBytes(ctx, fingerprintsKey, fp); err != nil {
		t.Fatal(err)
	}
	msg, err := stage.EncodeMsg(stage.Output{Subject: messages.Subject(messages.SubjectResults, "src"), MsgID: "src.result.final", Message: res})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

func readFingerprints(t *testing.T, images jetstream.ObjectStore) clusterer.FingerprintFile {
	t.Helper()
	data, err := images.GetBytes(context.Background(), fingerprintsKey)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var f clusterer.FingerprintFile
	if err := json.NewDecoder(zr).Decode(&f); err != nil {
		t.Fatal(err)
	}
	return f
}
