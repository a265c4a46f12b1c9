//go:build matprofile

package matleak

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// Main runs the tests, then exits non-zero if any failed or any Mat is still open, printing
// where each leaked Mat was made. pkg names the package in the message.
func Main(m *testing.M, pkg string) {
	code := m.Run()
	if n := gocv.MatProfile.Count(); n != 0 {
		var b strings.Builder
		_ = gocv.MatProfile.WriteTo(&b, 1)
		fmt.Fprintf(os.Stderr, "%s: %d OpenCV Mats leaked:\n%s", pkg, n, b.String())
		code = 1
	}
	os.Exit(code)
}
