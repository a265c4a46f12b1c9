package reader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"strconv"
	"time"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/vision"
)

// sourceError is a problem with the source itself (missing, unreadable, not answering): the
// source fails with this reason and the request is acknowledged, never retried.
type sourceError struct{ err error }

// Error never shows a URL's credentials: it becomes a status reason and a log line.
func (e sourceError) Error() string { return messages.Redacted(e.err.Error()) }
func (e sourceError) Unwrap() error { return e.err }

func sourceErrorf(format string, args ...any) error {
	return sourceError{fmt.Errorf(format, args...)}
}

// isSourceError reports whether err is about the source rather than the reader's environment.
func isSourceError(err error) bool {
	var se sourceError
	return errors.As(err, &se)
}

// readResult is what one step through a source found.
type readResult int

const (
	gotFrame    readResult = iota // a frame was read (or grabbed)
	badFrame                      // the frame at this index could not be decoded; it is skipped
	reconnected                   // a live source dropped and was reopened; nothing was consumed
	endOfSource
)

// source reads one video source frame by frame with the reader's rules for corrupt frames,
// truncated files and dropped live streams. Counters are absolute from the start of the source
// (a resumed file is re-read from its start, so they come out the same every time).
type source struct {
	uri   string
	live  bool
	cfg   *Config
	log   *slog.Logger
	v     *vision.Video
	fps   float64
	total int64 // frames the container declares (0: unknown or live)

	index      int64 // index of the next frame
	framesRead int64 // frames decoded
	corrupt    int64 // frames skipped as undecodable (confirmed by a later good frame)
	failRun    int64 // consecutive failed reads since the last good frame
	attempts   int   // reconnect attempts since the last good frame (live)
	truncated  bool  // the file ended before its declared frame count
	dropped    bool  // a live source failed a read (reconnecting, not opening)
}

// openSource opens uri. A live source that does not answer is retried with backoff; a file
// that cannot be opened fails at once.
func openSource(ctx context.Context, uri string, live bool, cfg *Config, log *slog.Logger) (*source, error) {
	s := &source{uri: uri, live: live || isCamera(uri), cfg: cfg, log: log}
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	// A network URL without a frame count is a stream, not a remote file.
	if vision.IsLiveURI(uri) && s.total == 0 {
		s.live = true
	}
	if s.live {
		s.total = 0
	}
	return s, nil
}

func isCamera(uri string) bool {
	_, err := strconv.Atoi(uri)
	return err == nil
}

func (s *source) open(ctx context.Context) error {
	remote := s.live || vision.IsLiveURI(s.uri)
	if !remote {
		st, err := os.Stat(s.uri)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return sourceErrorf("reader: %s: no such file", s.uri)
		case err != nil:
			return sourceErrorf("reader: %s: %w", s.uri, err)
		case st.IsDir():
			return sourceErrorf("reader: %s is a directory, not a video", s.uri)
		}
	}
	for {
		v, err := vision.OpenVideo(s.uri)
		if err == nil {
			s.v, s.fps, s.total = v, v.FPS(), v.FrameCount()
			return nil
		}
		if !remote {
			// OpenCV says no more than "Error opening file".
			return sourceErrorf("reader: %s is not a readable video (OpenCV/FFmpeg cannot open it: unknown format, or truncated)", s.uri)
		}
		if s.attempts >= s.cfg.Reconnects {
			if s.dropped {
				return sourceErrorf("reader: %s dropped and did not come back after %d reconnect attempts", s.uri, s.attempts)
			}
			return sourceErrorf("reader: %s did not answer after %d attempts (OpenCV/FFmpeg cannot open it)", s.uri, s.attempts+1)
		}
		if err := s.backoff(ctx, err); err != nil {
			return err
		}
	}
}

// backoff waits before reconnect attempt s.attempts+1: ReconnectBackoff doubling up to
// MaxBackoff.
func (s *source) backoff(ctx context.Context, cause error) error {
	s.attempts++
	d := time.Duration(math.Min(float64(s.cfg.ReconnectBackoff)*math.Pow(2, float64(s.attempts-1)), float64(s.cfg.MaxBackoff)))
	s.log.Warn("source not answering; reconnecting", "uri", messages.Redacted(s.uri), "attempt", s.attempts, "of", s.cfg.Reconnects, "backoff", d, "err", cause)
	if err := sleep(ctx, d); err != nil {
		return err
	}
	return nil
}

// step reads the frame at s.index into m, or only decodes it when grab is set (cheaper, for
// frames that are not published; files only). A failed read in the middle of a file marks the
// frame corrupt and moves on; MaxCorruptRun failures in a row, or a failure at or past the
// declared frame count, end the file. A live source that drops is reopened with backoff.
func (s *source) step(ctx context.Context, m *gocv.Mat, grab bool) (readResult, error) {
	var ok bool
	if grab && !s.live {
		ok = s.v.Grab()
	} else {
		ok = s.v.Read(m) && !m.Empty()
	}
	if ok {
		s.index++
		s.framesRead++
		s.corrupt += s.failRun
		s.failRun, s.attempts, s.dropped = 0, 0, false
		return gotFrame, nil
	}
	if s.live {
		s.dropped = true
		if s.attempts >= s.cfg.Reconnects {
			return endOfSource, sourceErrorf("reader: %s dropped and did not come back after %d reconnect attempts", s.uri, s.attempts)
		}
		s.v.Close()
		if err := s.backoff(ctx, errors.New("read failed")); err != nil {
			return endOfSource, err
		}
		if err := s.open(ctx); err != nil {
			return endOfSource, err
		}
		return reconnected, nil
	}
	if s.total > 0 && s.index < s.total && s.failRun < int64(s.cfg.MaxCorruptRun) {
		s.failRun++
		s.index++
		return badFrame, nil
	}
	// The end. Failures just before it were not corrupt frames but the missing tail of a
	// truncated file: take them back.
	s.index -= s.failRun
	missing := s.total - s.index
	s.truncated = s.total > 0 && missing > max(2, s.total/200)
	s.failRun = 0
	return endOfSource, nil
}

func (s *source) close() {
	if s.v != nil {
		s.v.Close()
	}
}

// posMillis is the backend's time of the last frame read.
func (s *source) posMillis() int64 {
	return int64(math.Round(s.v.PosMillis()))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
