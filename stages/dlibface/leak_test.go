//go:build matprofile

package dlibface_test

import (
	"testing"

	"github.com/personcluster/personcluster/stages/internal/matleak"
)

// With `go test -tags matprofile`, fail when a test leaves an OpenCV Mat unclosed.
func TestMain(m *testing.M) { matleak.Main(m, "dlibface") }
