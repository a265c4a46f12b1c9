package vision

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
)

// ErrOpen reports a source that cannot be opened.
var ErrOpen = errors.New("vision: cannot open video source")

// Video is an open video source: a file, a stream URL or a camera.
type Video struct {
	cap   *gocv.VideoCapture
	uri   string
	fps   float64
	count int64
}

// IsLiveURI reports whether uri names a stream or camera rather than a file.
func IsLiveURI(uri string) bool {
	if _, err := strconv.Atoi(uri); err == nil {
		return true
	}
	for _, p := range []string{"rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://"} {
		if strings.HasPrefix(strings.ToLower(uri), p) {
			return true
		}
	}
	return false
}

// OpenVideo opens uri with OpenCV's FFmpeg backend (a camera index uses the default backend).
func OpenVideo(uri string) (*Video, error) {
	var vc *gocv.VideoCapture
	var err error
	if idx, convErr := strconv.Atoi(uri); convErr == nil {
		vc, err = gocv.OpenVideoCapture(idx)
	} else {
		if !IsLiveURI(uri) {
			st, statErr := os.Stat(uri)
			if statErr != nil {
				return nil, fmt.Errorf("%w %s: %v", ErrOpen, uri, statErr)
			}
			if st.IsDir() {
				return nil, fmt.Errorf("%w %s: is a directory", ErrOpen, uri)
			}
		}
		vc, err = gocv.VideoCaptureFileWithAPI(uri, gocv.VideoCaptureFFmpeg)
	}
	if err != nil {
		// OpenCV names the URL in its error: neither may show its credentials.
		return nil, fmt.Errorf("%w %s: %s", ErrOpen, messages.Redacted(uri), messages.Redacted(err.Error()))
	}
	if !vc.IsOpened() {
		vc.Close()
		return nil, fmt.Errorf("%w %s: not a readable video", ErrOpen, messages.Redacted(uri))
	}
	v := &Video{cap: vc, uri: uri, fps: vc.Get(gocv.VideoCaptureFPS), count: int64(vc.Get(gocv.VideoCaptureFrameCount))}
	if v.fps <= 0 || v.fps > 1000 {
		v.fps = 0
	}
	if v.count < 0 {
		v.count = 0
	}
	return v, nil
}

// FPS is the source's frame rate, 0 when unknown.
func (v *Video) FPS() float64 { return v.fps }

// FrameCount is the number of frames the container declares, 0 when unknown (live).
func (v *Video) FrameCount() int64 { return v.count }

// Read decodes the next frame into m; false at the end of the stream or on a read failure.
func (v *Video) Read(m *gocv.Mat) bool {
	if v.cap == nil {
		return false
	}
	return v.cap.Read(m)
}

// PosMillis is the current position in milliseconds.
func (v *Video) PosMillis() float64 {
	if v.cap == nil {
		return 0
	}
	return v.cap.Get(gocv.VideoCapturePosMsec)
}

// Close releases the source; safe to call twice.
func (v *Video) Close() error {
	if v.cap == nil {
		return nil
	}
	err := v.cap.Close()
	v.cap = nil
	return err
}

// Grab decodes the next frame without converting it to BGR, which is cheaper than Read for a
// frame nobody looks at; false at the end of the stream or on a read failure. It detects
// failure by the backend's frame counter (FFmpeg counts decoded frames), so use it for files.
func (v *Video) Grab() bool {
	if v.cap == nil {
		return false
	}
	before := v.cap.Get(gocv.VideoCapturePosFrames)
	v.cap.Grab(1)
	return v.cap.Get(gocv.VideoCapturePosFrames) > before
}
