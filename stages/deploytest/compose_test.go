package deploytest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
)

var update = flag.Bool("update", false, "rewrite deploy/jetstream/ from stage.Topology")

// dockerCompose runs Debian's docker-compose (1.29) in the repository root.
func dockerCompose(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose is not installed: `make deps` installs Debian's docker-compose (deploy/install-deps.sh)")
	}
	cmd := exec.Command(bin, append([]string{"-f", "docker-compose.yml"}, args...)...)
	cmd.Dir = testenv.Root()
	// Only what the test gives: no variables of the caller's shell, no .env of a developer.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	if err != nil {
		return out.String() + stderr.String(), err
	}
	return out.String(), nil
}

// TestComposeConfig validates docker-compose.yml with `docker-compose config` and checks the
// deployment it describes.
func TestComposeConfig(t *testing.T) {
	example := filepath.Join("deploy", "compose.env.example")
	if out, err := dockerCompose(t, nil, "--env-file", example, "config", "-q"); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
	// No password ships as a default: without them the file does not resolve.
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := dockerCompose(t, nil, "--env-file", empty, "config", "-q"); err == nil || !strings.Contains(out, "set the passwords") {
		t.Errorf("docker-compose config without passwords: %v, %q; want it refused", err, out)
	}
	services, err := dockerCompose(t, nil, "--env-file", example, "config", "--services")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"clusterer", "detector", "embedder", "embedder-cpu", "encoder", "nats-1", "nats-2", "nats-3", "reader", "watch"}
	got := strings.Fields(services)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	profiles, err := dockerCompose(t, nil, "--env-file", example, "config", "--profiles")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(profiles); !slices.Equal(got, []string{"cpu", "gpu"}) {
		t.Errorf("profiles %v, want cpu and gpu", got)
	}
	full, err := dockerCompose(t, nil, "--env-file", example, "config")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"driver: nvidia", "- gpu", "--device\n    - cuda", // the GPU embedder
		"replicas: 2", "PERSONCLUSTER_ENSURE: \"false\"", "PERSONCLUSTER_REPLICAS: '3'",
		"NATS_SERVER_NAME: nats-3", "/etc/personcluster/nats/cluster.conf", "--ensure=true",
	} {
		if !strings.Contains(full, s) {
			t.Errorf("docker-compose config has no %q", s)
		}
	}
}

// TestNATSConfig reads deploy/nats/cluster.conf (and the auth.conf it includes) the way the
// server does, and checks each stage's user may publish only its own outputs.
func TestNATSConfig(t *testing.T) {
	t.Setenv("NATS_SERVER_NAME", "nats-2")
	for _, u := range users {
		t.Setenv("PC_"+strings.ToUpper(u)+"_PASSWORD", password(u))
	}
	opts, err := server.ProcessConfigFile(filepath.Join(testenv.Root(), "deploy", "nats", "cluster.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.ServerName != "nats-2" || !opts.JetStream || opts.StoreDir != "/data" || opts.MaxPayload != 8<<20 {
		t.Errorf("node: name %q, jetstream %v, store %q, max payload %d", opts.ServerName, opts.JetStream, opts.StoreDir, opts.MaxPayload)
	}
	if opts.Cluster.Name != "personcluster" || opts.Cluster.Port != 6222 || len(opts.Routes) != 3 || !opts.Cluster.NoAdvertise {
		t.Errorf("cluster %q port %d, %d routes, no_advertise %v", opts.Cluster.Name, opts.Cluster.Port, len(opts.Routes), opts.Cluster.NoAdvertise)
	}
	byName := map[string]*server.User{}
	for _, u := range opts.Users {
		byName[u.Username] = u
		if u.Password != password(u.Username) {
			t.Errorf("user %s: password not from PC_%s_PASSWORD", u.Username, strings.ToUpper(u.Username))
		}
	}
	outputs := map[string][]string{
		pipeline.Reader:    {messages.SubjectFrames, messages.SubjectStatus},
		pipeline.Detector:  {messages.SubjectFaces},
		pipeline.Encoder:   {messages.SubjectFaceVec},
		pipeline.Embedder:  {messages.SubjectClothVec},
		pipeline.Clusterer: {messages.SubjectResults, messages.SubjectStatus + "." + messages.StageClusterer},
		"ingest":           {messages.SubjectIngest},
		"watch":            nil,
	}
	prefixes := []string{messages.SubjectIngest, messages.SubjectFrames, messages.SubjectFaces, messages.SubjectFaceVec,
		messages.SubjectClothVec, messages.SubjectResults, messages.SubjectStatus, messages.SubjectDead}
	for name, own := range outputs {
		u := byName[name]
		if u == nil || u.Permissions == nil || u.Permissions.Publish == nil {
			t.Errorf("user %s: missing or without publish permissions", name)
			continue
		}
		var pipelineSubjects []string
		for _, s := range u.Permissions.Publish.Allow {
			if slices.Contains(prefixes, strings.SplitN(s, ".", 2)[0]) {
				pipelineSubjects = append(pipelineSubjects, s)
			}
			if strings.HasPrefix(s, "$JS.API.STREAM.CREATE") || strings.HasPrefix(s, "$JS.API.STREAM.UPDATE") ||
				strings.HasPrefix(s, "$JS.API.STREAM.DELETE") || s == ">" || s == "$JS.API.>" {
				t.Errorf("user %s may publish to %s", name, s)
			}
		}
		var want []string
		for _, p := range own {
			want = append(want, p+".>")
		}
		if slices.Contains(pipeline.All, name) {
			want = append(want, messages.SubjectDead+"."+name+".>")
		}
		slices.Sort(want)
		slices.Sort(pipelineSubjects)
		if !slices.Equal(pipelineSubjects, want) {
			t.Errorf("user %s publishes to %v, want %v", name, pipelineSubjects, want)
		}
	}
	if admin := byName["admin"]; admin == nil || admin.Permissions != nil {
		t.Errorf("admin: %+v, want a user without limits", admin)
	}
}

// TestJetStreamDefinitions checks deploy/jetstream/ holds the streams and consumers the code
// creates (stage.Topology with 3 replicas), for `nats stream add --config` and
// `nats consumer add --config`. Refresh with go test ./stages/deploytest -run JetStreamDefinitions -update.
func TestJetStreamDefinitions(t *testing.T) {
	dir := filepath.Join(testenv.Root(), "deploy", "jetstream")
	topo := stage.Topology{Replicas: 3}
	files := map[string]any{}
	for _, s := range topo.Streams() {
		files[filepath.Join("streams", s.Name+".json")] = s
	}
	for _, c := range topo.Consumers() {
		files[filepath.Join("consumers", c.Stream+"."+c.Config.Durable+".json")] = c.Config
	}
	for name, v := range files {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // "frames.>", not "frames.\u003e"
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		want := buf.Bytes()
		path := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (refresh with -update)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/jetstream/%s differs from stage.Topology (refresh with -update):\n%s", name, want)
		}
	}
	for _, sub := range []string{"streams", "consumers"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			if _, ok := files[filepath.Join(sub, e.Name())]; !ok {
				t.Errorf("deploy/jetstream/%s/%s is no longer in stage.Topology", sub, e.Name())
			}
		}
	}
}
