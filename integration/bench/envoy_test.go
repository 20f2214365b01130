//go:build bench

package bench

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// apiServerName is the name the apiserver-fake certificate carries; the
// reviewed config pins kubernetes.default.svc, so the bench points the
// upstream sni and SAN matcher at this name instead (the only change to
// the reviewed config besides addresses and, for the baseline, the
// removed ext_authz filter).
const apiServerName = "localhost"

// apiserver is the running API-server stand-in (a real k8s.io/apiserver
// handler chain).
type apiserver struct {
	*proc
	addr, caFile, recordURL string
}

func startAPIServer(t testing.TB) *apiserver {
	t.Helper()
	dir := t.TempDir()
	p := startProc(t, nil, "apiserver-fake", binPath(t, "apiserver-fake"),
		"--cert-dir", dir, "--proxy-token", proxyToken, "--record-listen", harness.FreeAddr(t))
	m := p.waitLine(t, regexp.MustCompile(`apiserver-fake ready https://(\S+) record=(\S+) ca=(\S+)`), 60*time.Second)
	return &apiserver{proc: p, addr: m[1], recordURL: m[2], caFile: m[3]}
}

// impersonationHeaders returns the Impersonate-* lines of the last
// recorded request to path, as the API server received them.
func (a *apiserver) impersonationHeaders(t testing.TB, p string) [][2]string {
	t.Helper()
	resp, err := http.Get(a.recordURL + "/requests")
	must(t, err)
	defer resp.Body.Close()
	var snap struct {
		Requests []struct {
			Path    string `json:"path"`
			Headers []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"headers"`
		} `json:"requests"`
	}
	must(t, json.NewDecoder(resp.Body).Decode(&snap))
	recs := snap.Requests
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Path != p {
			continue
		}
		var out [][2]string
		for _, h := range recs[i].Headers {
			if strings.HasPrefix(strings.ToLower(h.Name), "impersonate-") {
				out = append(out, [2]string{h.Name, h.Value})
			}
		}
		return out
	}
	t.Fatalf("bench: the API server recorded no request to %s", p)
	return nil
}

// envoyStack is the reviewed sidecar config, with or without ext_authz.
type envoyStack struct {
	envoy  *harness.Envoy
	url    string
	caFile string
}

// startEnvoyStack starts the reviewed sidecar config; edits, if any, change it
// further before it is rendered (case 8 trims the group slots).
func startEnvoyStack(t testing.TB, authzAddr string, api *apiserver, withAuthz bool, edits ...func(*bootstrapv3.Bootstrap) error) *envoyStack {
	t.Helper()
	b, secrets, err := envoy.LoadWithSecrets(filepath.Join("..", "..", "envoy", "sidecar.yaml"))
	must(t, err)
	for _, edit := range edits {
		must(t, edit(b))
	}
	must(t, envoy.Edit(b, func(u *tlsv3.UpstreamTlsContext) error {
		u.Sni = apiServerName
		vc := u.GetCommonTlsContext().GetValidationContext()
		if vc == nil {
			vc = u.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext()
		}
		if vc != nil {
			for _, m := range vc.GetMatchTypedSubjectAltNames() {
				m.Matcher = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: apiServerName}}
			}
		}
		return nil
	}))
	if !withAuthz {
		must(t, envoy.Edit(b, func(h *hcmv3.HttpConnectionManager) error {
			kept := h.HttpFilters[:0]
			for _, f := range h.HttpFilters {
				if !strings.Contains(f.GetName(), "ext_authz") {
					kept = append(kept, f)
				}
			}
			h.HttpFilters = kept
			return nil
		}))
	}
	inv, err := envoy.InventorizeAll(b, secrets)
	must(t, err)
	ca := harness.NewCA(t)
	cert := ca.Issue(t, "envoy", "localhost", "127.0.0.1")
	p := envoy.LocalPorts{
		AdminAddr: harness.FreeAddr(t), AuthzAddr: authzAddr,
		Listeners: map[string]string{}, APIServers: map[string]string{}, Files: map[string]string{},
	}
	for _, name := range inv.Listeners {
		p.Listeners[name] = harness.FreeAddr(t)
	}
	for _, name := range inv.APIServers {
		p.APIServers[name] = api.addr
	}
	// Without the filter nothing refers to the authz cluster, so the
	// inventory lists it as an upstream: it points at the API server and is
	// never used.
	sdsDir := t.TempDir()
	for _, f := range inv.Files {
		switch {
		case secrets[f] != nil:
			p.Files[f] = filepath.Join(sdsDir, path.Base(f))
		case strings.HasSuffix(f, ".key"):
			p.Files[f] = cert.KeyFile
		case path.Base(f) == "tls.crt":
			p.Files[f] = cert.CertFile
		default:
			p.Files[f] = api.caFile
		}
	}
	r, err := envoy.RenderLocal(b, secrets, p)
	must(t, err)
	must(t, r.WriteSDS())
	e := harness.StartEnvoy(t, r.Bootstrap)
	var url string
	for _, addr := range p.Listeners {
		url = "https://" + addr
	}
	return &envoyStack{envoy: e, url: url, caFile: ca.CertFile}
}

// get sends one GET through Envoy and returns the status.
func (e *envoyStack) get(t testing.TB, p string, headers [][2]string) int {
	t.Helper()
	pem, err := os.ReadFile(e.caFile)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, e.url+p, nil)
	must(t, err)
	for _, h := range headers {
		req.Header.Add(h[0], h[1])
	}
	resp, err := c.Do(req)
	must(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// vegetaTargets writes a vegeta target file (http format): one GET with
// the given header lines.
func vegetaTargets(t testing.TB, dir, name, url string, headers [][2]string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s\n", url)
	for _, h := range headers {
		fmt.Fprintf(&b, "%s: %s\n", h[0], h[1])
	}
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, []byte(b.String()), 0o600))
	return p
}
