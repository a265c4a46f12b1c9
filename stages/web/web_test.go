package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/browser"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
	"github.com/personcluster/personcluster/stages/web"
)

// clip is the shared 640×360 sample (275 frames).
const clip = "../../../shared/testdata/video/short_hamilton_clip.mp4"

// debugText matches what Go prints for values no page should show.
var debugText = regexp.MustCompile(`&\{|map\[|%!|<nil>|\{\d+ \d+ \[`)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startNATS(t *testing.T) *stagetest.Env {
	t.Helper()
	return stagetest.StartRestartable(t, stage.Topology{AckWait: 5 * time.Second, MaxDeliver: 3})
}

// startUI connects a client of its own (over TCP, reconnecting) and serves the UI.
func startUI(t *testing.T, url string, cfg web.Config) (*web.Server, *httptest.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js := stagetest.Dial(t, "web-test", url)
	cfg.Logger = quiet()
	cfg.CatchUpEvery = 100 * time.Millisecond
	ui := web.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ui.Run(ctx, nc, js) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	hs := httptest.NewServer(ui.Handler())
	t.Cleanup(hs.Close)
	t.Cleanup(ui.Close) // runs first: the event streams end, so hs.Close does not wait on them
	return ui, hs, nc, js
}

func startReader(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	kv, err := js.KeyValue(ctx, stage.SourcesBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stage.Config{Name: reader.StageName, Stream: stage.StreamIngest, Consumer: stage.ConsumerReader,
		BatchWait: 100 * time.Millisecond, RetryDelay: 100 * time.Millisecond, DrainTimeout: 2 * time.Second, Logger: quiet()}
	// Frames go one at a time with progress every 50 ms, so the page sees the count move.
	rc := reader.Config{ProgressEvery: 50 * time.Millisecond, Logger: quiet()}
	done := make(chan error, 1)
	go func() { done <- stage.Run(ctx, js, cfg, reader.New(rc, kv)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("reader stage did not stop")
		}
	})
}

func ingest(t *testing.T, js jetstream.JetStream, source, uri string) {
	t.Helper()
	req := &messages.IngestRequest{Source: source, URI: uri, Params: messages.DefaultParams(), AtMillis: time.Now().UnixMilli()}
	msg, err := stage.EncodeMsg(stage.Output{Subject: messages.Subject(messages.SubjectIngest, source), MsgID: source + ".ingest", Message: req})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// rowState is a source's row as the page shows it.
type rowState struct {
	State      string `json:"state"`
	FramesRead string `json:"frames_read"`
	Progress   int    `json:"progress"`
	People     string `json:"people"`
	Banner     string `json:"banner"`
}

func readRow(ctx context.Context, source string) (rowState, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[rowState](fmt.Sprintf(`(() => {
  const tr = document.querySelector('tr[data-source=%q]');
  const banner = document.getElementById("nats").textContent;
  if (!tr) return {banner};
  const f = n => tr.querySelector('[data-field="' + n + '"]');
  return {state: f("state").dataset.state, frames_read: f("frames_read").textContent, progress: Number(f("progress").value),
    people: f("people").textContent, banner};
})()`, source)))
}

