package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// Shared fixtures of the in-process peers.
const (
	bobToken = "bob-token-0123456789"
	bobUser  = "bob"
)

// peer is one in-process API server started for a test.
type peer struct {
	*Server
	dir       string
	tokenFile string
	token     string
}

// startPeer runs a peer on 127.0.0.1:0 until the test ends. The proxy's
// token lives in a file (so rotation can be tested); bob is a second,
// non-proxy identity from a --token-auth-file CSV.
func startPeer(t *testing.T, mutate func(*Options)) *peer {
	t.Helper()
	dir := t.TempDir()
	p := &peer{dir: dir, tokenFile: filepath.Join(dir, "proxy-token"), token: "proxy-token-" + randomHex(8)}
	writeFile(t, p.tokenFile, p.token+"\n")
	csv := filepath.Join(dir, "tokens.csv")
	writeFile(t, csv, fmt.Sprintf("%s,%s,bob-uid,\"devs,ops\"\n", bobToken, bobUser))

	o := NewOptions()
	o.CertDir = filepath.Join(dir, "certs")
	o.ProxyTokenFile = p.tokenFile
	o.TokenAuthFile = csv
	o.DenyUsers = []string{"mallory"}
	if mutate != nil {
		mutate(o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p.Server = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop within 30s")
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("server stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatalf("server not ready within 60s")
	}
	return p
}

// kubeUser is the user stanza of a kubeconfig; As* are kubectl's
// impersonation settings (as-user-extra has no command-line flag in
// kubectl 1.32, only this kubeconfig field).
type kubeUser struct {
	Token       string
	As          string
	AsGroups    []string
	AsUID       string
	AsUserExtra map[string][]string
}

func (p *peer) kubeconfig(t *testing.T, u kubeUser) string {
	t.Helper()
	user := map[string]any{"token": u.Token}
	if u.As != "" {
		user["as"] = u.As
	}
	if len(u.AsGroups) > 0 {
		user["as-groups"] = u.AsGroups
	}
	if u.AsUID != "" {
		user["as-uid"] = u.AsUID
	}
	if len(u.AsUserExtra) > 0 {
		user["as-user-extra"] = u.AsUserExtra
	}
	cfg := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"clusters":        []any{map[string]any{"name": "peer", "cluster": map[string]any{"server": p.URL(), "certificate-authority": p.CAFile()}}},
		"users":           []any{map[string]any{"name": "u", "user": user}},
		"contexts":        []any{map[string]any{"name": "peer", "context": map[string]any{"cluster": "peer", "user": "u"}}},
		"current-context": "peer",
	}
	data, err := json.Marshal(cfg) // JSON is YAML; kubectl reads it as is
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, path, string(data))
	return path
}

// kubectlResult is one kubectl run.
type kubectlResult struct {
	stdout, stderr string
	exitCode       int
}

func kubectlPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KUBECTL"); p != "" {
		return p
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH (set KUBECTL): the real-client tests need it")
	}
	return p
}

func (p *peer) kubectl(t *testing.T, u kubeUser, args ...string) kubectlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--kubeconfig", p.kubeconfig(t, u), "--cache-dir", t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, kubectlPath(t), full...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := kubectlResult{stdout: stdout.String(), stderr: stderr.String()}
	if exitErr, ok := err.(*exec.ExitError); ok {
		res.exitCode = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %v: %v", args, err)
	}
	return res
}

func (p *peer) whoami(t *testing.T, u kubeUser, args ...string) (*authenticationv1.UserInfo, kubectlResult) {
	t.Helper()
	res := p.kubectl(t, u, append([]string{"auth", "whoami", "-o", "json"}, args...)...)
	if res.exitCode != 0 {
		return nil, res
	}
	var review authenticationv1.SelfSubjectReview
	if err := json.Unmarshal([]byte(res.stdout), &review); err != nil {
		t.Fatalf("whoami output is not a SelfSubjectReview: %v\n%s", err, res.stdout)
	}
	return &review.Status.UserInfo, res
}

// lastReview is the most recent selfsubjectreviews request the peer saw.
func (p *peer) lastReview(t *testing.T) Record {
	t.Helper()
	var last *Record
	for _, r := range p.Recorder().Snapshot().Requests {
		if r.Path == "/apis/authentication.k8s.io/v1/selfsubjectreviews" {
			last = &r
		}
	}
	if last == nil {
		t.Fatal("no selfsubjectreviews request recorded")
	}
	return *last
}

func headerValues(r Record, name string) []string {
	var out []string
	for _, h := range r.Headers {
		if h.Name == name {
			out = append(out, h.Value)
		}
	}
	return out
}

// rawClient speaks to the peer directly, for header shapes kubectl cannot
// produce. http2 selects the protocol kubectl uses (h2 over TLS).
func (p *peer) rawClient(t *testing.T, http2 bool) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(p.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: http2,
	}
	if !http2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// rawReview POSTs a SelfSubjectReview with the given header lines (each
// pair is one line, repeated names stay separate) and returns status and
// the decoded user on success.
func (p *peer) rawReview(t *testing.T, client *http.Client, lines [][2]string) (int, *authenticationv1.UserInfo, string) {
	t.Helper()
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	req, err := http.NewRequest(http.MethodPost, p.URL()+"/apis/authentication.k8s.io/v1/selfsubjectreviews", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for _, l := range lines {
		// Direct map access keeps the name exactly as given (no
		// canonicalisation) for the HTTP/1.1 wire.
		req.Header[l[0]] = append(req.Header[l[0]], l[1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, nil, buf.String()
	}
	var review authenticationv1.SelfSubjectReview
	if err := json.Unmarshal(buf.Bytes(), &review); err != nil {
		t.Fatalf("decode: %v\n%s", err, buf.String())
	}
	return resp.StatusCode, &review.Status.UserInfo, buf.String()
}
