//go:build matprofile

package dlibface_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// With `go test -tags matprofile`, fail when a test leaves an OpenCV Mat unclosed.
func TestMain(m *testing.M) {
	code := m.Run()
	if n := gocv.MatProfile.Count(); n != 0 {
		var b strings.Builder
		_ = gocv.MatProfile.WriteTo(&b, 1)
		fmt.Fprintf(os.Stderr, "dlibface: %d OpenCV Mats leaked:\n%s", n, b.String())
		code = 1
	}
	os.Exit(code)
}
