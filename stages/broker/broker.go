// Package broker starts the embedded NATS JetStream server and opens client connections, with
// the same options (credentials, TLS) for every subcommand.
package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
}

// Server is a running embedded server.
type Server struct {
	*server.Server
	inProcess bool
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
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return nil, errors.New("broker: the embedded server did not become ready in 20s")
	}
	return &Server{Server: s, inProcess: cfg.InProcessOnly}, nil
}

// Connect opens a client connection to this server (in-process when it has no listener).
func (s *Server) Connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1)}, extra...)
	url := s.ClientURL()
	if s.inProcess {
		opts = append(opts, nats.InProcessServer(s.Server))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
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
		return nil, fmt.Errorf("broker: connecting to %s: %w", c.URL, err)
	}
	return nc, nil
}

// JetStream wraps a connection with the options personcluster uses everywhere.
func JetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(512))
	if err != nil {
		return nil, fmt.Errorf("broker: opening JetStream: %w", err)
	}
	return js, nil
}
