// Package stagetest starts real in-process JetStream servers for tests.
package stagetest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/stage"
)

// Env is a running server with a client connection and the personcluster topology in place.
type Env struct {
	Server *broker.Server
	NC     *nats.Conn
	JS     jetstream.JetStream
	// restart is the server's config where StartRestartable started it on a fixed port.
	restart *broker.ServerConfig
}

// Start runs an embedded JetStream server (file store in t.TempDir(), random port), connects
// to it, creates the topology, and stops everything when the test ends.
func Start(t testing.TB, topo stage.Topology) *Env {
	t.Helper()
	return StartServer(t, broker.ServerConfig{}, topo)
}

// StartServer is Start with server settings of the test's own (a smaller max payload, say);
// an empty StoreDir is a t.TempDir() and a zero Port a random one.
func StartServer(t testing.TB, cfg broker.ServerConfig, topo stage.Topology) *Env {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	srv, err := broker.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	env := Connect(t, srv, "test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topo.Ensure(ctx, env.JS); err != nil {
		t.Fatal(err)
	}
	return env
}

// StartRestartable is Start on a fixed free port, so that the test can stop the server
// (Server.Stop) and start it again on the same store and address (Restart) while clients over
// TCP reconnect.
func StartRestartable(t testing.TB, topo stage.Topology) *Env {
	t.Helper()
	cfg := broker.ServerConfig{StoreDir: t.TempDir(), Port: FreePort(t)}
	env := StartServer(t, cfg, topo)
	env.restart = &cfg
	return env
}

// Restart starts the stopped server of a StartRestartable Env again on its store and port and
// returns it with a new in-process connection; it stops when the test ends. e is unchanged.
func (e *Env) Restart(t testing.TB) *Env {
	t.Helper()
	if e.restart == nil {
		t.Fatal("stagetest: Restart needs an Env from StartRestartable")
	}
	srv, err := broker.StartServer(*e.restart)
	if err != nil {
		t.Fatalf("stagetest: restarting NATS: %v", err)
	}
	t.Cleanup(srv.Stop)
	after := Connect(t, srv, "test")
	after.restart = e.restart
	return after
}

// Connect connects an in-process client named name to srv; it closes when the test ends.
func Connect(t testing.TB, srv *broker.Server, name string) *Env {
	t.Helper()
	nc, js := client(t, func() (*nats.Conn, error) { return srv.Connect(name) })
	return &Env{Server: srv, NC: nc, JS: js}
}

// Dial connects a client named name to url over TCP, reconnecting as the stages' clients do;
// it closes when the test ends.
func Dial(t testing.TB, name, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return client(t, (&broker.ClientConfig{Name: name, URL: url}).Connect)
}

// client connects with connect and returns the connection, closed when the test ends, and
// its JetStream handle.
func client(t testing.TB, connect func() (*nats.Conn, error)) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := broker.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Publish encodes m and publishes it on subject, with msgID as its Nats-Msg-Id unless empty.
func Publish(t testing.TB, js jetstream.JetStream, subject string, m messages.Message, msgID string) {
	t.Helper()
	data, err := messages.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := js.Publish(context.Background(), subject, data, opts...); err != nil {
		t.Fatal(err)
	}
}

// Collect returns the messages of stream on subjects matching filter once there are at least
// want of them, reading them anew with an ordered consumer until then; it fails the test after
// 30 s.
func Collect(t testing.TB, js jetstream.JetStream, stream, filter string, want int) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []jetstream.Msg
	for ctx.Err() == nil {
		got = got[:0]
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			msg, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
			if err != nil {
				break
			}
			got = append(got, msg)
		}
		if len(got) >= want {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stagetest: %s %s: got %d messages, want %d", stream, filter, len(got), want)
	return nil
}

// Run runs stage.Run in the background until the returned stop is called or the test ends:
// stop cancels it, waits for it, and fails the test if it did not end cleanly. Safe to call
// twice.
func Run(t testing.TB, js jetstream.JetStream, cfg stage.Config, proc stage.Processor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stage.Run(ctx, js, cfg, proc) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("stagetest: stage %s: %v", cfg.Name, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
