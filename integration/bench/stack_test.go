//go:build bench || integration

// Package bench measures kube-iam-authz against its baselines with real
// processes and public load generators (see doc.go and docs/benchmarks.md).
// This file is the stack: the STS stand-in, `kube-iam-authz serve`, the
// no-op ext_authz server, the API-server stand-in and Envoy, as child
// processes on loopback.
package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// Fixed names of the benchmark world.
const (
	benchAccount   = "111122223333"
	benchClusterID = "bench-cluster"
	// benchUser is the principal every cache-hit and end-to-end request
	// uses; it maps to a user with two groups, like a typical developer.
	benchUser   = "bench-0000"
	benchGroups = "devs,viewers"
	proxyToken  = "bench-proxy-token-0123456789abcdef"
	// signedHost is the STS host the tokens are signed for; serve sends the
	// calls to the stand-in with --sts-endpoint and keeps this Host.
	signedHost = "sts.amazonaws.com"
	// secondsPerPrincipal: distinct tokens come from distinct (principal,
	// X-Amz-Date second) pairs, all inside the 15-minute validity.
	secondsPerPrincipal = 600
)

// envBin is the directory with kube-iam-authz, sts-fake, noop-authz and
// apiserver-fake (`make build bench-bins` fills bin/).
const envBin = "KIA_BIN"

func binPath(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv(envBin)
	if dir == "" {
		t.Fatalf("bench: %s is not set; use `make bench-smoke` or `make bench`", envBin)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("bench: %s: %v (build it with `make bench-bins`)", p, err)
	}
	return p
}

// proc is a child process with its pid known (harness.Process keeps it
// private), so its CPU time can be read from /proc.
type proc struct {
	name       string
	cmd        *exec.Cmd
	stdoutPath string
	stderrPath string
	done       chan struct{}
	waitErr    error
	once       sync.Once
}

func startProc(t testing.TB, env []string, name, path string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{name: name, stdoutPath: filepath.Join(dir, name+".stdout"), stderrPath: filepath.Join(dir, name+".stderr"), done: make(chan struct{})}
	stdout, err := os.Create(p.stdoutPath)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(p.stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("bench: start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s stderr (tail):\n%s", name, tailFile(p.stderrPath, 8<<10))
		}
	})
	return p
}

