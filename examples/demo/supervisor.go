package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// logTailLines is how much of a failed process's log the demo prints.
const logTailLines = 20

// child is one process the demo started. Its stdout and stderr both go to
// LogPath; stdout is also scanned for the ready line.
type child struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	ready   chan string // receives the matching ready line once
}

// Pid is the process id.
func (c *child) Pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has exited, and how.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.waitErr
	default:
		return false, nil
	}
}

// supervisor starts children and stops all of them, newest first, on every
// exit path. Each child runs in its own process group, so the terminal's
// Ctrl-C reaches only the demo, which then stops the chain in order (Envoy
// before the servers it calls); on Linux a child also dies if the demo is
// killed outright (Pdeathsig).
type supervisor struct {
	logDir string
	grace  time.Duration

	mu       sync.Mutex
	children []*child
}

// start runs path with args. If readyLine is set, a stdout line matching it
// is sent on child.ready.
func (s *supervisor) start(name, path string, args []string, env []string, readyLine *regexp.Regexp) (*child, error) {
	logPath := filepath.Join(s.logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	c := &child{Name: name, LogPath: logPath, done: make(chan struct{}), ready: make(chan string, 1)}
	c.cmd = exec.Command(path, args...)
	c.cmd.Env = env
	c.cmd.Stderr = logFile
	c.cmd.SysProcAttr = sysProcAttr()
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		_ = logFile.Close()
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	s.mu.Lock()
	s.children = append(s.children, c)
	s.mu.Unlock()

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			_, _ = io.WriteString(logFile, line+"\n")
			if !sent && readyLine != nil && readyLine.MatchString(line) {
				c.ready <- line
				sent = true
			}
		}
		// Keep draining so that a child writing long lines never blocks.
		_, _ = io.Copy(logFile, stdout)
	}()
	go func() {
		<-copied
		c.waitErr = c.cmd.Wait()
		_ = logFile.Close()
		close(c.done)
	}()
	return c, nil
}

// waitReady waits until probe succeeds (or, with probe nil, the ready line
// arrives), the child exits, ctx ends or timeout passes. It returns the
// ready line, if any.
func (s *supervisor) waitReady(ctx context.Context, c *child, timeout time.Duration, probe func(context.Context) error) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastErr := errors.New("no ready line yet")
	for {
		if probe == nil {
			select {
			case line := <-c.ready:
				return line, nil
			default:
			}
		} else {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			lastErr = probe(pctx)
			pcancel()
			if lastErr == nil {
				return "", nil
			}
		}
		select {
		case <-c.done:
			return "", fmt.Errorf("%s exited before it was ready (%v)", c.Name, c.waitErr)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return "", fmt.Errorf("%s not ready after %s: %v", c.Name, timeout, lastErr)
			}
			return "", ctx.Err()
		case line := <-c.ready:
			if probe == nil {
				return line, nil
			}
		case <-tick.C:
		}
	}
}

// firstExit returns a channel that receives the first child that exits.
func (s *supervisor) firstExit() <-chan *child {
	s.mu.Lock()
	children := append([]*child(nil), s.children...)
	s.mu.Unlock()
	out := make(chan *child, len(children))
	for _, c := range children {
		go func() {
			<-c.done
			out <- c
		}()
	}
	return out
}

// stopAll stops every child, newest first: SIGTERM to its process group,
// SIGKILL after the grace period. It returns the children's names and
// whether each had to be killed.
func (s *supervisor) stopAll() []string {
	s.mu.Lock()
	children := s.children
	s.children = nil
	s.mu.Unlock()
	var report []string
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
		if exited, _ := c.exited(); exited {
			report = append(report, c.Name+" (had exited)")
			continue
		}
		signalGroup(c.cmd, syscall.SIGTERM)
		select {
		case <-c.done:
			report = append(report, c.Name)
		case <-time.After(s.grace):
			signalGroup(c.cmd, syscall.SIGKILL)
			<-c.done
			report = append(report, c.Name+" (killed)")
		}
	}
	return report
}

// pids lists the running children's process ids by name.
func (s *supervisor) pids() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, c := range s.children {
		out[c.Name] = c.Pid()
	}
	return out
}

// logTail returns the last lines of a log file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
