//go:build integration

package e2e

// The full chain for the reliability and abuse tests (issue 8): kubectl or a Go client →
// real Envoy (envoy/sidecar.yaml) → kube-iam-authz serve (the built binary) → sts-fake;
// Envoy → apiserver-fake (the real k8s.io/apiserver impersonation filter, with a header
// recorder). Every token a test mints is also a canary: when the test ends, every log,
// /metrics scrape and response body of the stack is scanned for it.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

const (
	relAccount   = "111122223333"
	relClusterID = "rel-cluster-a"
	// relSTSTimeout is serve's --sts-timeout in these tests: short, so that the
	// "nothing hangs past the deadline" checks run in seconds. Envoy's ext_authz
	// timeout stays the reviewed 6s.
	relSTSTimeout = time.Second
	// relSAPath is the file in the reviewed config holding the API server's CA.
	relSAPath = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// relPrincipal is an AWS caller the stand-in knows.
type relPrincipal struct {
	p stsfake.Principal
}

func relRole(akid, role, session string) relPrincipal {
	return relPrincipal{stsfake.AssumedRole(relAccount, role, session, stsfake.Credentials{
		AccessKeyID: akid, SecretAccessKey: "secret-" + akid, SessionToken: "CANARY-session-token-" + akid + "-x",
	})}
}

func relUser(akid, name string) relPrincipal {
	return relPrincipal{stsfake.IAMUser(relAccount, name, stsfake.Credentials{AccessKeyID: akid, SecretAccessKey: "secret-" + akid})}
}

// relPrincipals: alice and the node are role sessions, bob an IAM user; mallory is known
// to STS but mapped nowhere. The template-abuse sessions are role sessions of a role
// mapped with {{SessionName}} templates.
var relPrincipals = map[string]relPrincipal{
	"alice":   relRole("ASIARELALICE00000001", "Dev", "alice"),
	"bob":     relUser("AKIARELBOB0000000001", "bob"),
	"mallory": relUser("AKIARELMALLORY000001", "mallory"),
	"node":    relRole("ASIARELNODE000000001", "Node", "i-0123456789abcdef0"),
	"carol":   relRole("ASIARELCAROL00000001", "Dev", "carol"),
	"dave":    relRole("ASIARELDAVE000000001", "Dev", "dave"),
}

// relMapping maps alice (any Dev session) and bob; mallory is unmapped.
const relMapping = `apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapRoles: |
    - rolearn: arn:aws:iam::111122223333:role/Dev
      username: dev:{{SessionName}}
      groups: [devs, viewers]
  mapUsers: |
    - userarn: arn:aws:iam::111122223333:user/bob
      username: bob
      groups: [viewers]
`

type relOptions struct {
	// mapping is the aws-auth file (relMapping when empty).
	mapping string
	// principals adds principals beyond relPrincipals.
	principals map[string]relPrincipal
	// serveArgs are added to serve's flags (after the stack's own).
	serveArgs []string
	// apiserverTokenFile is the proxy token file apiserver-fake reads (the stack's
	// upstream token file when empty).
	apiserverTokenFile string
	// apiserverExtraArgs are added to apiserver-fake's flags.
	apiserverExtraArgs []string
	// proxyToken is the proxy's own token (written to the upstream token file).
	proxyToken string
	// edit changes the reviewed Envoy config beyond the loopback rendering.
	edit func(*bootstrapv3.Bootstrap) error
	// config is the reviewed Envoy config (envoy/sidecar.yaml when empty).
	config string
	// apiServerClusters are the config's API server clusters, all sent to the one
	// apiserver-fake (["apiserver"] when empty); caFiles are the config's files that
	// hold the API server's CA ([relSAPath] when empty).
	apiServerClusters []string
	caFiles           []string
	// listenerTLS, if set, is the listener's TLS Secret volume (tls.crt, tls.key,
	// issued by listenerCA) instead of a fixed certificate: a test rotates it.
	listenerTLS *harness.ProjectedDir
	listenerCA  *harness.CA
	// projectedAPICA puts the API server's CA in a projected volume (apiCAVolume)
	// that a test can update.
	projectedAPICA bool
}

type relStack struct {
	dir            string
	principals     map[string]relPrincipal
	sts            *harness.STSFake
	stsProxy       *harness.TCPProxy // serve reaches sts-fake through it
	api            *harness.APIServer
	serve          *harness.Serve
	envoy          *harness.Envoy
	ports          envoy.LocalPorts
	envoyCA        string
	mappingPath    string
	proxyTokenPath string
	client         *http.Client
	canary         *harness.Canary
	listener       string // the listener url() uses ("" = the only one)
	apiCAVolume    *harness.ProjectedDir

	mu       sync.Mutex
	restarts int
	// base and minted make every token unique: X-Amz-Date has one-second
	// resolution, so two tokens of one principal minted in the same second
	// would be the same token (and a cache hit). Token n is signed at base-n s.
	base   time.Time
	minted int
}

func newRelStack(t *testing.T, o relOptions) *relStack {
	t.Helper()
	if o.mapping == "" {
		o.mapping = relMapping
	}
	if o.proxyToken == "" {
		o.proxyToken = "proxy-sa-token-rel-0001"
	}
	if o.config == "" {
		o.config = "../../envoy/sidecar.yaml"
	}
	s := &relStack{dir: t.TempDir(), principals: map[string]relPrincipal{}, canary: harness.NewCanary(), base: time.Now()}
	for k, v := range relPrincipals {
		s.principals[k] = v
	}
	for k, v := range o.principals {
		s.principals[k] = v
	}
	var principals []stsfake.Principal
	for _, p := range s.principals {
		principals = append(principals, p.p)
	}
	s.sts = harness.StartSTSFake(t, principals)
	s.stsProxy = harness.StartTCPProxy(t, strings.TrimPrefix(s.sts.URL, "https://"))

	s.proxyTokenPath = filepath.Join(s.dir, "proxy-token")
	writeFileAtomic(t, s.proxyTokenPath, o.proxyToken)
	if o.apiserverTokenFile == "" {
		o.apiserverTokenFile = s.proxyTokenPath
	}
	// The serving certificate carries the names the reviewed configs pin (sni and
	// SAN matcher), so Envoy's upstream verification runs as reviewed.
	s.api = harness.StartAPIServer(t, harness.APIServerOptions{
		ProxyTokenFile: o.apiserverTokenFile,
		SANs:           []string{"kubernetes.default.svc", "prod-a.k8s.example.com", "prod-b.k8s.example.com"},
		ExtraArgs:      o.apiserverExtraArgs,
	})

	s.mappingPath = filepath.Join(s.dir, "mapping", "aws-auth.yaml")
	if err := os.MkdirAll(filepath.Dir(s.mappingPath), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFileAtomic(t, s.mappingPath, o.mapping)
	s.serve = harness.StartServe(t, harness.ServeOptions{
		ClusterID:         relClusterID,
		MappingFile:       s.mappingPath,
		STS:               s.sts,
		UpstreamTokenFile: s.proxyTokenPath,
		ExtraArgs: append([]string{
			// Through the proxy that can take STS away.
			"--sts-endpoint", "https://" + s.stsProxy.Addr,
			"--sts-timeout", relSTSTimeout.String(),
			"--shutdown-grace", "5s",
			"--log-level", "info",
		}, o.serveArgs...),
	})

	ca := harness.NewCA(t)
	if len(o.apiServerClusters) == 0 {
		o.apiServerClusters = []string{"apiserver"}
	}
	if len(o.caFiles) == 0 {
		o.caFiles = []string{relSAPath}
	}
	apiservers, files := map[string]string{}, map[string]string{}
	for _, c := range o.apiServerClusters {
		apiservers[c] = s.api.Addr
	}
	apiCA := s.api.CAFile
	if o.projectedAPICA {
		pem, err := os.ReadFile(s.api.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		s.apiCAVolume = harness.NewProjectedDir(t, map[string][]byte{"ca.crt": pem})
		apiCA = s.apiCAVolume.Path("ca.crt")
	}
	for _, f := range o.caFiles {
		files[f] = apiCA
	}
	if o.listenerTLS != nil {
		ca = o.listenerCA
		files["/etc/kube-iam-authz/tls/tls.crt"] = o.listenerTLS.Path("tls.crt")
		files["/etc/kube-iam-authz/tls/tls.key"] = o.listenerTLS.Path("tls.key")
	}
	cfg, ports := harness.RenderEnvoy(t, o.config, harness.RenderOptions{
		AuthzAddr:  s.serve.GRPCAddr,
		APIServers: apiservers,
		CA:         ca,
		ServerCert: ca.Issue(t, "envoy", "localhost", "127.0.0.1"),
		Files:      files,
		Edit:       o.edit,
	})
	s.ports = ports
	s.envoyCA = ca.CertFile
	s.envoy = harness.StartEnvoy(t, cfg)
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConnsPerHost: 64,
	}}

	// Every source of text the stack produces is scanned for every token minted.
	s.canary.Watch("sts-fake stdout", s.sts.Stdout)
	s.canary.Watch("sts-fake stderr", s.sts.Stderr)
	s.canary.Watch("apiserver-fake stderr", s.api.Stderr)
	s.canary.Watch("envoy stdout", s.envoy.Stdout)
	s.canary.Watch("envoy stderr", s.envoy.Stderr)
	s.watchServe()
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		if code, body, err := serveGet(s.currentServe(), "/metrics"); err == nil && code == http.StatusOK {
			s.canary.Record("serve /metrics", body)
		}
		// Stop everything first: serve buffers its log for up to a second and
		// flushes on SIGTERM, Envoy flushes its access log on exit. Then every
		// line ever written is scanned.
		s.currentServe().Stop()
		s.envoy.Stop()
		s.sts.Stop()
		s.api.Stop()
		s.canary.Check(t)
	})
	return s
}

