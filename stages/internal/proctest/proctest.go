// Package proctest runs the personcluster binary as separate OS processes for tests: NATS
// server nodes and stages, each with its log in a file, killed with SIGKILL and restarted at
// will, and compares what a deployment produced with the one-process `run`.
//
// The binary is built once per test binary (Main removes it at the end); PERSONCLUSTER_BIN
// names a prebuilt one instead.
package proctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/personcluster/personcluster/stages/internal/testenv"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

// Main runs the tests and removes the binary built for them.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Binary returns the personcluster binary, building ./cmd/personcluster on first use.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("PERSONCLUSTER_BIN"); p != "" {
			binPath = p
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "personcluster-proctest-"); buildErr != nil {
			return
		}
		out := filepath.Join(buildDir, "personcluster")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/personcluster")
		cmd.Dir = testenv.Root()
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("proctest: go build ./cmd/personcluster: %w\n%s", err, msg)
			return
		}
		binPath = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proctest: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Harness starts processes of the binary for one test and stops them all when it ends; a
// failed test gets the tail of every process log. PROCTEST_LOGS=DIR keeps the logs (and
// whatever else the test writes in Dir) under DIR/<test name>.
type Harness struct {
	T   testing.TB
	Bin string
	Dir string   // logs and anything else the test writes
	Env []string // added to every process's environment (KEY=VALUE)

	mu    sync.Mutex
	procs []*Proc
	seq   int
}

// New returns a harness; models come from testenv.ModelsDir.
func New(t testing.TB) *Harness {
	t.Helper()
	dir := t.TempDir()
	if keep := os.Getenv("PROCTEST_LOGS"); keep != "" {
		dir = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &Harness{T: t, Bin: Binary(t), Dir: dir,
		Env: []string{"PERSONCLUSTER_MODELS=" + testenv.ModelsDir(t)}}
	t.Cleanup(h.cleanup)
	return h
}

func (h *Harness) cleanup() {
	h.mu.Lock()
	procs := append([]*Proc(nil), h.procs...)
	h.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	if h.T.Failed() {
		for _, p := range procs {
			for _, l := range p.Logs() {
				h.T.Logf("---- %s (last 40 lines)\n%s", filepath.Base(l), tail(l, 40))
			}
		}
	}
}

// Proc is one long-running process (a server node or a stage), restartable.
type Proc struct {
	Name string
	h    *Harness
	args []string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status of the last run
	logs []string
	runs int
	// Kills counts SIGKILLs sent to a running process.
	Kills int
}

// Start starts a process of the binary: name labels its logs, args are its command line and
// env is added to the harness's environment.
func (h *Harness) Start(name string, args []string, env ...string) *Proc {
	h.T.Helper()
	p := &Proc{Name: name, h: h, args: args, env: env}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	if err := p.start(); err != nil {
		h.T.Fatal(err)
	}
	return p
}

func (p *Proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("proctest: %s is running", p.Name)
	}
	p.runs++
	logPath := filepath.Join(p.h.Dir, fmt.Sprintf("%s.%d.log", p.Name, p.runs))
	f, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("proctest: %w", err)
	}
	cmd := exec.Command(p.h.Bin, p.args...)
	cmd.Dir = p.h.Dir
	cmd.Env = append(append(os.Environ(), p.h.Env...), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Die with the test binary, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("proctest: starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	p.logs = append(p.logs, logPath)
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL (when running) and waits for the process to be gone.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd != nil && !isClosed(done) {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		p.Kills++
	}
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Stop sends SIGTERM and waits up to wait for a clean exit, then kills.
func (p *Proc) Stop(wait time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(wait):
		p.Kill()
		return fmt.Errorf("proctest: %s did not stop within %s of SIGTERM", p.Name, wait)
	}
	return p.ExitErr()
}

// WaitExit waits for the current run to exit and returns its exit status.
func (p *Proc) WaitExit(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return fmt.Errorf("proctest: %s never started", p.Name)
	}
	select {
	case <-done:
		return p.ExitErr()
	case <-ctx.Done():
		return fmt.Errorf("proctest: %s still running: %w", p.Name, ctx.Err())
	}
}

// Restart starts the process again with the same arguments; it must have exited.
func (p *Proc) Restart() {
	p.h.T.Helper()
	if err := p.start(); err != nil {
		p.h.T.Fatal(err)
	}
}

// Running reports whether the current run has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !isClosed(p.done)
}

// ExitErr is the exit status of the last run (nil while running or after exit 0).
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Pid is the current run's process id.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Logs lists the log files of every run, oldest first.
func (p *Proc) Logs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logs...)
}

// Log returns the current run's log.
func (p *Proc) Log() string {
	logs := p.Logs()
	if len(logs) == 0 {
		return ""
	}
	data, _ := os.ReadFile(logs[len(logs)-1])
	return string(data)
}

// WaitLog waits until the current run's log contains text. It fails at once when the process
// exits first, and when ctx ends.
func (p *Proc) WaitLog(ctx context.Context, text string) error {
	for {
		if strings.Contains(p.Log(), text) {
			return nil
		}
		if !p.Running() {
			return fmt.Errorf("proctest: %s exited (%v) before logging %q:\n%s", p.Name, p.ExitErr(), text, tailText(p.Log(), 30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proctest: %s did not log %q: %w\n%s", p.Name, text, ctx.Err(), tailText(p.Log(), 30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Run runs a short command of the binary to its end and returns its standard output; its
// standard error goes to a log file (and into the error).
func (h *Harness) Run(ctx context.Context, name string, args ...string) (string, error) {
	h.mu.Lock()
	h.seq++
	n := h.seq
	h.mu.Unlock()
	logPath := filepath.Join(h.Dir, fmt.Sprintf("%s.run%d.log", name, n))
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	cmd.Dir = h.Dir
	cmd.Env = append(os.Environ(), h.Env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	_ = os.WriteFile(logPath, stderr.Bytes(), 0o644)
	if err != nil {
		return stdout.String(), fmt.Errorf("proctest: personcluster %s: %w\n%s", strings.Join(args, " "), err, tailText(stderr.String(), 30))
	}
	return stdout.String(), nil
}

// WaitAll waits for each process to log text.
func WaitAll(ctx context.Context, text string, procs ...*Proc) error {
	var errs []error
	for _, p := range procs {
		if err := p.WaitLog(ctx, text); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return tailText(string(data), n)
}

func tailText(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// URL is nats://127.0.0.1:port.
func URL(port int) string { return "nats://127.0.0.1:" + strconv.Itoa(port) }
