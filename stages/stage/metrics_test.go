package stage_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/stages/stage"
)

func TestMetricsAndHealthEndpoints(t *testing.T) {
	reg := stage.NewRegistry()
	m := reg.Stage("encoder")
	m.In.Add(3)
	m.Observe(20 * time.Millisecond)
	healthy := true
	reg.AddHealthCheck("nats", func() error {
		if !healthy {
			return errors.New("disconnected")
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := reg.ServeHTTP(ctx, "127.0.0.1:0", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, body := get("/metrics")
	for _, want := range []string{`personcluster_messages_in_total{stage="encoder"} 3`, `personcluster_process_seconds_bucket{stage="encoder",le="0.025"} 1`, "# TYPE personcluster_in_flight gauge"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q:\n%s", code, want, body)
		}
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d while healthy", code)
	}
	healthy = false
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "nats: disconnected") {
		t.Errorf("/healthz = %d %q while unhealthy", code, body)
	}
	if q := m.LatencyQuantile(0.5); q != 25*time.Millisecond {
		t.Errorf("p50 = %v, want the 25ms bucket", q)
	}
}

func TestStageOwnCounters(t *testing.T) {
	reg := stage.NewRegistry()
	var accepted, tooFew int64 = 7, 2
	reg.AddCounterFunc("personcluster_detector_frames_total", "Frames by verdict.", "counter", map[string]string{"verdict": "too_few_faces", "stage": "detector"}, func() int64 { return tooFew })
	reg.AddCounterFunc("personcluster_detector_frames_total", "Frames by verdict.", "counter", map[string]string{"verdict": "accepted", "stage": "detector"}, func() int64 { return accepted })
	var b strings.Builder
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	accepted++
	want := "# HELP personcluster_detector_frames_total Frames by verdict.\n# TYPE personcluster_detector_frames_total counter\n" +
		"personcluster_detector_frames_total{stage=\"detector\",verdict=\"accepted\"} 7\n" +
		"personcluster_detector_frames_total{stage=\"detector\",verdict=\"too_few_faces\"} 2\n"
	if !strings.Contains(b.String(), want) || strings.Count(b.String(), "# TYPE personcluster_detector_frames_total") != 1 {
		t.Errorf("exposition:\n%s", b.String())
	}
}
