//go:build integration

// Package demo runs `make demo`'s driver (examples/demo) for real: etcd,
// kube-apiserver, the STS stand-in, kube-iam-authz, Envoy and kubectl, so
// the demo can never rot.
package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil"
)

// processes are the demo's children in start order; it stops them newest
// first.
var processes = []string{"etcd", "kube-apiserver", "sts-fake", "kube-iam-authz", "envoy"}

// wantStopped is the stop report: every child, newest first, each stopped
// by SIGTERM within the grace period (a killed one says "(killed)").
var wantStopped = regexp.MustCompile(`(?m)^stopped envoy, kube-iam-authz, sts-fake, kube-apiserver, etcd \([0-9.]+m?s\)$`)

const (
	repoRoot    = "../.."
	runBudget   = 4 * time.Minute
	readyBudget = 3 * time.Minute
)

// state mirrors the driver's state.json.
type state struct {
	Addrs            map[string]string `json:"addrs"`
	Pids             map[string]int    `json:"pids"`
	Kubeconfig       string            `json:"kubeconfig"`
	Metrics          string            `json:"metrics"`
	MappingConfigMap string            `json:"mappingConfigMap"`
	AdminKubeconfig  string            `json:"adminKubeconfig"`
}

// binDir returns KIA_BIN, failing with instructions when a binary is
// missing: an integration test must never pass by not running.
func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KIA_BIN")
	if dir == "" {
		t.Fatalf("KIA_BIN is not set; run `make integration` (or make build kube-apiserver and set KIA_BIN=$PWD/bin)")
	}
	for _, name := range []string{"kube-iam-authz", "sts-fake", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("%s: %v; run `make build kube-apiserver`", name, err)
		}
	}
	return dir
}

// buildDriver compiles examples/demo, as `make demo` does.
func buildDriver(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command("go", "build", "-o", out, "./examples/demo")
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/demo: %v\n%s", err, b)
	}
	return out
}

type run struct {
	cmd      *exec.Cmd
	out      *testutil.SyncBuffer
	stateDir string
	done     chan struct{}
	err      error
}

// startDriver runs the driver on free ports with its state in a temp dir.
func startDriver(t *testing.T, oneshot bool, extra ...string) *run {
	t.Helper()
	envoy := harness.EnvoyPath(t)
	bins := binDir(t)
	driver := buildDriver(t)
	r := &run{out: &testutil.SyncBuffer{}, stateDir: filepath.Join(t.TempDir(), "state"), done: make(chan struct{})}
	args := append([]string{"--free-ports", "--state-dir", r.stateDir, "--bin-dir", bins, "--envoy", envoy, "--repo", repoRoot}, extra...)
	r.cmd = exec.Command(driver, args...)
	r.cmd.Env = append(os.Environ(), fmt.Sprintf("DEMO_ONESHOT=%t", oneshot))
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-r.done:
			case <-time.After(30 * time.Second):
				_ = r.cmd.Process.Kill()
				<-r.done
			}
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", r.out.String())
			for _, name := range processes {
				b, _ := os.ReadFile(filepath.Join(r.stateDir, "logs", name+".log"))
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("%s.log (tail):\n%s", name, b)
			}
		}
	})
	return r
}

func (r *run) wait(t *testing.T, budget time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(budget):
		t.Fatalf("demo still running after %s", budget)
	}
	var exit *exec.ExitError
	switch {
	case r.err == nil:
		return 0
	case errors.As(r.err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("demo: %v", r.err)
	return -1
}

func (r *run) state(t *testing.T) state {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.stateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// assertStopped checks that every process the demo started is gone and
// every port it used is free again.
func assertStopped(t *testing.T, s state) {
	t.Helper()
	if len(s.Pids) != len(processes) {
		t.Errorf("state.json lists %d processes, want %v: %v", len(s.Pids), processes, s.Pids)
	}
	for _, name := range processes {
		if _, ok := s.Pids[name]; !ok {
			t.Errorf("state.json has no pid for %s: %v", name, s.Pids)
		}
	}
	for name, pid := range s.Pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after the demo exited (kill 0: %v)", name, pid, err)
		}
	}
	for name, addr := range s.Addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s address %s still in use after the demo exited: %v", name, addr, err)
			continue
		}
		_ = l.Close()
	}
}