// waitRow polls the page until ok holds for the source's row.
func waitRow(t *testing.T, ctx context.Context, source string, d time.Duration, ok func(rowState) bool) rowState {
	t.Helper()
	deadline := time.Now().Add(d)
	var last rowState
	for time.Now().Before(deadline) {
		r, err := readRow(ctx, source)
		if err != nil {
			t.Fatal(err)
		}
		if last = r; ok(r) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("row of %s never got there; last %+v", source, last)
	return last
}

// TestLiveProgressInBrowser reads the sample clip with a real reader while chromium shows the
// sources page: the frame count moves while the source runs, and after the NATS server is
// stopped the page keeps the last state, says NATS is away, and follows new events once the
// server is back.
func TestLiveProgressInBrowser(t *testing.T) {
	if _, err := os.Stat(clip); err != nil {
		t.Skipf("shared clip not available: %v", err)
	}
	ctx := browser.New(t)
	env := startNATS(t)
	_, hs, _, _ := startUI(t, env.Server.ClientURL(), web.Config{})
	if err := chromedp.Do(browser.Within(t, ctx, 30*time.Second), chromedp.Navigate(hs.URL+"/")); err != nil {
		t.Fatal(err)
	}
	startReader(t, env.JS)
	ingest(t, env.JS, "clip", clip)

	seen := map[string]bool{}
	deadline := time.Now().Add(2 * time.Minute)
	var last rowState
	for time.Now().Before(deadline) {
		r, err := readRow(ctx, "clip")
		if err != nil {
			t.Fatal(err)
		}
		last = r
		if r.State == "progress" || r.State == "reading" {
			seen[r.FramesRead] = true
		}
		if r.State == "done" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if last.State != "done" || last.FramesRead != "275 / 275" || last.Progress != 100 {
		t.Fatalf("final row %+v", last)
	}
	if len(seen) < 2 {
		t.Errorf("the frame count did not move while the source ran: saw %v", seen)
	}
	t.Logf("frame counts seen while reading: %d distinct", len(seen))
	browser.Screenshot(t, ctx, "live-sources.png", false)

	env.Server.Stop()
	r := waitRow(t, ctx, "clip", 15*time.Second, func(r rowState) bool { return strings.Contains(r.Banner, "not connected") })
	if r.State != "done" || r.FramesRead != "275 / 275" {
		t.Errorf("the page lost the last state while NATS was away: %+v", r)
	}
	browser.Screenshot(t, ctx, "live-sources-nats-down.png", false)
	// A client of the new server publishes a result of the source: the page shows it.
	publishResult(t, env.Restart(t).JS, "clip", 3, 4)
	waitRow(t, ctx, "clip", 30*time.Second, func(r rowState) bool {
		return strings.Contains(r.Banner, "connected to NATS") && !strings.Contains(r.Banner, "not") && r.People == "3"
	})
}

func jpegOf(t *testing.T, c color.RGBA) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 48, 64))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// publishResult stores a final result of people clusters (faces each, crops in the Object
// Store, linked to gallery people ptest0, ptest1, …) on results.<source>.
func publishResult(t *testing.T, js jetstream.JetStream, source string, people, faces int) *messages.ClusterResult {
	t.Helper()
	ctx := context.Background()
	obj, err := js.ObjectStore(ctx, stage.ImagesBucket)
	if err != nil {
		t.Fatal(err)
	}
	p := messages.DefaultParams()
	p.Cut, p.CannotLink = messages.CutCalibrated, true
	r := &messages.ClusterResult{Source: source, Final: true, FramesSeen: 275, FramesAccepted: 100, Threshold: 1.2, Params: p,
		FaceModel: "fr_feature-512", ClothModel: "mobilenet_v1-512", Bucket: stage.ImagesBucket, AtMillis: time.Now().UnixMilli()}
	for c := 0; c < people; c++ {
		cl := messages.Cluster{ID: c, Person: fmt.Sprintf("ptest%d", c)}
		for i := 0; i < faces; i++ {
			seq := int64(c*1000 + i)
			m := messages.Member{Seq: seq, Frame: seq * 2, PTSMillis: seq * 80, Face: 0, Box: messages.Box{10, 40, 50, 10},
				Image: fmt.Sprintf("%s/faces/%06d-0.jpg", source, seq)}
			if _, err := obj.PutBytes(ctx, m.Image, jpegOf(t, color.RGBA{uint8(60 * c), 120, 200, 255})); err != nil {
				t.Fatal(err)
			}
			cl.Members = append(cl.Members, m)
			r.Faces++
		}
		r.Clusters = append(r.Clusters, cl)
	}
	r.Dropped = []messages.Member{{Seq: 99, Frame: 198, PTSMillis: 7920, Box: messages.Box{5, 25, 30, 5}}}
	r.Faces++
	msg, err := stage.EncodeMsg(stage.Output{Subject: messages.Subject(messages.SubjectResults, source), MsgID: source + ".result.test", Message: r})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSourcePageInBrowser opens a source's result page served from the stored result and the
// Object Store: its counts are the result's and every image loads.
func TestSourcePageInBrowser(t *testing.T) {
	ctx := browser.New(t)
	env := startNATS(t)
	res := publishResult(t, env.JS, "lobby", 4, 40) // more faces than a section shows at once
	ui, hs, _, _ := startUI(t, env.Server.ClientURL(), web.Config{})
	deadline := time.Now().Add(10 * time.Second)
	for len(ui.Sources()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := chromedp.Do(browser.Within(t, ctx, 30*time.Second), chromedp.Navigate(hs.URL+"/sources/lobby/")); err != nil {
		t.Fatal(err)
	}
	type counts struct {
		Faces    int `json:"faces"`
		People   int `json:"people"`
		Sections int `json:"sections"`
		Figures  int `json:"figures"`
		Buttons  int `json:"buttons"`
		Gallery  int `json:"gallery"`
	}
	// The buttons bring in each person's other faces: the page's script runs under the UI's
	// Content-Security-Policy.
	got, err := chromedp.Run(browser.Within(t, ctx, 10*time.Second), chromedp.Evaluate[counts](`(() => {
  const bs = [...document.querySelectorAll("button[data-more]")];
  for (const b of bs) b.click();
  return {faces: Number(document.getElementById("faces").textContent), people: Number(document.getElementById("people").textContent),
    sections: document.querySelectorAll("section[data-person]").length, figures: document.querySelectorAll(".faces figure").length,
    buttons: bs.length, gallery: document.querySelectorAll('section[data-person] a[href^="/people/#person-"]').length};
})()`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Faces != res.Faces || got.People != len(res.Clusters) || got.Sections != len(res.Clusters) ||
		got.Figures != res.Faces-len(res.Dropped) || got.Buttons != len(res.Clusters) || got.Gallery != len(res.Clusters) {
		t.Errorf("page says %+v; the result has %d faces, %d people, %d dropped", got, res.Faces, len(res.Clusters), len(res.Dropped))
	}
	imgs, err := browser.ImagesLoaded(browser.Within(t, ctx, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := res.Faces - len(res.Dropped) + len(res.Clusters) + 1; imgs.Total != want || len(imgs.Broken) > 0 {
		t.Errorf("%d images (want %d), broken: %v", imgs.Total, want, imgs.Broken)
	}
	browser.Screenshot(t, ctx, "live-source-page.png", false)

	for _, path := range []string{"/", "/sources/lobby/", "/api/sources"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || debugText.Match(body) {
			t.Errorf("GET %s: %s, Go debug text %q", path, resp.Status, debugText.Find(body))
		}
	}
	for _, path := range []string{"/objects/lobby/../other/x.jpg", "/objects/lobby/faces/000000-0.gz", "/objects/..%2Fx.jpg", "/sources/nope/"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}
}

// TestCancelNeedsToken: a write without the token, or with a wrong one, changes nothing; with
// it the queued source is marked cancelled; with no token configured, writes are off.
func TestCancelNeedsToken(t *testing.T) {
	env := startNATS(t)
	ingest(t, env.JS, "queued", clip) // no reader runs: it stays queued
	_, hs, _, _ := startUI(t, env.Server.ClientURL(), web.Config{Token: "s3cret", Cancel: reader.Cancel})
	_, off, _, _ := startUI(t, env.Server.ClientURL(), web.Config{Cancel: reader.Cancel})
	kv, err := env.JS.KeyValue(context.Background(), stage.SourcesBucket)
	if err != nil {
		t.Fatal(err)
	}
	post := func(base, auth string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/sources/queued/cancel", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cancelled := func() bool {
		p, _, err := reader.LoadProgress(context.Background(), kv, "queued")
		if err != nil {
			t.Fatal(err)
		}
		return p != nil && p.Cancel
	}
	for _, tc := range []struct {
		name, base, auth string
		want             int
	}{
		{"no token", hs.URL, "", http.StatusUnauthorized},
		{"wrong token", hs.URL, "Bearer guess", http.StatusUnauthorized},
		{"token as a cookie-like value", hs.URL, "s3cret", http.StatusUnauthorized},
		{"writes off", off.URL, "Bearer s3cret", http.StatusForbidden},
	} {
		if got := post(tc.base, tc.auth); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
		if cancelled() {
			t.Fatalf("%s: the source was cancelled", tc.name)
		}
	}
	if got := post(hs.URL, "Bearer s3cret"); got != http.StatusOK {
		t.Fatalf("with the token: %d", got)
	}
	if !cancelled() {
		t.Error("the source was not marked cancelled")
	}
	// A GET cannot write.
	resp, err := http.Get(hs.URL + "/api/sources/queued/cancel")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET cancel: %s", resp.Status)
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{":8080": "127.0.0.1:8080", "0.0.0.0:80": "0.0.0.0:80", "[::1]:9": "[::1]:9", "bad": "bad"} {
		if got := web.ListenAddr(in); got != want {
			t.Errorf("ListenAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func publish(t *testing.T, js jetstream.JetStream, subject, msgID string, m messages.Message) {
	t.Helper()
	msg, err := stage.EncodeMsg(stage.Output{Subject: subject, MsgID: msgID, Message: m})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// TestFramesEncoded: a source's encoded frames are those with both vector messages stored.
func TestFramesEncoded(t *testing.T) {
	env := startNATS(t)
	publish(t, env.JS, "status.v1", "v1.status", &messages.Status{Source: "v1", Stage: "reader", State: messages.StateProgress,
		FramesRead: 10, FramesTotal: 10, AtMillis: time.Now().UnixMilli()})
	p := messages.DefaultParams()
	for seq := int64(0); seq < 3; seq++ {
		publish(t, env.JS, "facevec.v1", fmt.Sprintf("v1.%d.encoder", seq), &messages.FaceVectors{Source: "v1", Seq: seq, Index: seq, Params: p})
		if seq < 2 {
			publish(t, env.JS, "clothvec.v1", fmt.Sprintf("v1.%d.embedder", seq), &messages.ClothVectors{Source: "v1", Seq: seq, Index: seq, Params: p})
		}
	}
	ui, _, _, _ := startUI(t, env.Server.ClientURL(), web.Config{})
	deadline := time.Now().Add(10 * time.Second)
	var got []web.SourceState
	for time.Now().Before(deadline) {
		if got = ui.Sources(); len(got) == 1 && got[0].FramesEncoded == 2 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("sources %+v, want v1 with 2 frames encoded", got)
}

// The state column says what the stages behind a finished reader are doing until the final
// result, and the page's script gets the same words from the event stream.
func TestSourceStateLabel(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   web.SourceState
		want string
	}{
		{"reading", web.SourceState{State: messages.StateProgress, FramesPublished: 10}, "progress"},
		{"read, vectors pending", web.SourceState{State: messages.StateDone, Reason: "end", FramesPublished: 275, FramesEncoded: 218}, "encoding"},
		{"read and encoded", web.SourceState{State: messages.StateDone, Reason: "end", FramesPublished: 275, FramesEncoded: 275, Result: "intermediate"}, "clustering"},
		{"final", web.SourceState{State: messages.StateDone, Reason: "end", FramesPublished: 275, FramesEncoded: 275, Result: "final"}, "done"},
		{"failed", web.SourceState{State: messages.StateFailed, Reason: "cannot open video"}, "failed: cannot open video"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.st.Label(); got != tc.want {
				t.Errorf("Label() = %q, want %q", got, tc.want)
			}
			data, err := json.Marshal(tc.st)
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				Label string `json:"label"`
				State string `json:"state"`
			}
			if err := json.Unmarshal(data, &back); err != nil || back.Label != tc.want || back.State != tc.st.State {
				t.Errorf("JSON %s: label %q state %q, want %q %q (%v)", data, back.Label, back.State, tc.want, tc.st.State, err)
			}
		})
	}
}

// TestClustererProgress: the clusterer's progress events give a source's accepted frames and
// faces before its first result; a live window's result, which counts only its own frames,
// does not take them back.
func TestClustererProgress(t *testing.T) {
	env := startNATS(t)
	publish(t, env.JS, messages.StageStatusSubject(messages.StageClusterer, "v2"), "v2.progress.1", &messages.Status{Source: "v2",
		Stage: messages.StageClusterer, State: messages.StateProgress, FramesAccepted: 70, Faces: 190, AtMillis: time.Now().UnixMilli()})
	ui, _, _, _ := startUI(t, env.Server.ClientURL(), web.Config{})
	waitState := func(ok func(web.SourceState) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var got []web.SourceState
		for time.Now().Before(deadline) {
			if got = ui.Sources(); len(got) == 1 && ok(got[0]) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("sources %+v, want %s", got, what)
	}
	waitState(func(s web.SourceState) bool { return s.FramesAccepted == 70 && s.Faces == 190 && s.Result == "" }, "70 accepted frames and 190 faces before any result")
	res := &messages.ClusterResult{Source: "v2", FramesSeen: 100, FramesAccepted: 40, Faces: 120, Threshold: 1, Params: messages.DefaultParams(),
		Clusters: []messages.Cluster{{ID: 0}, {ID: 1}}, Window: 1, AtMillis: time.Now().UnixMilli()}
	publish(t, env.JS, "results.v2", "v2.w0.clusterer", res)
	waitState(func(s web.SourceState) bool { return s.People == 2 && s.FramesAccepted == 70 && s.Faces == 190 }, "2 people and the counts kept")
}