func (p *proc) stop() {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

func (p *proc) stdout() string { b, _ := os.ReadFile(p.stdoutPath); return string(b) }

// waitLine waits for a stdout line matching re and returns its submatches.
func (p *proc) waitLine(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.stdout()); m != nil {
			return m
		}
		select {
		case <-p.done:
			t.Fatalf("bench: %s exited before ready: %v\n%s", p.name, p.waitErr, tailFile(p.stderrPath, 8<<10))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("bench: %s: no ready line after %s\n%s", p.name, timeout, tailFile(p.stderrPath, 8<<10))
	return nil
}

// waitHTTP waits until url answers 200.
func (p *proc) waitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("bench: %s exited before ready: %v\n%s", p.name, p.waitErr, tailFile(p.stderrPath, 8<<10))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("bench: %s: %s not 200 after %s\n%s", p.name, url, timeout, tailFile(p.stderrPath, 8<<10))
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// world is the principals, the mapping and the files describing them.
type world struct {
	dir        string
	principals []stsfake.Principal
	// principalsFile is the sts-fake --principals file.
	principalsFile string
	// mappingFile is serve's --mapping-file.
	mappingFile string
	// tokenFile is serve's --upstream-token-file.
	tokenFile string
}

func principalName(i int) string { return fmt.Sprintf("bench-%04d", i) }

func newWorld(t testing.TB, principals int) *world {
	t.Helper()
	w := &world{dir: t.TempDir()}
	var pf strings.Builder
	pf.WriteString("principals:\n")
	for i := range principals {
		c := stsfake.Credentials{AccessKeyID: fmt.Sprintf("AKIABENCH%011d", i), SecretAccessKey: fmt.Sprintf("bench-secret-%d", i)}
		w.principals = append(w.principals, stsfake.IAMUser(benchAccount, principalName(i), c))
		fmt.Fprintf(&pf, "- {accessKeyId: %s, secretAccessKey: %s, account: %q, user: %s}\n", c.AccessKeyID, c.SecretAccessKey, benchAccount, principalName(i))
	}
	w.principalsFile = filepath.Join(w.dir, "principals.yaml")
	w.mappingFile = filepath.Join(w.dir, "mapping", "aws-auth.yaml")
	w.tokenFile = filepath.Join(w.dir, "proxy-token")
	must(t, os.WriteFile(w.principalsFile, []byte(pf.String()), 0o600))
	must(t, os.MkdirAll(filepath.Dir(w.mappingFile), 0o700))
	must(t, os.WriteFile(w.mappingFile, mappingYAML(0, 0), 0o600))
	must(t, os.WriteFile(w.tokenFile, []byte(proxyToken), 0o600))
	return w
}

// mappingYAML is the aws-auth data: the bench user with groups, fillers
// distinct per generation (so every swap is a real change), and the
// account mapping for every other principal.
func mappingYAML(fillers, generation int) []byte {
	var b strings.Builder
	b.WriteString("mapUsers:\n")
	fmt.Fprintf(&b, "  - userarn: arn:aws:iam::%s:user/%s\n    username: %s\n    groups: [%s]\n", benchAccount, benchUser, benchUser, benchGroups)
	for i := range fillers {
		fmt.Fprintf(&b, "  - userarn: arn:aws:iam::%s:user/filler-%06d\n    username: filler-%06d-g%d\n    groups: [team-%d]\n", benchAccount, i, i, generation, i%50)
	}
	fmt.Fprintf(&b, "mapAccounts:\n  - %q\n", benchAccount)
	return []byte(b.String())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// token signs a token for principal i at second offset s (0..599) before
// now, so (i, s) pairs are distinct tokens.
func (w *world) token(t testing.TB, i, s int, now time.Time) string {
	t.Helper()
	tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{
		Credentials: w.principals[i].Credentials,
		Host:        signedHost,
		ClusterID:   benchClusterID,
		SignedAt:    now.Add(-time.Duration(s) * time.Second).UTC().Truncate(time.Second),
	})
	must(t, err)
	return tok
}

// freshTokens returns n distinct tokens never used before in this world.
// Every call starts on a principal no earlier call used (a token is the
// pair principal, X-Amz-Date second, and "now" moves between calls, so
// reusing a principal could repeat a pair), and skips principal 0 (the
// cache-hit user).
func (w *world) freshTokens(t testing.TB, next *int, n int) []string {
	t.Helper()
	if r := *next % secondsPerPrincipal; r != 0 {
		*next += secondsPerPrincipal - r
	}
	now := time.Now()
	out := make([]string, 0, n)
	for range n {
		k := *next
		*next++
		p := 1 + k/secondsPerPrincipal
		if p >= len(w.principals) {
			t.Fatalf("bench: out of distinct tokens (%d principals); raise the world size", len(w.principals))
		}
		out = append(out, w.token(t, p, k%secondsPerPrincipal, now))
	}
	return out
}

// sts is the running STS stand-in.
type sts struct {
	*proc
	url    string
	caFile string
}

func startSTS(t testing.TB, w *world, latency time.Duration) *sts {
	t.Helper()
	ca := filepath.Join(w.dir, fmt.Sprintf("sts-ca-%d.pem", time.Now().UnixNano()))
	p := startProc(t, nil, "sts-fake", binPath(t, "sts-fake"),
		"--principals", w.principalsFile, "--ca-out", ca, "--latency", latency.String())
	m := p.waitLine(t, regexp.MustCompile(`sts-fake ready url=(\S+)`), 30*time.Second)
	return &sts{proc: p, url: m[1], caFile: ca}
}

func (s *sts) client(t testing.TB) *http.Client {
	pem, err := os.ReadFile(s.caFile)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// total is the number of STS requests the stand-in has received.
func (s *sts) total(t testing.TB) int64 {
	t.Helper()
	resp, err := s.client(t).Get(s.url + "/_fake/stats")
	must(t, err)
	defer resp.Body.Close()
	var st stsfake.Stats
	must(t, json.NewDecoder(resp.Body).Decode(&st))
	return st.Total
}

// authz is a running ext_authz server (ours or the no-op).
type authz struct {
	*proc
	grpcAddr, httpAddr string
}

// serveOptions are the flags that differ between benchmark cases.
type serveOptions struct {
	rateLimit  float64 // 0: no STS rate limit
	rateBurst  int
	maxEntries int
	logLevel   string
	env        []string // extra environment, e.g. GODEBUG=gctrace=1
}

func startServe(t testing.TB, w *world, s *sts, o serveOptions) *authz {
	t.Helper()
	a := &authz{grpcAddr: harness.FreeAddr(t), httpAddr: harness.FreeAddr(t)}
	if o.maxEntries == 0 {
		o.maxEntries = 200_000
	}
	if o.logLevel == "" {
		o.logLevel = "info"
	}
	args := []string{"serve",
		"--grpc-listen", a.grpcAddr, "--http-listen", a.httpAddr,
		"--cluster-id", benchClusterID, "--mapping-file", w.mappingFile,
		"--sts-endpoint", s.url, "--sts-ca-file", s.caFile,
		"--sts-rate-limit", strconv.FormatFloat(o.rateLimit, 'f', -1, 64),
		"--upstream-token-file", w.tokenFile,
		"--cache-max-entries", strconv.Itoa(o.maxEntries), "--cache-ttl", "15m",
		"--log-level", o.logLevel,
	}
	if o.rateBurst > 0 {
		args = append(args, "--sts-rate-burst", strconv.Itoa(o.rateBurst))
	}
	a.proc = startProc(t, o.env, "kube-iam-authz", binPath(t, "kube-iam-authz"), args...)
	a.waitHTTP(t, "http://"+a.httpAddr+"/readyz", 30*time.Second)
	return a
}

// checker is a gRPC client of an ext_authz server for the Go-driven cases.
type checker struct {
	conn   *grpc.ClientConn
	client authv3.AuthorizationClient
}

func dialCheck(t testing.TB, addr string) *checker {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	return &checker{conn: conn, client: authv3.NewAuthorizationClient(conn)}
}

// checkRequest is a Check shaped like Envoy's with encode_raw_headers:
// a dozen header_map entries including the bearer token.
func checkRequest(tok string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "bench", Method: "GET", Path: "/version", Host: "127.0.0.1:8443", Scheme: "https", Protocol: "HTTP/2",
			HeaderMap: headerMap(tok),
		}},
	}}
}

