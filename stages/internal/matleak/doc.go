// Package matleak makes a test binary built with `go test -tags matprofile` fail when its tests
// leave OpenCV Mats unclosed (gocv counts them only under that tag). A package's leak_test.go,
// built with the same tag, calls Main from its TestMain.
package matleak
