package deploytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/proctest"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/pipeline"
)

// unexercised are permissions of deploy/nats/auth.conf that a clean run does not use: dead
// letters (only bad input makes them) and the ingest user's writes to the sources bucket
// (only `ingest --cancel`).
func unexercised(user, pattern string) bool {
	return strings.HasPrefix(pattern, messages.SubjectDead+".") || (user == "ingest" && pattern == "$KV.personcluster-sources.>") ||
		// Overwriting a stored crop purges its old chunks: only a restarted clusterer, which
		// no longer knows what it stored, writes a crop twice.
		(user == "clusterer" && pattern == "$JS.API.STREAM.PURGE.OBJ_personcluster-images") ||
		// watch: a final result already stored when it starts, the live UI (--http), flow
		// control of a large object and consumers deleted on a stop this run does not reach.
		(user == "watch" && slices.Contains([]string{"$JS.FC.OBJ_personcluster-images.>", "$JS.API.STREAM.INFO.PC_RESULTS",
			"$JS.API.STREAM.MSG.GET.PC_RESULTS", "$JS.API.CONSUMER.DELETE.PC_RESULTS.>", "$JS.API.STREAM.INFO.PC_DEAD",
			"$JS.API.CONSUMER.DELETE.PC_DEAD.>", "results.>"}, pattern))
}

// TestLeastPrivilege runs the pipeline (one server process with tracing on, every stage as its
// own process and user, ingest, and watch saving the result folder) against the users of
// deploy/nats/auth.conf and reads the server's trace of every PUB and SUB: the run needs no
// subject outside each user's permissions (no violation, result complete), and every permission
// was used (none could be dropped) apart from those that only bad input, --cancel or a restart use.
func TestLeastPrivilege(t *testing.T) {
	skipShort(t)
	video := testenv.Shared(t, hamiltonClip)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h := proctest.New(t)
	h.Env = append(h.Env, testEnv...)
	for _, u := range users {
		h.Env = append(h.Env, "PC_"+strings.ToUpper(u)+"_PASSWORD="+password(u))
	}
	auth := filepath.Join(testenv.Root(), "deploy", "nats", "auth.conf")
	data, err := os.ReadFile(auth)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "auth.conf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	port := proctest.FreePort(t)
	conf := filepath.Join(h.Dir, "node.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listen: 127.0.0.1:%d\nserver_name: traced\njetstream { store_dir: %q }\ntrace: true\nmax_traced_msg_len: 32\ninclude auth.conf\n",
		port, t.TempDir()), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := h.Start("server", []string{"server", "--config", conf, "--nats-user", "admin", "--nats-password", password("admin")})
	if err := srv.WaitLog(ctx, "JetStream serving at"); err != nil {
		t.Fatal(err)
	}
	url := proctest.URL(port)
	client := func(user string) []string {
		return []string{"--nats", url, "--nats-user", user, "--nats-password", password(user)}
	}
	var procs []*proctest.Proc
	for _, name := range pipeline.All {
		procs = append(procs, h.Start(name, append([]string{name, "--ensure=false"}, client(name)...)))
	}
	if err := proctest.WaitAll(ctx, "stage running", procs...); err != nil {
		t.Fatal(err)
	}
	watch := h.Start("watch", append(append([]string{"watch"}, client("watch")...), "--until-final", "--out", filepath.Join(h.Dir, "out"), "traced"))
	if err := watch.WaitLog(ctx, "watching traced"); err != nil {
		t.Fatal(err)
	}
	want, err := h.Baseline(ctx, video, faultRequest...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ingest(ctx, h, client("ingest"), "traced", video, faultRequest); err != nil {
		t.Fatal(err)
	}
	_, js := connect(t, url, nats.UserInfo("admin", password("admin")))
	got, err := proctest.WaitFinal(ctx, js, "traced")
	if err != nil {
		t.Fatal(err)
	}
	checkComplete(ctx, t, js, want, got)
	if err := watch.WaitExit(ctx); err != nil {
		t.Fatalf("watch: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "out", "traced", "montage.png")); err != nil {
		t.Errorf("watch --out: %v", err)
	}
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Log(err)
	}

	// What each user did, from the trace.
	log := srv.Log()
	if v := regexp.MustCompile(`(?m)^.*Violation.*$`).FindAllString(log, 5); len(v) > 0 {
		t.Errorf("permission violations:\n%s", strings.Join(v, "\n"))
	}
	line := regexp.MustCompile(`"PERSONCLUSTER/user:(\w+)" - <<- \[(H?PUB|SUB) (\S+)`)
	used := map[string]map[string]bool{} // user → "pub subject" / "sub subject"
	for _, m := range line.FindAllStringSubmatch(log, -1) {
		op := "pub"
		if m[2] == "SUB" {
			op = "sub"
		}
		if used[m[1]] == nil {
			used[m[1]] = map[string]bool{}
		}
		used[m[1]][op+" "+m[3]] = true
	}
	t.Setenv("NATS_SERVER_NAME", "x")
	for _, u := range users {
		t.Setenv("PC_"+strings.ToUpper(u)+"_PASSWORD", password(u))
	}
	opts, err := server.ProcessConfigFile(filepath.Join(testenv.Root(), "deploy", "nats", "cluster.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range opts.Users {
		if u.Permissions == nil {
			continue // admin
		}
		usedPerms, unused := 0, 0
		check := func(op string, perm *server.SubjectPermission) {
			if perm == nil {
				return
			}
			for _, pattern := range perm.Allow {
				n := 0
				for k := range used[u.Username] {
					if subj, ok := strings.CutPrefix(k, op+" "); ok && subjectMatches(pattern, subj) {
						n++
					}
				}
				switch {
				case n > 0:
					usedPerms++
				case unexercised(u.Username, pattern):
					unused++
				default:
					t.Errorf("user %s: %s permission %q was not needed", u.Username, op, pattern)
				}
			}
		}
		check("pub", u.Permissions.Publish)
		check("sub", u.Permissions.Subscribe)
		if len(used[u.Username]) == 0 {
			t.Errorf("user %s did nothing in the trace", u.Username)
		}
		t.Logf("user %s: %d distinct subjects used, %d permissions all needed (+%d for bad input, --cancel or a restart only)",
			u.Username, len(used[u.Username]), usedPerms, unused)
	}
}

// subjectMatches reports whether a NATS subject matches a permission pattern (* and >).
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}