// requestHeaders are the lines a kubectl GET carries, as Envoy forwards
// them; the same list feeds the Go client and the ghz data file.
func requestHeaders(tok string) [][2]string {
	return [][2]string{
		{":authority", "127.0.0.1:8443"}, {":path", "/version"}, {":method", "GET"}, {":scheme", "https"},
		{"user-agent", "kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef"},
		{"accept", "application/json, */*"},
		{"authorization", "Bearer " + tok},
		{"x-forwarded-proto", "https"}, {"x-request-id", "0f6e1c9a-8d1f-4a51-9b0e-8f1f0b6c1d2e"},
		{"x-forwarded-for", "127.0.0.1"}, {"accept-encoding", "gzip"}, {"kubectl-command", "kubectl version"},
	}
}

func headerMap(tok string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for _, h := range requestHeaders(tok) {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: h[0], RawValue: []byte(h[1])})
	}
	return hm
}

// errNotOK is a Check that answered anything but OK.
var errNotOK = errors.New("check: not OK")

func (c *checker) check(ctx context.Context, tok string) error {
	resp, err := c.client.Check(ctx, checkRequest(tok))
	if err != nil {
		return err
	}
	if resp.GetOkResponse() == nil {
		return fmt.Errorf("%w: %d %s", errNotOK, resp.GetDeniedResponse().GetStatus().GetCode(), resp.GetDeniedResponse().GetBody())
	}
	return nil
}
