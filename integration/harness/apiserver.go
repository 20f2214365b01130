package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var apiserverReadyLine = regexp.MustCompile(`(?m)^apiserver-fake ready (https://127\.0\.0\.1:\d+) record=(http://127\.0\.0\.1:\d+) ca=(\S+) mode=(\S+)$`)

// APIServerOptions configure the API-server stand-in (integration/apiserver, a real
// k8s.io/apiserver handler chain).
type APIServerOptions struct {
	// ProxyTokenFile holds the token the proxy identity authenticates with; the
	// stand-in re-reads it on every request, so a rotated-out token fails at once.
	ProxyTokenFile string
	// SANs are extra DNS names for the serving certificate: the name the reviewed
	// Envoy config pins with sni and a SAN matcher (kubernetes.default.svc), so
	// Envoy's upstream validation runs exactly as reviewed.
	SANs []string
	// ImpersonationMode is "classic" (default; what EKS runs) or "constrained".
	ImpersonationMode string
	// Name tells stand-ins apart in logs (default "apiserver-fake").
	Name string
	// ExtraArgs are appended to the command line (e.g. --record-capacity,
	// --token-auth-file).
	ExtraArgs []string
}

// APIServer is a running apiserver-fake.
type APIServer struct {
	*Process
	// URL is the secure address (https://127.0.0.1:PORT).
	URL string
	// Addr is its host:port, what Envoy's cluster endpoint takes.
	Addr string
	// CAFile is the CA of its serving certificate.
	CAFile string
	// RecordURL is the plain-HTTP recorder (GET/DELETE /requests).
	RecordURL string

	client *http.Client
}

// StartAPIServer starts $KIA_BIN/apiserver-fake on free loopback ports and waits for
// its ready line (printed once /readyz answers 200).
func StartAPIServer(t testing.TB, o APIServerOptions) *APIServer {
	t.Helper()
	if o.ImpersonationMode == "" {
		o.ImpersonationMode = "classic"
	}
	if o.Name == "" {
		o.Name = "apiserver-fake"
	}
	if o.ProxyTokenFile == "" {
		t.Fatalf("harness: APIServerOptions.ProxyTokenFile is required")
	}
	args := []string{
		"--listen", FreeAddr(t),
		"--cert-dir", t.TempDir(),
		"--proxy-token-file", o.ProxyTokenFile,
		"--impersonation-mode", o.ImpersonationMode,
		"--record-listen", FreeAddr(t),
	}
	if len(o.SANs) > 0 {
		args = append(args, "--tls-san", strings.Join(o.SANs, ","))
	}
	args = append(args, o.ExtraArgs...)
	p := StartProcess(t, o.Name, BinPath(t, BinAPIServer), args...)
	m, err := p.waitReadyLine(apiserverReadyLine)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return &APIServer{
		Process:   p,
		URL:       m[1],
		Addr:      strings.TrimPrefix(m[1], "https://"),
		RecordURL: m[2],
		CAFile:    m[3],
		client:    &http.Client{Timeout: 5 * time.Second},
	}
}

// Received is one request as the API-server stand-in received it (the JSON of its
// GET /requests; integration/apiserver/server.Record is the source of truth).
type Received struct {
	Seq    int64  `json:"seq"`
	Method string `json:"method"`
	Path   string `json:"path"`
	// Headers are the received header lines, one per line, names in Go's canonical
	// form, sorted by name with repeated lines in arrival order. Authorization
	// values are "Bearer sha256:<first 12 hex of SHA-256(token)>" (the recorder
	// never exposes a credential; token.Fingerprint computes the same hex).
	Headers []HeaderLine `json:"headers"`
	// Authenticated is who the credential identified, before impersonation.
	Authenticated *ReceivedUser `json:"authenticated,omitempty"`
	AuthError     string        `json:"authError,omitempty"`
	// User is the effective user after impersonation (nil when the request was
	// refused before the handler).
	User      *ReceivedUser `json:"user,omitempty"`
	Status    int           `json:"status"`
	ErrorBody string        `json:"errorBody,omitempty"`
}

// HeaderLine is one received header line.
type HeaderLine struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// String renders the line as it was received.
func (h HeaderLine) String() string { return h.Name + ": " + h.Value }

// ReceivedUser mirrors authentication.k8s.io/v1 UserInfo.
type ReceivedUser struct {
	Username string              `json:"username"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// Lines returns the values of the lines named name (canonical form), in order.
func (r Received) Lines(name string) []string {
	var out []string
	for _, h := range r.Headers {
		if h.Name == name {
			out = append(out, h.Value)
		}
	}
	return out
}

// Recorded returns the requests received since the last ResetRecorded, oldest first.
func (a *APIServer) Recorded(t testing.TB) []Received {
	t.Helper()
	resp, err := a.client.Get(a.RecordURL + "/requests")
	if err != nil {
		t.Fatalf("harness: %s recorder: %v", a.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("harness: %s recorder: %d (%v)", a.Name, resp.StatusCode, err)
	}
	var out struct {
		Requests []Received `json:"requests"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("harness: %s recorder: %v", a.Name, err)
	}
	return out.Requests
}

// ResetRecorded forgets every recorded request.
func (a *APIServer) ResetRecorded(t testing.TB) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, a.RecordURL+"/requests", nil)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("harness: %s recorder: %v", a.Name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("harness: %s recorder DELETE: %d", a.Name, resp.StatusCode)
	}
}

// String names the stand-in in test logs.
func (a *APIServer) String() string { return fmt.Sprintf("%s %s", a.Name, a.URL) }
