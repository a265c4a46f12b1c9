//go:build !lean

package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/personcluster/personcluster/stages/broker"
)

// The binary's loggers never print a URL's credentials, whether in the message, a string
// attribute or an error.
func TestLogsRedactCredentials(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: redactAttr}))
	log.Warn("opening rtsp://admin:hunter2@cam/stream", "uri", "http://u:tok3n@h/x?token=tok3n",
		"err", errors.New("dial nats://s3cret@10.0.0.1:4222 failed"), "group", slog.GroupValue(slog.String("url", "nats://u:hunter2@h")))
	out := buf.String()
	for _, secret := range []string{"hunter2", "tok3n", "s3cret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line leaks %q: %s", secret, out)
		}
	}
	if strings.Count(out, "REDACTED") < 4 {
		t.Errorf("log line: %s", out)
	}
	// A failed connection names the server without its credentials.
	_, err := broker.ClientConfig{URL: "nats://user:hunter2@127.0.0.1:1", Name: "t"}.Connect()
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("connect error %v", err)
	}
}
