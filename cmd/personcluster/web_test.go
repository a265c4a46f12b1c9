//go:build !lean

package main

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/personcluster/personcluster/stages/stage"
)

// The live UI serves the page and /healthz on one address, and stops when its context ends.
func TestServeUIStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ui, err := serveUI(ctx, "127.0.0.1:0", "", stage.NewRegistry(), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/healthz", "/"} {
		resp, err := http.Get("http://" + ui.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200", path, resp.Status)
		}
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + ui.addr + "/healthz")
		if err != nil {
			return // shut down
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("the live UI still answers 5 s after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