func (s *relStack) watchServe() {
	s.mu.Lock()
	n := s.restarts
	srv := s.serve
	s.mu.Unlock()
	s.canary.Watch(fmt.Sprintf("serve#%d stdout", n), srv.Stdout)
	s.canary.Watch(fmt.Sprintf("serve#%d stderr", n), srv.Stderr)
}

func (s *relStack) currentServe() *harness.Serve {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serve
}

// restartServe starts serve again on the same addresses and command line (the old
// process must have exited) and waits for it to be ready.
func (s *relStack) restartServe(t *testing.T) *harness.Serve {
	t.Helper()
	srv := s.currentServe()
	srv.Restart(t)
	s.mu.Lock()
	s.restarts++
	s.mu.Unlock()
	s.watchServe()
	return srv
}

// url is the Envoy listener's base URL (the only listener, or the one named by
// s.listener).
func (s *relStack) url() string {
	return s.listenerURL(s.listener)
}

// listenerURL is the base URL of a named listener ("" = any, for single-listener
// configs).
func (s *relStack) listenerURL(name string) string {
	if name != "" {
		return "https://" + s.ports.Listeners[name]
	}
	for _, addr := range s.ports.Listeners {
		return "https://" + addr
	}
	return ""
}

// token mints a new token (never minted before in this stack) for a principal, signed
// for relClusterID, and registers it as a canary.
func (s *relStack) token(t *testing.T, who string) string {
	t.Helper()
	return s.tokenFor(t, who, relClusterID, s.nextSignedAt())
}