// wantScripted is what the scripted part must print: kubectl's own words.
var wantScripted = []*regexp.Regexp{
	// Progress, as plain lines (no terminal).
	regexp.MustCompile(`(?m)^starting envoy…$`),
	regexp.MustCompile(`(?m)^Envoy ready: kubectl talks to https://127\.0\.0\.1:\d+ \(`),
	regexp.MustCompile(`(?m)^etcd ready on http://127\.0\.0\.1:\d+ \(`),
	regexp.MustCompile(`(?m)^kube-apiserver ready on https://127\.0\.0\.1:\d+ \(`),
	regexp.MustCompile(`(?m)^ready$`),
	// The proxy's RBAC exactly as shipped, and the demo's, applied by the
	// bootstrap admin; the proxy's token from the TokenRequest API.
	regexp.MustCompile(`(?m)^\$ kubectl apply -f examples/kubernetes/namespace\.yaml -f examples/kubernetes/serviceaccount\.yaml -f examples/kubernetes/rbac\.yaml -f examples/demo/rbac\.yaml -f examples/aws-auth\.yaml\n` +
		`\s+namespace/kube-iam-authz created\n\s+serviceaccount/kube-iam-authz created\n` +
		`\s+clusterrole\.rbac\.authorization\.k8s\.io/kube-iam-authz-impersonator created\n\s+clusterrolebinding\.rbac\.authorization\.k8s\.io/kube-iam-authz-impersonator created\n` +
		`\s+role\.rbac\.authorization\.k8s\.io/kube-iam-authz-aws-auth created\n\s+rolebinding\.rbac\.authorization\.k8s\.io/kube-iam-authz-aws-auth created\n` +
		`\s+namespace/dev created\n\s+role\.rbac\.authorization\.k8s\.io/pod-reader created\n\s+rolebinding\.rbac\.authorization\.k8s\.io/developers-read-pods created\n` +
		`\s+configmap/aws-auth created\n`),
	regexp.MustCompile(`(?m)^proxy token for system:serviceaccount:kube-iam-authz:kube-iam-authz in \S+/proxy-token, valid for 1h0m0s \(`),
	// The real API server answers through the chain.
	regexp.MustCompile(`(?m)^\s+Server Version: v1\.37\.2$`),
	regexp.MustCompile(`(?m)^\s+→ the API server behind the proxy is kube-apiserver v1\.37\.2$`),
	// admin: mapUsers.
	regexp.MustCompile(`(?m)^\$ kubectl --context admin auth whoami\n.*arn:aws:iam::111122223333:user/admin\n\s+ATTRIBUTE\s+VALUE\n\s+Username\s+admin\n`),
	regexp.MustCompile(`(?m)^\s+Groups\s+\[system:masters system:authenticated\]$`),
	// developer: mapRoles with several groups, from an assumed-role session.
	regexp.MustCompile(`(?m)^\s+Username\s+developer:alice$`),
	regexp.MustCompile(`(?m)^\s+Groups\s+\[developers viewers team-111122223333 system:authenticated\]$`),
	regexp.MustCompile(`(?m)^\s+Extra: sessionname\s+\[alice\]$`),
	regexp.MustCompile(`(?m)^\s+Extra: canonicalarn\s+\[arn:aws:iam::111122223333:role/developer\]$`),
	// unmapped: a clear 403 with kube-iam-authz's Status message.
	regexp.MustCompile(`(?m)^\s+Error from server \(Forbidden\): Forbidden: the AWS identity is not mapped to a Kubernetes user on this cluster$`),
	regexp.MustCompile(`(?m)^\s+→ unmapped is refused with 403`),
	// RBAC, not kube-iam-authz, decides what the mapped developer may do.
	regexp.MustCompile(`(?m)^\$ kubectl --context developer get pods -n dev\n.*\n\s+No resources found in dev namespace\.\n\s+→ allowed by RBAC$`),
	regexp.MustCompile(`(?m)^\$ kubectl --context developer get secrets -A\n.*\n\s+Error from server \(Forbidden\): secrets is forbidden: User "developer:alice" cannot list resource "secrets" in API group "" at the cluster scope\n\s+→ Forbidden by kube-apiserver's RBAC`),
	// The audit log: the proxy's service account impersonated the mapped
	// user with every mapped group.
	regexp.MustCompile(`(?m)^\s+user: system:serviceaccount:kube-iam-authz:kube-iam-authz\n\s+impersonatedUser: developer:alice \[developers viewers team-111122223333 system:authenticated\]\n\s+verb: list pods in dev → 200$`),
	// kubectl --as (serve --allow-impersonation): admin may act as the
	// developer, and the AWS caller is recorded in the reserved extras;
	// the developer may not act as admin, in the API server's words.
	regexp.MustCompile(`(?m)^\$ kubectl --context admin --as developer:alice auth whoami\n.*\n\s+ATTRIBUTE\s+VALUE\n\s+Username\s+developer:alice\n\s+Groups\s+\[system:authenticated\]\n` +
		`\s+Extra: kube-iam-authz\.io/original-arn\s+\[arn:aws:iam::111122223333:user/admin\]\n\s+Extra: kube-iam-authz\.io/original-groups\s+\[system:masters\]\n` +
		`\s+Extra: kube-iam-authz\.io/original-uid\s+\[aws-iam-authenticator:111122223333:AIDABRLLSIBLUGGUS3LQD\]\n\s+Extra: kube-iam-authz\.io/original-username\s+\[admin\]\n`),
	regexp.MustCompile(`(?m)^\$ kubectl --context developer --as admin auth whoami\n.*\n\s+error: `),
	regexp.MustCompile(`(?m)^\$ kubectl --context developer --as admin get --raw /api\n.*\n\s+Error from server \(Forbidden\): users "admin" is forbidden: User "developer:alice" cannot impersonate resource "users" in API group "" at the cluster scope\n\s+→ refused`),
	// STS really was asked.
	regexp.MustCompile(`The STS stand-in verified [1-9]\d* presigned GetCallerIdentity URLs \(ok [1-9]`),
}

