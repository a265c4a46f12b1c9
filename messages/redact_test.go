package messages

import (
	"regexp"
	"strings"
	"testing"
)

func TestRedacted(t *testing.T) {
	cases := map[string]string{
		"rtsp://admin:hunter2@10.0.0.5:554/stream1":              "rtsp://REDACTED@10.0.0.5:554/stream1",
		"rtsp://user:p@ss@cam/s":                                 "rtsp://REDACTED@cam/s",
		"reader: rtsp://admin:hunter2@cam/x dropped":             "reader: rtsp://REDACTED@cam/x dropped",
		"nats://s3cr3ttoken@nats1:4222,nats://u:p@nats2:4222":    "nats://REDACTED@nats1:4222,nats://REDACTED@nats2:4222",
		"http://cam/video.mjpg?user=bob&password=pw&fps=5":       "http://cam/video.mjpg?user=bob&password=REDACTED&fps=5",
		"https://cdn/x.mp4?X-Token=1&token=abc#t=5":              "https://cdn/x.mp4?X-Token=1&token=REDACTED#t=5",
		`open "http://u:p@h/a": refused; also http://v:q@i/b ok`: `open "http://REDACTED@h/a": refused; also http://REDACTED@i/b ok`,
		"/videos/lobby@2x.mp4":                                   "/videos/lobby@2x.mp4",
		"rtsp://camera/stream":                                   "rtsp://camera/stream",
		"nats://127.0.0.1:4222":                                  "nats://127.0.0.1:4222",
		"mail bob@example.com":                                   "mail bob@example.com",
		"":                                                       "",
	}
	for in, want := range cases {
		if got := Redacted(in); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", in, got, want)
		}
		if got := Redacted(Redacted(in)); got != want {
			t.Errorf("Redacted is not idempotent on %q: %q", in, got)
		}
	}
}

var schemeRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://`)

func FuzzRedacted(f *testing.F) {
	f.Add("rtsp://admin:hunter2@10.0.0.5:554/stream1")
	f.Add("nats://tok@h:4222,nats://u:p@h2?token=x")
	f.Fuzz(func(t *testing.T, s string) {
		r := Redacted(s)
		if Redacted(r) != r {
			t.Fatalf("not idempotent: %q → %q → %q", s, r, Redacted(r))
		}
		// No userinfo survives: after every scheme:// the authority has no '@' but REDACTED's.
		for _, loc := range schemeRE.FindAllStringIndex(r, -1) {
			auth := r[loc[1]:]
			if j := strings.IndexAny(auth, "/ \t\n\r\"'<>\x60"); j >= 0 {
				auth = auth[:j]
			}
			if at := strings.LastIndexByte(auth, '@'); at >= 0 && !strings.HasSuffix(auth[:at], "REDACTED") {
				t.Fatalf("userinfo left in %q (from %q)", r, s)
			}
		}
	})
}
