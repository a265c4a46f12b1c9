package reader_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/personcluster/personcluster/messages"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A source URL's credentials never reach a status event, the end of stream, the saved
// progress reason or a log line.
func TestSourceCredentialsNotLeaked(t *testing.T) {
	env := start(t, testTopology())
	var logs syncBuffer
	cfg := readerConfig(env.JS)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	startReader(t, env.JS, cfg)
	uri := "http://admin:hunter2@127.0.0.1:1/stream.mjpg?token=tok3n&fps=5"
	ingest(t, env.JS, request("secret", uri), "")
	st := finalStatus(t, env.JS, "secret", 30*time.Second)
	_, eos := frames(t, env.JS, "secret", 5*time.Second)
	p := progressOf(t, env.JS, "secret")
	texts := map[string]string{"final status": st.Reason, "end of stream": eos.Reason, "progress reason": p.Reason, "logs": logs.String()}
	for _, s := range statuses(t, env.JS, "secret") {
		texts["status "+s.State] += s.Reason
	}
	for what, text := range texts {
		if strings.Contains(text, "hunter2") || strings.Contains(text, "tok3n") || strings.Contains(text, "admin") {
			t.Errorf("%s leaks the URL's credentials: %q", what, text)
		}
	}
	if st.State != messages.StateFailed || !strings.Contains(st.Reason, "http://REDACTED@127.0.0.1:1/stream.mjpg?token=REDACTED&fps=5") {
		t.Errorf("final status %s %q: want failed, naming the redacted URL", st.State, st.Reason)
	}
	if !strings.Contains(logs.String(), "REDACTED") {
		t.Errorf("no redacted URL in the logs:\n%s", logs.String())
	}
}
