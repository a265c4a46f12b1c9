// Package broker starts the embedded NATS JetStream server and opens client connections, with
// the same options (credentials, TLS) for every subcommand.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
)

// ServerConfig configures the embedded server.
type ServerConfig struct {
	StoreDir string // JetStream file store; required
	Host     string // listen address; ignored when InProcessOnly
	Port     int    // -1: a random port
	// InProcessOnly serves only in-process connections (no TCP listener): the one-process run.
	InProcessOnly bool
	ConfigFile    string // optional nats-server config file (auth, TLS, cluster)
	MaxPayload    int32  // bytes; default 8 MiB so full-HD JPEG frames fit
	Logging       bool
	// A JetStream cluster node (all optional; a config file can say the same). ServerName must
	// be stable across restarts: it is the node's identity among the JetStream peers.
	ServerName    string
	ClusterName   string
	ClusterListen string   // host:port for the routes of the other nodes
	Routes        []string // nats-route://host:port of the other nodes
}

// Server is a running embedded server.
type Server struct {
	*server.Server
}

// StartServer starts an embedded JetStream server and waits until it accepts connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(cfg.ConfigFile); err != nil {
			return nil, fmt.Errorf("broker: reading %s: %w", cfg.ConfigFile, err)
		}
	}
	if cfg.StoreDir == "" && opts.StoreDir == "" {
		return nil, errors.New("broker: a JetStream store directory is required")
	}
	opts.JetStream = true
	if cfg.StoreDir != "" {
		opts.StoreDir = cfg.StoreDir
	}
	if cfg.ConfigFile == "" {
		opts.Host = cfg.Host
		opts.Port = cfg.Port
		if opts.Host == "" {
			opts.Host = "127.0.0.1"
		}
	}
	opts.DontListen = cfg.InProcessOnly
	if cfg.ServerName != "" {
		opts.ServerName = cfg.ServerName
	}
	if cfg.ClusterListen != "" {
		host, port, err := SplitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("broker: cluster listen address: %w", err)
		}
		opts.Cluster.Host, opts.Cluster.Port = host, port
	}
	if cfg.ClusterName != "" {
		opts.Cluster.Name = cfg.ClusterName
	}
	if len(cfg.Routes) > 0 {
		var routes []string
		for _, r := range cfg.Routes {
			if r = strings.TrimSpace(r); r != "" {
				routes = append(routes, r)
			}
		}
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		if len(opts.Routes) != len(routes) {
			return nil, fmt.Errorf("broker: bad route in %q", cfg.Routes)
		}
	}
	if opts.Cluster.Port != 0 && opts.ServerName == "" {
		return nil, errors.New("broker: a cluster node needs a stable server name (--server-name or server_name)")
	}
	if cfg.MaxPayload > 0 {
		opts.MaxPayload = cfg.MaxPayload
	} else if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20
	}
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: configuring the server: %w", err)
	}
	if cfg.Logging {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("broker: the embedded server did not become ready in 30s")
	}
	return &Server{Server: s}, nil
}

// Connect opens an in-process client connection to this server. It needs no TLS (in-process
// connections skip it) but still authenticates: pass credentials in extra where the config
// file has users.
func (s *Server) Connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1)}, extra...)
	opts = append(opts, nats.InProcessServer(s.Server))
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: connecting to the embedded server: %w", err)
	}
	return nc, nil
}

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	if s == nil || s.Server == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
}

// Embedded is a server with one in-process client connection and its JetStream handle, as
// benchmarks and tools use it.
type Embedded struct {
	Server *Server
	NC     *nats.Conn
	JS     jetstream.JetStream
}

