//go:build !lean

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/web"
)

// uiTokenFlag is --ui-token (PERSONCLUSTER_UI_TOKEN): what the live UI's writes need.
func uiTokenFlag(fs *flag.FlagSet) *string {
	return fs.String("ui-token", "", "token the live UI asks for before changing anything (cancelling a source, editing the people gallery); empty: the UI is read-only")
}

// liveUI is the live UI with /metrics and /healthz, served on one address.
type liveUI struct {
	*web.Server
	addr string
}

// serveUI serves the live UI at / beside reg's /metrics and /healthz on addr until ctx ends
// ("" serves nothing and returns nil). A host left out means localhost: ":8080" is
// 127.0.0.1:8080; give 0.0.0.0:8080 to serve other machines.
func serveUI(ctx context.Context, addr, token string, reg *stage.Registry, log *slog.Logger) (*liveUI, error) {
	if addr == "" {
		return nil, nil
	}
	ui := web.New(web.Config{Token: token, Cancel: reader.Cancel, Logger: log})
	mux := http.NewServeMux()
	mux.Handle("/metrics", reg.Handler())
	mux.Handle("/healthz", reg.Handler())
	mux.Handle("/", ui.Handler())
	ln, err := net.Listen("tcp", web.ListenAddr(addr))
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	stage.Serve(ctx, ln, mux, log, "live UI", ui.Close)
	return &liveUI{Server: ui, addr: ln.Addr().String()}, nil
}

// follow feeds the UI from nc until ctx ends.
func (u *liveUI) follow(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) {
	if u == nil {
		return
	}
	go func() {
		if err := u.Run(ctx, nc, js); err != nil {
			log.Error("live UI", "err", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "personcluster: live UI at http://%s/\n", u.addr)
}

// startedHook is pipeline.LocalOptions.Started for `run --http`: the UI follows the embedded
// server.
func (u *liveUI) startedHook(ctx context.Context, log *slog.Logger) func(*pipeline.Local) {
	if u == nil {
		return nil
	}
	return func(l *pipeline.Local) { u.follow(ctx, l.Conn(), l.JetStream(), log) }
}
