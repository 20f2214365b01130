package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// logTailBytes is how much of a process's output a failing test prints.
const logTailBytes = 16 << 10

// Process is a child process whose stdout and stderr go to files in the test's temp dir.
type Process struct {
	Name       string
	StdoutPath string
	StderrPath string

	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// StartProcess starts path with args and registers a t.Cleanup that stops it and, if
// the test failed, prints the tail of its output.
func StartProcess(t testing.TB, name, path string, args ...string) *Process {
	t.Helper()
	p, err := startProcess(t.TempDir(), name, path, args...)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s stdout (tail):\n%s", name, tail(p.StdoutPath))
			t.Logf("%s stderr (tail):\n%s", name, tail(p.StderrPath))
		}
	})
	return p
}

// startProcess starts path with args, its output in dir. The caller stops it: a
// process that outlives one test (SharedKubeAPIServer) has no t.Cleanup to hang on.
func startProcess(dir, name, path string, args ...string) (*Process, error) {
	p := &Process{
		Name:       name,
		StdoutPath: filepath.Join(dir, name+".stdout"),
		StderrPath: filepath.Join(dir, name+".stderr"),
		done:       make(chan struct{}),
	}
	stdout, err := os.Create(p.StdoutPath)
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(p.StderrPath)
	if err != nil {
		_ = stdout.Close()
		return nil, err
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		_ = stdout.Close()
		_ = stderr.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, path, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		_ = stdout.Close()
		_ = stderr.Close()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to stopGrace, then SIGKILLs. It is safe to call twice.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// Stdout returns everything the process has written to stdout so far.
func (p *Process) Stdout() string { return readFile(p.StdoutPath) }

// Stderr returns everything the process has written to stderr so far.
func (p *Process) Stderr() string { return readFile(p.StderrPath) }

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

func tail(path string) string {
	s := readFile(path)
	if len(s) > logTailBytes {
		s = "..." + s[len(s)-logTailBytes:]
	}
	return strings.TrimRight(s, "\n")
}

// errNotReady is returned by readiness probes that have not succeeded yet.
var errNotReady = errors.New("not ready")

// waitFor polls probe every 50ms until it returns nil, the process exits, or timeout.
func (p *Process) waitFor(timeout time.Duration, probe func() error) error {
	deadline := time.Now().Add(timeout)
	lastErr := errNotReady
	for time.Now().Before(deadline) {
		if lastErr = probe(); lastErr == nil {
			return nil
		}
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited before it was ready (%v); stderr:\n%s", p.Name, err, tail(p.StderrPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s not ready after %s: %v; stderr:\n%s", p.Name, timeout, lastErr, tail(p.StderrPath))
	return errors.New(buf.String())
}

// Pid returns the process id (to read its RSS from /proc, or to signal it).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process (SIGKILL to crash it, SIGTERM to drain it) without
// waiting; Done says when it has exited.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }
