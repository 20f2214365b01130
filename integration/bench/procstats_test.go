//go:build bench

package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

func (p *proc) pid() int { return p.cmd.Process.Pid }

// cpu is the process's user+system CPU time so far (/proc/PID/stat).
func (p *proc) cpu() time.Duration { return pidCPU(p.pid()) }

// pidCPU is a process's user+system CPU time so far (/proc/PID/stat).
func pidCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields overall.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// rss is the resident set size from /proc/PID/status.
func (p *proc) rss() uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (p *proc) stderr() string { b, _ := os.ReadFile(p.stderrPath); return string(b) }

func (s *sts) setLatency(t testing.TB, d time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, s.url+"/_fake/latency", strings.NewReader(fmt.Sprintf(`{"latency":%q}`, d.String())))
	resp, err := s.client(t).Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bench: set STS latency: %d", resp.StatusCode)
	}
}

// startNoop starts the no-op ext_authz server. headers, when given, are
// the upstream headers it answers with (default: a typical mapped user's).
func startNoop(t testing.TB, headers [][2]string) *authz {
	t.Helper()
	a := &authz{grpcAddr: harness.FreeAddr(t), httpAddr: harness.FreeAddr(t)}
	args := []string{"--grpc-listen", a.grpcAddr, "--http-listen", a.httpAddr, "--groups", benchGroups, "--bearer", proxyToken}
	for _, h := range headers {
		args = append(args, "--header", h[0]+":"+h[1])
	}
	a.proc = startProc(t, nil, "noop-authz", binPath(t, "noop-authz"), args...)
	a.waitHTTP(t, "http://"+a.httpAddr+"/readyz", 30*time.Second)
	return a
}

// metrics returns the server's /metrics text.
func (a *authz) metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + a.httpAddr + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return string(b)
}

// metricSum adds the samples of a metric whose label text contains every
// one of labels (e.g. `result="denied"`).
func metricSum(text, name string, labels ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(rest, l)
		}
		if !match {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
