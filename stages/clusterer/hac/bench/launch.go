package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// A child's peak RSS as wait4 reports it is the largest of every memory
// map the process had, and os/exec starts children with vfork, whose map
// is the parent's until exec: every process this bench started directly
// reported at least this bench's own peak (1057 MB for a run that peaks at
// 553). So timed processes start through a launcher, this binary re-run
// with launchArg: it starts small, starts the command and reports its
// usage, which then counts the command's memory alone.
const launchArg = "-launch-measured"

// launched is what the launcher reports of its command.
type launched struct {
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_s"`  // user + system
	MaxRSS  int64   `json:"maxrss"` // bytes
	Status  int     `json:"status"` // exit status
}

// runLaunched runs name args through the launcher: the command's stdout,
// and its wall time, CPU time and peak RSS.
func runLaunched(name string, args ...string) ([]byte, *launched, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	report, err := os.CreateTemp("", "hac-launch-*.json")
	if err != nil {
		return nil, nil, err
	}
	report.Close()
	defer os.Remove(report.Name())
	cmd := exec.Command(self, append([]string{launchArg, report.Name(), name}, args...)...)
	cmd.Stderr = os.Stderr
	out, runErr := cmd.Output()
	data, err := os.ReadFile(report.Name())
	if err != nil || len(data) == 0 {
		return nil, nil, fmt.Errorf("%s: no usage report (%v)", name, errors.Join(runErr, err))
	}
	var l launched
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, nil, fmt.Errorf("%s: usage report: %w", name, err)
	}
	if runErr != nil {
		return out, &l, fmt.Errorf("%s: %w", name, runErr)
	}
	return out, &l, nil
}

// launch is the launcher's main: args are the report file, then the
// command. Its exit status is the command's.
func launch(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "bench: launcher: want a report file and a command")
		return 2
	}
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t0 := time.Now()
	err := cmd.Run()
	l := launched{Seconds: time.Since(t0).Seconds()}
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "bench: launcher:", err)
		return 2
	}
	l.Status = cmd.ProcessState.ExitCode()
	l.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		l.MaxRSS = int64(ru.Maxrss) * 1024
	}
	data, _ := json.Marshal(l)
	if werr := os.WriteFile(args[0], data, 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "bench: launcher:", werr)
		return 2
	}
	return l.Status
}