// StartEmbedded starts a server on cfg and connects to it in-process as name.
func StartEmbedded(cfg ServerConfig, name string) (*Embedded, error) {
	srv, err := StartServer(cfg)
	if err != nil {
		return nil, err
	}
	e := &Embedded{Server: srv}
	if e.NC, err = srv.Connect(name); err != nil {
		e.Close()
		return nil, err
	}
	if e.JS, err = JetStream(e.NC); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close closes the connection and stops the server; safe to call twice.
func (e *Embedded) Close() {
	if e.NC != nil {
		e.NC.Close()
	}
	e.Server.Stop()
}

// ClientConfig says how to reach a NATS server.
type ClientConfig struct {
	URL      string // comma-separated server URLs
	Creds    string // .creds file (JWT + nkey)
	NKeySeed string // nkey seed file
	User     string
	Password string
	TLSCA    string
	TLSCert  string
	TLSKey   string
	Name     string
}

// Options turns the config into nats.go options.
func (c ClientConfig) Options() ([]nats.Option, error) {
	opts := []nats.Option{nats.Name(c.Name), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.NKeySeed != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("broker: reading nkey seed %s: %w", c.NKeySeed, err)
		}
		opts = append(opts, o)
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, errors.New("broker: --tls-cert and --tls-key go together")
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// Connect dials the configured server.
func (c ClientConfig) Connect() (*nats.Conn, error) {
	if c.URL == "" {
		return nil, errors.New("broker: no NATS URL (--nats or PERSONCLUSTER_NATS)")
	}
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: connecting to %s: %w", messages.Redacted(c.URL), err)
	}
	return nc, nil
}

// JetStream wraps a connection with the options personcluster uses everywhere.
func JetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	// The async publish timeout fails a publish whose ack never comes (the node that took it
	// died): the stage loop then retries the input instead of waiting forever.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(512), jetstream.WithPublishAsyncTimeout(PublishAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("broker: opening JetStream: %w", err)
	}
	return js, nil
}

// PublishAckTimeout bounds the wait for a JetStream publish ack. A publish caught by the death
// of the node that was to store it is never acked: the stage retries it after this long (the
// retry is deduplicated by its message id if the first did get stored).
const PublishAckTimeout = 10 * time.Second

// WaitJetStream retries fn (typically Topology.Ensure) until it succeeds, ctx ends or wait
// passes: a JetStream cluster answers only once its nodes have elected a meta leader, and a
// replicated stream can be created only once enough nodes are up. Only a refused permission
// ends it early.
func WaitJetStream(ctx context.Context, wait time.Duration, fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(wait)
	err := RetryJetStream(ctx, deadline, 10*time.Second, fn, func(err error) bool { return !isPermanentJSError(err) })
	if err != nil {
		return fmt.Errorf("broker: JetStream not ready: %w", err)
	}
	return nil
}

// RetryJetStream runs fn, each try given at most perTry (a request that reached a node as it
// died is never answered, and is better sent again than waited for), again after a short
// pause while retry says its error may pass, until deadline. It returns fn's last error as it
// is: a verdict at once, or the last transient error when ctx ends or the deadline passes.
func RetryJetStream(ctx context.Context, deadline time.Time, perTry time.Duration, fn func(ctx context.Context) error, retry func(error) bool) error {
	delay := 250 * time.Millisecond
	for {
		tryCtx, cancel := context.WithTimeout(ctx, perTry)
		err := fn(tryCtx)
		cancel()
		if err == nil || !retry(err) || ctx.Err() != nil || time.Now().Add(delay).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// IsTransient tells whether err is one a JetStream outage gives and waiting can fix: a
// request left unanswered (a timeout, no responders, no response from the stream, a full
// reconnect buffer), or JetStream saying it is unavailable for now, as it does while a cluster
// elects the leaders of a lost node's streams and while a server starts (which it also says
// to an account without JetStream: such a misconfiguration waits out the retries). A verdict
// (a stream that does not exist, a refused permission, a full store, a bad request) is not.
func IsTransient(err error) bool {
	if err == nil || isPermanentJSError(err) {
		return false
	}
	for _, t := range []error{context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders, nats.ErrReconnectBufExceeded,
		jetstream.ErrNoStreamResponse, jetstream.ErrJetStreamNotEnabled, jetstream.ErrJetStreamNotEnabledForAccount} {
		if errors.Is(err, t) {
			return true
		}
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jsClusterNotAvailable, jetstream.JSErrCodeJetStreamNotEnabled, jetstream.JSErrCodeJetStreamNotEnabledForAccount, jsStreamSequenceNotReady:
			return true
		}
	}
	return false
}

// JetStream API error codes (nats-server's errors.json) that nats.go names no constant for.
const (
	jsClusterNotAvailable    jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable"
	jsStreamSequenceNotReady jetstream.ErrorCode = 10163 // "expected last sequence not ready"
)

// isPermanentJSError is an error waiting cannot fix: a refused permission.
func isPermanentJSError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrPermissionViolation)
}

// SplitHostPort splits "host:port" into the host and a numeric port.
func SplitHostPort(addr string) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}
