//go:build integration

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// apiServerName is the name the reviewed configs pin for the in-cluster API server
// (sni and SAN matcher); the fake upstream's certificate carries it so that Envoy's
// upstream validation runs exactly as reviewed.
const apiServerName = "kubernetes.default.svc"

// wireStack is client → real Envoy (a reviewed config) → fake upstream(s), with the fake
// authz server beside Envoy.
type wireStack struct {
	authz     *fakeAuthz
	authzAddr string
	stopAuthz func()
	upstreams map[string]*rawUpstream // by cluster name
	envoy     *harness.Envoy
	ports     envoy.LocalPorts
	h1, h2    *http.Client
}

type stackOptions struct {
	config string                             // path of the reviewed config
	sans   map[string]string                  // cluster → SAN for its upstream certificate
	edit   func(*bootstrapv3.Bootstrap) error // optional change before rendering
}

func newWireStack(t *testing.T, o stackOptions) *wireStack {
	t.Helper()
	if o.config == "" {
		o.config = "../../envoy/sidecar.yaml"
	}
	if o.sans == nil {
		o.sans = map[string]string{"apiserver": apiServerName}
	}
	ca := harness.NewCA(t)
	s := &wireStack{authz: newFakeAuthz(), authzAddr: harness.FreeAddr(t), upstreams: map[string]*rawUpstream{}}
	s.stopAuthz = startAuthz(t, s.authzAddr, s.authz)
	apiservers := map[string]string{}
	for cluster, san := range o.sans {
		up := startUpstream(t, ca.Issue(t, cluster, san).TLS)
		s.upstreams[cluster] = up
		apiservers[cluster] = up.Addr
	}
	cfg, ports := harness.RenderEnvoy(t, o.config, harness.RenderOptions{
		AuthzAddr:  s.authzAddr,
		APIServers: apiservers,
		CA:         ca,
		ServerCert: ca.Issue(t, "envoy", "localhost", "127.0.0.1"),
		Edit:       o.edit,
	})
	s.ports = ports
	s.envoy = harness.StartEnvoy(t, cfg)

	tlsConfig := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	s.h1 = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tlsConfig,
		// An empty map disables HTTP/2: requests go out as HTTP/1.1 header lines,
		// exactly as the test writes them.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	s.h2 = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   tlsConfig,
		ForceAttemptHTTP2: true,
	}}
	t.Cleanup(func() {
		s.h1.CloseIdleConnections()
		s.h2.CloseIdleConnections()
	})
	return s
}

// listener returns the base URL of a listener ("" = the only one).
func (s *wireStack) url(listener string) string {
	if listener == "" {
		for name := range s.ports.Listeners {
			listener = name
		}
	}
	return "https://" + s.ports.Listeners[listener]
}

type response struct {
	status int
	header http.Header
	body   string
	proto  string
}

// do sends one request for case c with the given header lines (keys are written as
// given, so casing and repeats are the test's choice).
func (s *wireStack) do(t *testing.T, client *http.Client, listener, method, path, c string, h http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, s.url(listener)+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set(caseHeader, c)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body), proto: resp.Proto}
}

// accessLog returns Envoy's JSON access log lines so far, waiting (bounded) until one
// matches want: Envoy flushes access logs asynchronously.
func (s *wireStack) accessLog(t *testing.T, want func(map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var entries []map[string]any
		found := false
		for _, line := range strings.Split(s.envoy.Stdout(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			entries = append(entries, m)
			found = found || want(m)
		}
		if found || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(100 * time.Millisecond)
	}
}