func (s *relStack) nextSignedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.minted++
	return s.base.Add(-time.Duration(s.minted) * time.Second)
}

func (s *relStack) tokenFor(t *testing.T, who, clusterID string, signedAt time.Time) string {
	t.Helper()
	p, ok := s.principals[who]
	if !ok {
		t.Fatalf("no principal %q", who)
	}
	tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{
		Credentials: p.p.Credentials, ClusterID: clusterID, SignedAt: signedAt,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.canary.AddToken(tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// forgedToken is well formed but signed with the wrong secret: STS refuses it.
func (s *relStack) forgedToken(t *testing.T, who string) string {
	t.Helper()
	p := s.principals[who]
	creds := p.p.Credentials
	creds.SecretAccessKey = "not-the-secret"
	tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: creds, ClusterID: relClusterID, SignedAt: s.nextSignedAt()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.canary.AddToken(tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

type relResponse struct {
	status  int
	header  http.Header
	body    string
	elapsed time.Duration
	err     error
}

// do sends one request through Envoy with "Authorization: Bearer tok" (none when tok is
// empty) plus the given header lines, and records the body for the canary scan.
func (s *relStack) do(t testing.TB, method, path, tok string, h http.Header) relResponse {
	return s.doAt(t, s.listener, method, path, tok, h)
}

// doAt is do through a named listener.
func (s *relStack) doAt(t testing.TB, listener, method, path, tok string, h http.Header) relResponse {
	req, err := http.NewRequest(method, s.listenerURL(listener)+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return relResponse{err: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r := relResponse{status: resp.StatusCode, header: resp.Header, body: string(body), elapsed: time.Since(start), err: err}
	s.canary.Record(fmt.Sprintf("response body %s %s (%d)", method, path, r.status), r.body)
	h2 := resp.Header.Clone()
	for _, k := range []string{"Date", "Audit-Id", "X-Envoy-Upstream-Service-Time"} {
		h2.Del(k) // per-request values: recording each would keep every response
	}
	s.canary.Record("response headers", fmt.Sprint(h2))
	return r
}

// get is a GET of /version (any authenticated user may read it) with a token.
func (s *relStack) get(t testing.TB, tok string) relResponse {
	return s.do(t, http.MethodGet, "/version", tok, nil)
}

// kubectl runs the real kubectl against Envoy with tok as the static bearer token and
// returns its stdout and stderr (both recorded for the canary scan) and exit error.
func (s *relStack) kubectl(t *testing.T, tok string, args ...string) (string, string, error) {
	t.Helper()
	bin := os.Getenv("KUBECTL")
	if bin == "" {
		bin = "/usr/bin/kubectl"
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: rel
  cluster: {server: %q, certificate-authority: %q}
users:
- name: rel
  user: {token: %q}
contexts:
- name: rel
  context: {cluster: rel, user: rel}
current-context: rel
`, s.url(), s.envoyCA, tok)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(dir, "cache")}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	s.canary.Record("kubectl stdout", stdout.String())
	s.canary.Record("kubectl stderr", stderr.String())
	return stdout.String(), stderr.String(), err
}

// writeFileAtomic writes content to a temporary file in the same directory and renames
// it over path, as editors and the kubelet do.
func writeFileAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond every 50ms until it holds or timeout passes.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recorded returns the requests apiserver-fake received after sequence number since.
func (s *relStack) recorded(t testing.TB, since int64) []harness.Received {
	t.Helper()
	var out []harness.Received
	for _, r := range s.api.Recorded(t) {
		if r.Seq > since {
			out = append(out, r)
		}
	}
	return out
}

// lastSeq is the highest sequence number apiserver-fake has recorded.
func (s *relStack) lastSeq(t testing.TB) int64 {
	t.Helper()
	var last int64
	for _, r := range s.api.Recorded(t) {
		last = max(last, r.Seq)
	}
	return last
}

// serveGet fetches a path of serve's HTTP endpoint.
func serveGet(srv *harness.Serve, path string) (int, string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + srv.HTTPAddr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(b), err
}

// serveMetrics returns serve's /metrics text.
func serveMetrics(t testing.TB, srv *harness.Serve) string {
	t.Helper()
	code, body, err := serveGet(srv, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	return body
}

// metricValue returns the value of the sample whose name and labels (exposition
// text, labels in the order Prometheus prints them) match exactly, and whether it
// was found.
func metricValue(metrics, sample string) (float64, bool) {
	for _, line := range strings.Split(metrics, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

// envoyCertPool reads the Envoy listener's CA (for clients other than s.client).
func (s *relStack) envoyCertPool(t testing.TB) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(s.envoyCA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool
}
