package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Three embedded servers configured by ServerConfig's cluster fields (what `personcluster
// server --server-name --cluster --routes` sets) form a JetStream cluster that holds a stream
// with 3 replicas; WaitJetStream waits for its leaders.
func TestClusterFromConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node cluster (seconds)")
	}
	var routes []string
	var ports []int
	for range 3 {
		p := freePort(t)
		ports = append(ports, p)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var servers []*Server
	for i := range 3 {
		srv, err := StartServer(ServerConfig{
			StoreDir: t.TempDir(), Host: "127.0.0.1", Port: -1,
			ServerName: fmt.Sprintf("n%d", i+1), ClusterName: "test", ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		servers = append(servers, srv)
	}
	nc, err := nats.Connect(servers[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var info *jetstream.StreamInfo
	err = WaitJetStream(ctx, time.Minute, func(ctx context.Context) error {
		s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3, Storage: jetstream.FileStorage})
		if err == nil {
			info = s.CachedInfo()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Name != "test" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info %+v, want a leader and 2 replicas in cluster test", info.Cluster)
	}
	if _, err := js.Publish(ctx, "r3.x", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// A cluster node without a stable name is refused: JetStream peers know each other by it.
func TestClusterNeedsServerName(t *testing.T) {
	_, err := StartServer(ServerConfig{StoreDir: t.TempDir(), Port: -1, ClusterListen: "127.0.0.1:-1"})
	if err == nil || !strings.Contains(err.Error(), "server name") {
		t.Fatalf("a cluster node without a server name: %v", err)
	}
}

// Every connection of the server is in-process: it needs no TLS and no reachable listener.
func TestConnectInProcess(t *testing.T) {
	e, err := StartEmbedded(ServerConfig{StoreDir: t.TempDir(), InProcessOnly: true}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.NC.IsConnected() {
		t.Fatal("not connected")
	}
	if _, err := e.JS.AccountInfo(context.Background()); err != nil {
		t.Fatalf("JetStream: %v", err)
	}
	e.Close() // and again, deferred: safe twice
}

// IsTransient: what an outage gives is retried, a verdict is not.
func TestIsTransient(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("reader: opening PC_INGEST: %w", context.DeadlineExceeded), true},
		{nats.ErrTimeout, true},
		{nats.ErrNoResponders, true},
		{nats.ErrReconnectBufExceeded, true},
		{jetstream.ErrNoStreamResponse, true},
		{jetstream.ErrJetStreamNotEnabled, true},
		{jetstream.ErrJetStreamNotEnabledForAccount, true}, // also said while a server starts
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{fmt.Errorf("nats: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008}), true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10163, Description: "expected last sequence not ready"}, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"}, false},
		{&jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "message size exceeds maximum allowed"}, false},
		{context.Canceled, false},
		{nats.ErrConnectionClosed, false},
		{jetstream.ErrStreamNotFound, false},
		{jetstream.ErrBucketNotFound, false},
		{&jetstream.APIError{Code: 400, ErrorCode: 10003, Description: "bad request"}, false},
		{nats.ErrPermissionViolation, false},
		{fmt.Errorf("%w: %w", nats.ErrAuthorization, context.DeadlineExceeded), false}, // a refusal wins
		{errors.New("reader: source id already in use"), false},
	}
	for _, c := range cases {
		if got := IsTransient(c.err); got != c.want {
			t.Errorf("IsTransient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
