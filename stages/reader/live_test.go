package reader_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/vision"
)

// mjpegServer serves an endless multipart MJPEG stream (what IP cameras send) and drops each
// connection after perConn frames; after maxConns connections it stops answering.
type mjpegServer struct {
	url      string
	conns    atomic.Int32
	perConn  int
	maxConns int32
	frame    []byte
	srv      *http.Server
	ln       net.Listener
	once     sync.Once
}

func startMJPEG(t *testing.T, perConn int, maxConns int32) *mjpegServer {
	t.Helper()
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(40, 90, 200, 0), 120, 160, gocv.MatTypeCV8UC3)
	defer img.Close()
	frame, err := vision.EncodeJPEG(img, 80)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &mjpegServer{url: "http://" + ln.Addr().String() + "/cam.mjpg", perConn: perConn, maxConns: maxConns, frame: frame, ln: ln}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve)}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *mjpegServer) serve(w http.ResponseWriter, r *http.Request) {
	n := s.conns.Add(1)
	if n > s.maxConns {
		// Gone for good: stop listening, so the next attempts are refused.
		s.once.Do(func() { go s.srv.Close() })
		http.Error(w, "camera offline", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary=frame")
	flusher := w.(http.Flusher)
	for i := 0; i < s.perConn; i++ {
		fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(s.frame))
		if _, err := w.Write(s.frame); err != nil {
			return
		}
		fmt.Fprint(w, "\r\n")
		flusher.Flush()
		time.Sleep(5 * time.Millisecond)
	}
	// Drop the connection mid-stream, as a camera on a bad link does.
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
		}
	}
}

func mjpegReadable(t *testing.T, url string) {
	t.Helper()
	vc, err := gocv.VideoCaptureFileWithAPI(url, gocv.VideoCaptureFFmpeg)
	if err != nil || !vc.IsOpened() {
		t.Skipf("this OpenCV/FFmpeg cannot read an HTTP MJPEG stream: %v", err)
	}
	vc.Close()
}

// A live stream that drops is reopened with backoff; its frames keep counting on. A stream that
// does not come back fails the source with a clear reason after the configured attempts.
func TestLiveReconnect(t *testing.T) {
	probe := startMJPEG(t, 3, 1)
	mjpegReadable(t, probe.url)

	env := start(t, testTopology())
	startReader(t, env.JS, readerConfig(env.JS))

	back := startMJPEG(t, 40, 3) // drops twice, comes back each time
	req := request("cam", back.url)
	req.Live = true
	req.Sampling.MaxFrames = 100
	ingest(t, env.JS, req, "")
	st := finalStatus(t, env.JS, "cam", 60*time.Second)
	fs, eos := frames(t, env.JS, "cam", 5*time.Second)
	if st.State != messages.StateDone || eos.Reason != "max_frames" || len(fs) != 100 {
		t.Fatalf("status %+v, end %+v, %d frames", st, eos, len(fs))
	}
	for i, f := range fs {
		if f.Seq != int64(i) || f.Width != 160 || f.Height != 120 {
			t.Fatalf("frame %d: seq %d %dx%d", i, f.Seq, f.Width, f.Height)
		}
		if i > 0 && (f.Index <= fs[i-1].Index || f.PTSMillis < fs[i-1].PTSMillis) {
			t.Fatalf("frame %d: index %d pts %d after index %d pts %d", i, f.Index, f.PTSMillis, fs[i-1].Index, fs[i-1].PTSMillis)
		}
	}
	if n := back.conns.Load(); n < 3 {
		t.Errorf("%d connections: the reader did not reconnect", n)
	}

	gone := startMJPEG(t, 20, 1) // drops once and never answers again
	req = request("cam-gone", gone.url)
	req.Live = true
	ingest(t, env.JS, req, "")
	st = finalStatus(t, env.JS, "cam-gone", 60*time.Second)
	fs, eos = frames(t, env.JS, "cam-gone", 5*time.Second)
	t.Logf("gone: %s: %s", st.State, st.Reason)
	if st.State != messages.StateFailed || st.Reason != "reader: "+gone.url+" dropped and did not come back after 3 reconnect attempts" {
		t.Errorf("gone: status %s %q", st.State, st.Reason)
	}
	if len(fs) < 15 || eos.Frames != int64(len(fs)) || !strings.HasPrefix(eos.Reason, "error: ") {
		t.Errorf("gone: %d frames, end %+v", len(fs), eos)
	}
}

// `ingest --cancel` stops a live source, which would otherwise never end.
func TestCancelLive(t *testing.T) {
	cam := startMJPEG(t, 1<<30, 2) // one connection for the probe, one for the reader
	mjpegReadable(t, cam.url)
	env := start(t, testTopology())
	startReader(t, env.JS, readerConfig(env.JS))
	req := request("endless", cam.url)
	req.Live = true
	ingest(t, env.JS, req, "")
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p := progressOf(t, env.JS, "endless"); p != nil && p.NextSeq >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the live source published nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := reader.Cancel(ctx, env.JS, "endless"); err != nil {
		t.Fatal(err)
	}
	st := finalStatus(t, env.JS, "endless", 10*time.Second)
	fs, eos := frames(t, env.JS, "endless", 5*time.Second)
	if st.State != messages.StateCancelled || eos.Reason != "cancelled" || eos.Frames != int64(len(fs)) || len(fs) < 10 {
		t.Errorf("status %+v, end %+v, %d frames", st, eos, len(fs))
	}
	if p := progressOf(t, env.JS, "endless"); p.State != messages.StateCancelled || !p.Cancel {
		t.Errorf("progress %+v", p)
	}
}
