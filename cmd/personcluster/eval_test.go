//go:build !lean

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/evaluate"
	"github.com/personcluster/personcluster/stages/output"
)

// Two frames, two people each; the result puts one of ann's faces with bob.
const evalTruth = `{"video":"v.mp4","box_order":"top,right,bottom,left","identities":["ann","bob"],
 "frames":[{"frame":0,"people":[{"identity":"ann","box":[0,50,50,0]},{"identity":"bob","box":[0,150,50,100]}]},
           {"frame":1,"people":[{"identity":"ann","box":[0,50,50,0]},{"identity":"bob","box":[0,150,50,100]}]},
           {"frame":2,"people":[{"identity":"ann","box":[0,50,50,0]},{"identity":"bob","box":[0,150,50,100]}]}]}`

func castResult() *messages.ClusterResult {
	ann, bob := messages.Box{0, 50, 50, 0}, messages.Box{0, 150, 50, 100}
	return &messages.ClusterResult{Source: "v", Final: true, Params: messages.DefaultParams(), Faces: 6,
		Clusters: []messages.Cluster{
			{ID: 0, Members: []messages.Member{{Frame: 0, Face: 0, Box: ann}, {Frame: 1, Face: 0, Box: ann}}},
			{ID: 1, Members: []messages.Member{{Frame: 0, Face: 1, Box: bob}, {Frame: 1, Face: 1, Box: bob}, {Frame: 2, Face: 1, Box: bob}, {Frame: 2, Face: 0, Box: ann}}},
		}}
}

func TestEvalCommand(t *testing.T) {
	dir := t.TempDir()
	truthPath := filepath.Join(dir, "v.truth.json")
	if err := os.WriteFile(truthPath, []byte(evalTruth), 0o644); err != nil {
		t.Fatal(err)
	}
	r := castResult()
	data, _ := json.Marshal(output.NewResults(r))
	resDir := filepath.Join(dir, "out", "v")
	if err := os.MkdirAll(resDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(resDir, "results.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := runEval([]string{resDir, "--truth", truthPath}, &table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "BCubed") || !strings.Contains(table.String(), "1.0000") {
		t.Errorf("table:\n%s", table.String())
	}
	var js bytes.Buffer
	if err := runEval([]string{"--json", "--truth", truthPath, resDir}, &js); err != nil {
		t.Fatal(err)
	}
	var rep evaluate.Report
	if err := json.Unmarshal(js.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	// ann: 2 of her 3 faces together (precision 1, recall 2/3); bob's cluster holds one of ann's.
	if rep.All.Recall != 1 || rep.Clustering.Clusters != 2 || rep.Clustering.BCubed.Precision >= 1 || rep.Clustering.BCubed.F <= 0.5 {
		t.Errorf("report %+v", rep.Clustering)
	}
	// run --truth scores the same result the same way.
	var fromRun bytes.Buffer
	if err := printEvaluation(&fromRun, mustTruth(t, truthPath), r, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(fromRun.Bytes()), bytes.TrimSpace(js.Bytes())) {
		t.Errorf("run --truth:\n%s\neval:\n%s", fromRun.String(), js.String())
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{resDir}, ""},
		{[]string{"--truth", truthPath}, ""},
		{[]string{"--truth", filepath.Join(dir, "missing.json"), resDir}, "missing.json"},
		{[]string{"--truth", truthPath, "--iou", "1.5", resDir}, "--iou"},
		{[]string{"--truth", truthPath, filepath.Join(dir, "nothing-here")}, "nothing-here"},
	} {
		var out bytes.Buffer
		err := runEval(c.args, &out)
		if err == nil {
			t.Errorf("%v: accepted", c.args)
			continue
		}
		if c.want == "" && !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want usage", c.args, err)
		}
		if c.want != "" && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v does not name %q", c.args, err, c.want)
		}
	}
}

func mustTruth(t *testing.T, path string) *evaluate.Truth {
	t.Helper()
	tr, err := evaluate.LoadTruth(path)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