func TestDemoOneShot(t *testing.T) {
	r := startDriver(t, true)
	code := r.wait(t, runBudget)
	out := r.out.String()
	if code != 0 {
		t.Fatalf("DEMO_ONESHOT=1 exited %d, want 0", code)
	}
	for _, re := range wantScripted {
		if !re.MatchString(out) {
			t.Errorf("output lacks %s", re)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("output has terminal escapes although stdout is not a terminal")
	}
	if !strings.Contains(out, "DEMO_ONESHOT: the scripted part passed; stopping.") ||
		!wantStopped.MatchString(out) {
		t.Errorf("output does not report a clean stop of the five processes (%s)", wantStopped)
	}
	assertStopped(t, r.state(t))
}

// TestDemoInteractive runs the demo as a person would: it stays up, the
// printed kubeconfig works, the metrics it points to are the documented
// ones, a live mapping edit takes effect, and Ctrl-C stops everything.
func TestDemoInteractive(t *testing.T) {
	r := startDriver(t, false)
	deadline := time.Now().Add(readyBudget)
	for !strings.Contains(r.out.String(), "Press Ctrl-C to stop everything.") {
		select {
		case <-r.done:
			t.Fatalf("demo exited before it was up: %v", r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not up after %s", readyBudget)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s := r.state(t)
	if !strings.Contains(r.out.String(), "export KUBECONFIG="+s.Kubeconfig) {
		t.Errorf("the instructions do not name the kubeconfig %s", s.Kubeconfig)
	}

	t.Run("the proxy's token is a TokenRequest token of its service account", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(r.stateDir, "proxy-token"))
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(strings.TrimSpace(string(raw)), ".")
		if len(parts) != 3 {
			t.Fatalf("proxy-token has %d dot-separated parts, want a JWT", len(parts))
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Iss string   `json:"iss"`
			Sub string   `json:"sub"`
			Aud []string `json:"aud"`
			Iat int64    `json:"iat"`
			Exp int64    `json:"exp"`
		}
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		// Bound to the API server's own audience, for an hour, like the
		// Deployment's projected token; the demo refreshes it at 80%.
		if claims.Sub != "system:serviceaccount:kube-iam-authz:kube-iam-authz" || claims.Iss != "https://kubernetes.default.svc" ||
			len(claims.Aud) != 1 || claims.Aud[0] != claims.Iss || claims.Exp-claims.Iat != 3600 {
			t.Errorf("proxy token claims %+v: want sub the proxy's service account, iss and aud the API server, 1h", claims)
		}
	})

	t.Run("every exposed metric is documented in the README", func(t *testing.T) {
		resp, err := http.Get(s.Metrics)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		families := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^# TYPE (kube_iam_authz_\S+) `).FindAllSubmatch(body, -1) {
			families[string(m[1])] = true
		}
		if len(families) < 5 {
			t.Fatalf("only %d kube_iam_authz_ metric families exposed: %v", len(families), families)
		}
		var missing []string
		for f := range families {
			if !bytes.Contains(readme, []byte("`"+f+"`")) {
				missing = append(missing, f)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("README's metrics catalogue lacks %v", missing)
		}
	})

	t.Run("a live mapping edit takes effect", func(t *testing.T) {
		kubectl := func() (string, error) {
			cmd := exec.Command("/usr/bin/kubectl", "--context", "unmapped", "auth", "whoami")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(r.stateDir, "home"), "KUBECONFIG=" + s.Kubeconfig}
			b, err := cmd.CombinedOutput()
			return string(b), err
		}
		if out, err := kubectl(); err == nil {
			t.Fatalf("unmapped identity allowed before the edit:\n%s", out)
		}
		// What an operator does: edit the cluster's ConfigMap (here with a
		// patch of its mapUsers key, as the bootstrap admin).
		ns, name, _ := strings.Cut(s.MappingConfigMap, "/")
		admin := func(args ...string) string {
			cmd := exec.Command("/usr/bin/kubectl", append([]string{"--kubeconfig", s.AdminKubeconfig}, args...)...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(r.stateDir, "home")}
			b, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl %v: %v", args, err)
			}
			return string(b)
		}
		users := admin("get", "configmap", "-n", ns, name, "-o", "jsonpath={.data.mapUsers}")
		patch, err := json.Marshal(map[string]any{"data": map[string]string{
			"mapUsers": "- userarn: arn:aws:iam::777788889999:user/intern\n  username: intern\n  groups: [interns]\n" + users,
		}})
		if err != nil {
			t.Fatal(err)
		}
		admin("patch", "configmap", "-n", ns, name, "--type", "merge", "-p", string(patch))
		var out string
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if out, err = kubectl(); err == nil {
				break
			}
		}
		if !regexp.MustCompile(`(?m)^Username\s+intern$`).MatchString(out) || !regexp.MustCompile(`(?m)^Groups\s+\[interns system:authenticated\]$`).MatchString(out) {
			t.Errorf("after the edit, whoami as unmapped printed:\n%s", out)
		}
	})

	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Errorf("Ctrl-C: exit %d, want 0", code)
	}
	if !wantStopped.MatchString(r.out.String()) {
		t.Errorf("Ctrl-C did not report a clean stop of the five processes (%s)", wantStopped)
	}
	assertStopped(t, s)
}

// TestDemoBusyPort: a fixed port already in use fails the demo at once,
// naming the port and the flag, before anything starts.
func TestDemoBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	envoy := harness.EnvoyPath(t)
	driver := buildDriver(t)
	cmd := exec.CommandContext(context.Background(), driver,
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--bin-dir", binDir(t), "--envoy", envoy, "--repo", repoRoot,
		"--envoy-listen", busy.Addr().String(), "--envoy-admin", free(), "--authz-grpc", free(),
		"--authz-http", free(), "--sts-listen", free(), "--apiserver-listen", free(),
		"--etcd-listen", free(), "--etcd-peer-listen", free())
	cmd.Env = append(os.Environ(), "DEMO_ONESHOT=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "ports in use") || !strings.Contains(string(out), busy.Addr().String()+" (Envoy listener, --envoy-listen)") {
		t.Errorf("output does not name the busy port and its flag:\n%s", out)
	}
	if strings.Contains(string(out), "starting") {
		t.Errorf("the demo started something although a port was busy:\n%s", out)
	}
}
