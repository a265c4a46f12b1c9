//go:build !lean

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

func peopleCmd(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := runPeople(ctx, append([]string{"--nats", url}, args...), &out)
	return out.String(), err
}

// seedPeople links one window of two well-apart faces (16 faces each) and returns their ids.
func seedPeople(t *testing.T, env *stagetest.Env) (string, string) {
	t.Helper()
	g, err := people.Open(context.Background(), env.JS)
	if err != nil {
		t.Fatal(err)
	}
	var clusters []people.Cluster
	for who := range 2 {
		var c people.Cluster
		for i := range 16 {
			v := make([]float32, 8)
			v[who] = 1
			v[2+i%6] = 0.1 // a little spread, so exemplars differ
			c.Faces = append(c.Faces, people.Face{Vector: v, Frame: int64(i)})
		}
		clusters = append(clusters, c)
	}
	links, err := g.Link(context.Background(), people.Window{ID: "lobby.final", Source: "lobby", Model: "test-8", Cut: 0.5, AtMillis: time.Now().UnixMilli(), Clusters: clusters})
	if err != nil {
		t.Fatal(err)
	}
	return links[0].Person, links[1].Person
}

func TestPeopleCommands(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	url := env.Server.ClientURL()
	a, b := seedPeople(t, env)
	out, err := peopleCmd(t, url, "list")
	if err != nil || !strings.Contains(out, a) || !strings.Contains(out, b) || !strings.Contains(out, "lobby frame 0") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err = peopleCmd(t, url, "name", a, "Ann Lee"); err != nil || !strings.Contains(out, `"Ann Lee"`) {
		t.Fatalf("name: %v\n%s", err, out)
	}
	// Flags after the arguments, as after the subcommand.
	out, err = peopleCmd(t, url, "show", a, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Faces     int64  `json:"faces"`
		Exemplars []any  `json:"exemplars"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Name != "Ann Lee" || shown.Faces != 16 || len(shown.Exemplars) == 0 {
		t.Fatalf("show --json: %v %+v\n%s", err, shown, out)
	}
	if out, err = peopleCmd(t, url, "split", a, "0", "1"); err != nil || !strings.Contains(out, "split 2 exemplars") {
		t.Fatalf("split: %v\n%s", err, out)
	}
	m := regexp.MustCompile(` into (p[a-z0-9]+);`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("split named no new person: %s", out)
	}
	split := m[1]
	if out, err = peopleCmd(t, url, "show", a); err != nil || !strings.Contains(out, "kept apart from ["+split+"]") {
		t.Fatalf("show after split (new person %s): %v\n%s", split, err, out)
	}
	if out, err = peopleCmd(t, url, "merge", a, b); err != nil || !strings.Contains(out, "merged "+b+" into "+a) {
		t.Fatalf("merge: %v\n%s", err, out)
	}
	if out, err = peopleCmd(t, url, "show", b); err != nil || !strings.Contains(out, "(merged into "+a+")") {
		t.Fatalf("show a merged id: %v\n%s", err, out)
	}
	if out, err = peopleCmd(t, url, "forget", split); err != nil || !strings.Contains(out, "forgot "+split) {
		t.Fatalf("forget: %v\n%s", err, out)
	}
	out, err = peopleCmd(t, url, "list", "--json")
	var listed []struct {
		ID string `json:"id"`
	}
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 1 || listed[0].ID != a {
		t.Fatalf("list --json after merge and forget: %v\n%s", err, out)
	}
}

// Bad input gets a clear error, before anything is changed.
func TestPeopleCommandsRefuseBadInput(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	url := env.Server.ClientURL()
	a, _ := seedPeople(t, env)
	before, err := peopleCmd(t, url, "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want error
		msg  string
	}{
		{"unknown id", []string{"show", "pzzzzzzz"}, people.ErrUnknownPerson, "pzzzzzzz"},
		{"name an unknown id", []string{"name", "pzzzzzzz", "Ann"}, people.ErrUnknownPerson, "pzzzzzzz"},
		{"merge an unknown id", []string{"merge", a, "pzzzzzzz"}, people.ErrUnknownPerson, "pzzzzzzz"},
		{"merge into an unknown id", []string{"merge", "pzzzzzzz", a}, people.ErrUnknownPerson, "pzzzzzzz"},
		{"split an unknown id", []string{"split", "pzzzzzzz", "0"}, people.ErrUnknownPerson, "pzzzzzzz"},
		{"forget an unknown id", []string{"forget", "pzzzzzzz"}, people.ErrUnknownPerson, "pzzzzzzz"},
		{"blank name", []string{"name", a, " \t "}, people.ErrBadName, "empty"},
		{"name with a newline", []string{"name", a, "Ann\nLee"}, people.ErrBadName, "control character"},
		{"name with a bidi override", []string{"name", a, "Ann\u202eeeL"}, people.ErrBadName, "U+202E"},
		{"name with an escape sequence", []string{"name", a, "\x1b[2JAnn"}, people.ErrBadName, "control character"},
		{"name not UTF-8", []string{"name", a, "Ann\xc3"}, people.ErrBadName, "UTF-8"},
		{"split a negative exemplar", []string{"split", a, "--", "-1"}, people.ErrBadRequest, "not an exemplar number"},
		{"not an id", []string{"forget", "../../etc"}, people.ErrUnknownPerson, "not an id"},
		{"merge with itself", []string{"merge", a, a}, people.ErrBadRequest, "itself"},
		{"empty name", []string{"name", a, ""}, people.ErrBadName, "empty"},
		{"too long a name", []string{"name", a, strings.Repeat("é", 65)}, people.ErrBadName, "at most 64"},
		{"control character", []string{"name", a, "Ann\x07"}, people.ErrBadName, "control character"},
		{"split by a word", []string{"split", a, "first"}, people.ErrBadRequest, "not an exemplar number"},
		{"split out of range", []string{"split", a, "99"}, people.ErrBadRequest, "exemplar 99"},
		{"no arguments", []string{"name", a}, errUsage, "usage"},
		{"unknown subcommand", []string{"rename", a, "x"}, errUsage, "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := peopleCmd(t, url, tc.args...)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
	if after, err := peopleCmd(t, url, "list", "--json"); err != nil || after != before {
		t.Errorf("the gallery changed:\n%s\nthen\n%s", before, after)
	}
	// A name starting with '-' goes after "--".
	if out, err := peopleCmd(t, url, "name", a, "--", "-Ann-"); err != nil || !strings.Contains(out, `"-Ann-"`) {
		t.Errorf("name after --: %v\n%s", err, out)
	}
}
