//go:build lean

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// mediaBinaryName is the plain build's name beside the lean one.
const mediaBinaryName = "personcluster-media"

// runMedia replaces this process with the plain build, same arguments,
// environment and standard streams, so signals and the exit status are its
// own.
func runMedia(_ context.Context, _ string, _ []string) error {
	bin, err := mediaBinary()
	if err != nil {
		return fmt.Errorf("this command needs the build with the media libraries (OpenCV, dlib, onnxruntime): %w", err)
	}
	if err := syscall.Exec(bin, os.Args, os.Environ()); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	return nil // not reached: Exec returns only on failure
}

// mediaBinary finds the plain build: $PERSONCLUSTER_MEDIA_BINARY, else
// personcluster-media beside this executable (symbolic links followed),
// else on PATH.
func mediaBinary() (string, error) {
	if p := os.Getenv("PERSONCLUSTER_MEDIA_BINARY"); p != "" {
		return p, nil
	}
	exe, err := os.Executable()
	if err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		beside := filepath.Join(filepath.Dir(exe), mediaBinaryName)
		if st, err := os.Stat(beside); err == nil && !st.IsDir() {
			return beside, nil
		}
	}
	if p, err := exec.LookPath(mediaBinaryName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is neither beside %s nor on PATH (`make build` builds both; or set PERSONCLUSTER_MEDIA_BINARY)", mediaBinaryName, exe)
}
