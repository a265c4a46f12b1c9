package deploytest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/proctest"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
)

// Two sources read at once: the first 120 frames of the Hamilton clip, and its last 2.1 s.
var (
	requestA = []string{"--max-frames", "120", "--quota", "20"}
	requestB = []string{"--skip", "6.9", "--quota", "30"}
)

// users of deploy/nats/auth.conf; the test gives each a password through the environment
// variable the file names.
var users = []string{"admin", "reader", "detector", "encoder", "embedder", "clusterer", "ingest", "watch"}

func password(user string) string { return "test-" + user + "-secret" }

// cluster is a 3-node JetStream cluster of `personcluster server` processes on loopback with
// TLS on the client port and the users of deploy/nats/auth.conf.
type cluster struct {
	h     *proctest.Harness
	tls   proctest.TLSFiles
	nodes map[string]*proctest.Proc // n1, n2, n3
	urls  string
}

// clientArgs are a process's flags to reach the cluster as user.
func (c *cluster) clientArgs(user string) []string {
	return []string{"--nats", c.urls, "--nats-user", user, "--nats-password", password(user), "--tls-ca", c.tls.CA}
}

func startCluster(ctx context.Context, t *testing.T) *cluster {
	t.Helper()
	h := proctest.New(t)
	h.Env = append(h.Env, testEnv...)
	for _, u := range users {
		h.Env = append(h.Env, "PC_"+strings.ToUpper(u)+"_PASSWORD="+password(u))
	}
	tlsFiles, err := proctest.WriteTLS(h.Dir)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := os.ReadFile(filepath.Join(testenv.Root(), "deploy", "nats", "auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "auth.conf"), auth, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &cluster{h: h, tls: tlsFiles, nodes: map[string]*proctest.Proc{}}
	var clientPorts, routePorts []int
	for range 3 {
		clientPorts = append(clientPorts, proctest.FreePort(t))
		routePorts = append(routePorts, proctest.FreePort(t))
	}
	var routes, urls []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[i]))
		urls = append(urls, proctest.URL(clientPorts[i]))
	}
	c.urls = strings.Join(urls, ",")
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster {
  name: personcluster
  listen: 127.0.0.1:%d
  routes: [%s]
}
tls { cert_file: %q, key_file: %q }
include auth.conf
`, name, clientPorts[i], filepath.Join(t.TempDir(), name), routePorts[i], strings.Join(routes, ", "), tlsFiles.Cert, tlsFiles.Key)
		path := filepath.Join(h.Dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		// The first node creates the topology (3 replicas) as admin; creating it from three
		// nodes at once only makes them wait for each other.
		args := []string{"server", "--config", path, "--replicas", "3", "--nats-user", "admin", "--nats-password", password("admin"),
			"--ensure=" + strconv.FormatBool(i == 0)}
		c.nodes[name] = h.Start(name, args)
	}
	// n1 says it serves once the cluster has elected its leaders and the streams exist.
	if err := proctest.WaitAll(ctx, "JetStream serving at", c.nodes["n1"], c.nodes["n2"], c.nodes["n3"]); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClusterAuthTLS is the deployment of issue 7 on loopback: a 3-node JetStream cluster
// (file storage, every stream and consumer with 3 replicas, TLS, the least-privilege users of
// deploy/nats/auth.conf), every stage a separate process with its own user, two encoder and
// two embedder replicas, and a `watch` subscriber. Two sources are ingested at once and both
// results equal the one-process run's; then two more, and the leader node of PC_FACES and
// one encoder replica are killed mid-stream: both results still arrive complete.
func TestClusterAuthTLS(t *testing.T) {
	skipShort(t)
	video := testenv.Shared(t, hamiltonClip)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := startCluster(ctx, t)
	h := c.h
	wantA, err := h.Baseline(ctx, video, requestA...)
	if err != nil {
		t.Fatal(err)
	}
	wantB, err := h.Baseline(ctx, video, requestB...)
	if err != nil {
		t.Fatal(err)
	}

	stages := map[string]*proctest.Proc{}
	replicas := map[string]int{pipeline.Encoder: 2, pipeline.Embedder: 2}
	for _, name := range pipeline.All {
		for i := 1; i <= max(1, replicas[name]); i++ {
			args := append([]string{name, "--ensure=false"}, c.clientArgs(name)...)
			stages[fmt.Sprintf("%s-%d", name, i)] = h.Start(fmt.Sprintf("%s-%d", name, i), args)
		}
	}
	for _, p := range stages {
		if err := p.WaitLog(ctx, "stage running"); err != nil {
			t.Fatal(err)
		}
	}
	nc, js := connect(t, c.urls, nats.UserInfo("admin", password("admin")), nats.RootCAs(c.tls.CA))
	checkTopology(ctx, t, js)

	// Another machine follows source a1 with the watch user and saves its result folder.
	outDir := filepath.Join(h.Dir, "watch-out")
	watch := h.Start("watch", append(append([]string{"watch"}, c.clientArgs("watch")...), "--until-final", "--out", outDir, "a1"))
	if err := watch.WaitLog(ctx, "watching a1"); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	ingestAll(ctx, t, c, video, map[string][]string{"a1": requestA, "b1": requestB})
	for src, want := range map[string]*messages.ClusterResult{"a1": wantA, "b1": wantB} {
		got, err := proctest.WaitFinal(ctx, js, src)
		if err != nil {
			t.Fatal(err)
		}
		checkComplete(ctx, t, js, want, got)
	}
	t.Logf("two sources at once through 3 NATS nodes and %d stage processes: both final after %.1fs", len(stages), time.Since(started).Seconds())
	if err := watch.WaitExit(ctx); err != nil {
		t.Errorf("watch --until-final: %v", err)
	}
	if !strings.Contains(watch.Log(), "source a1:") {
		t.Errorf("watch printed no result of a1:\n%s", watch.Log())
	}
	if _, err := os.Stat(filepath.Join(outDir, "a1", "montage.png")); err != nil {
		t.Errorf("watch --out wrote no montage from the object store: %v", err)
	}

	checkPermissions(ctx, t, c, js)

	// Faults: when the 5th face vector of a2 is stored, kill (SIGKILL) the node leading
	// PC_FACES and encoder replica 1. Neither comes back.
	leader := streamLeader(ctx, t, js, stage.StreamFaces)
	node := c.nodes[leader]
	if node == nil {
		t.Fatalf("PC_FACES leader %q is none of the nodes", leader)
	}
	victim := stages["encoder-1"]
	var seen int
	trigger := proctest.OnMessage(t, nc, messages.Subject(messages.SubjectFaceVec, "a2"), 5, func(n int) {
		seen = n
		node.Kill()
		victim.Kill()
	})
	started = time.Now()
	ingestAll(ctx, t, c, video, map[string][]string{"a2": requestA, "b2": requestB})
	if err := trigger.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed NATS node %s (leader of PC_FACES) and encoder-1 after %d face vectors of a2, %.1fs in", leader, seen, time.Since(started).Seconds())
	for src, want := range map[string]*messages.ClusterResult{"a2": wantA, "b2": wantB} {
		got, err := proctest.WaitFinal(ctx, js, src)
		if err != nil {
			t.Fatal(err)
		}
		checkComplete(ctx, t, js, want, got)
		if int64(seen) >= got.FramesSeen && src == "a2" {
			t.Errorf("the kill came after a2's last face vector")
		}
	}
	t.Logf("with 2 of 3 nodes and 1 of 2 encoders: both final after %.1fs; new PC_FACES leader %s", time.Since(started).Seconds(), streamLeader(ctx, t, js, stage.StreamFaces))
	for name, p := range stages {
		if p != victim && !p.Running() {
			t.Errorf("%s exited: %v", name, p.ExitErr())
		}
	}
}

// ingestAll ingests the sources at the same time, each with the ingest user.
func ingestAll(ctx context.Context, t *testing.T, c *cluster, video string, requests map[string][]string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(requests))
	for src, req := range requests {
		wg.Go(func() { errs <- ingest(ctx, c.h, c.clientArgs("ingest"), src, video, req) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// checkTopology checks every stream and consumer has 3 replicas on file storage.
func checkTopology(ctx context.Context, t *testing.T, js jetstream.JetStream) {
	t.Helper()
	for _, cfg := range (stage.Topology{}).Streams() {
		s, err := js.Stream(ctx, cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 || info.Config.Storage != jetstream.FileStorage {
			t.Errorf("stream %s: %d replicas, storage %s; want 3 on file", cfg.Name, info.Config.Replicas, info.Config.Storage)
		}
	}
	for _, sc := range (stage.Topology{}).Consumers() {
		cons, err := js.Consumer(ctx, sc.Stream, sc.Config.Durable)
		if err != nil {
			t.Fatal(err)
		}
		if r := cons.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("consumer %s: %d replicas, want 3", sc.Config.Durable, r)
		}
	}
}

func streamLeader(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string) string {
	t.Helper()
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
			return s.CachedInfo().Cluster.Leader
		}
		if ctx.Err() != nil {
			t.Fatalf("no leader of %s: %v", stream, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkPermissions shows the users are held to their subjects: a stage cannot publish
// another stage's outputs, and none can change the topology.
func checkPermissions(ctx context.Context, t *testing.T, c *cluster, admin jetstream.JetStream) {
	t.Helper()
	for _, tc := range []struct{ user, subject string }{
		{"reader", "clothvec.intruder"},
		{"embedder", "frames.intruder"},
		{"encoder", "results.intruder"},
		{"ingest", "frames.intruder"},
		{"watch", "ingest.intruder"},
	} {
		errs := make(chan error, 4)
		nc, err := nats.Connect(c.urls, nats.UserInfo(tc.user, password(tc.user)), nats.RootCAs(c.tls.CA),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if err != nil {
			t.Fatalf("%s connecting: %v", tc.user, err)
		}
		if err := nc.Publish(tc.subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("%s publishing to %s: %v, want a permissions violation", tc.user, tc.subject, err)
			}
		case <-ctx.Done():
			t.Errorf("%s published to %s without a permissions violation", tc.user, tc.subject)
		}
		nc.Close()
	}
	nc, err := nats.Connect(c.urls, nats.UserInfo("clusterer", password("clusterer")), nats.RootCAs(c.tls.CA), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := js.DeleteStream(short, stage.StreamFaces); err == nil {
		t.Errorf("the clusterer user deleted stream %s", stage.StreamFaces)
	}
	if _, err := admin.Stream(ctx, stage.StreamFaces); err != nil {
		t.Errorf("stream %s after the refused delete: %v", stage.StreamFaces, err)
	}
}
