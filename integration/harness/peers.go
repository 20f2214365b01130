package harness

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// EnvVarBin names the environment variable holding the directory of the built binaries
// (kube-iam-authz, sts-fake, apiserver-fake); `make integration` sets it.
const EnvVarBin = "KIA_BIN"

// peerReadyTimeout bounds a peer's start-up. The machine running the tests may be
// loaded; the peers themselves start in well under a second.
const peerReadyTimeout = 60 * time.Second

// Bin returns the path of a built binary from KIA_BIN, failing the test with
// instructions when it is missing: an integration test never passes by not running.
func Bin(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv(EnvVarBin)
	if dir == "" {
		t.Fatalf("harness: %s is not set; run `make build` (and build integration/apiserver) and set %s=$(pwd)/bin, or use `make integration`", EnvVarBin, EnvVarBin)
	}
	path := filepath.Join(dir, name)
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("harness: %s is not an executable file (%v); run `make build`", path, err)
	}
	return path
}

// waitLine waits until the process's stdout has a line matching re and returns the
// submatches.
func (p *Process) waitLine(re *regexp.Regexp) ([]string, error) {
	var m []string
	err := p.waitFor(peerReadyTimeout, func() error {
		sc := bufio.NewScanner(strings.NewReader(p.Stdout()))
		for sc.Scan() {
			if m = re.FindStringSubmatch(sc.Text()); m != nil {
				return nil
			}
		}
		return errNotReady
	})
	return m, err
}

// STSFake is a running sts-fake binary.
type STSFake struct {
	*Process
	// URL is the STS endpoint (https://127.0.0.1:PORT).
	URL string
	// CAFile is the PEM CA that signed its certificate.
	CAFile string
	admin  *http.Client
}

var stsFakeReady = regexp.MustCompile(`^sts-fake ready url=(\S+) ca=(\S*) `)

// StartSTSFake writes principals to a file and starts sts-fake on a free loopback port
// with a generated CA, waiting for its ready line.
func StartSTSFake(t testing.TB, principals stsfake.PrincipalsFile, args ...string) *STSFake {
	t.Helper()
	dir := t.TempDir()
	pf := filepath.Join(dir, "principals.json")
	b, err := json.Marshal(principals)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := os.WriteFile(pf, b, 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
	caFile := filepath.Join(dir, "sts-ca.pem")
	full := append([]string{"--listen", "127.0.0.1:0", "--tls", "--ca-out", caFile, "--principals", pf}, args...)
	p := StartProcess(t, "sts-fake", Bin(t, "sts-fake"), full...)
	m, err := p.waitLine(stsFakeReady)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	s := &STSFake{Process: p, URL: m[1], CAFile: m[2]}
	pool, err := poolFromFile(caFile)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	s.admin = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsClientConfig(pool)}}
	t.Cleanup(s.admin.CloseIdleConnections)
	return s
}

// SetFault makes sts-fake misbehave (see stsfake.Fault); a zero Fault clears it.
func (s *STSFake) SetFault(t testing.TB, f stsfake.Fault) {
	t.Helper()
	method := http.MethodPut
	if f.Kind == stsfake.FaultNone {
		method = http.MethodDelete
	}
	b, _ := json.Marshal(f)
	s.adminCall(t, method, "/_fake/fault", b, nil)
}

// SetLatency delays every STS answer by d.
func (s *STSFake) SetLatency(t testing.TB, d time.Duration) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"latency": d.String()})
	s.adminCall(t, http.MethodPut, "/_fake/latency", b, nil)
}

// Stats returns sts-fake's counters.
func (s *STSFake) Stats(t testing.TB) stsfake.Stats {
	t.Helper()
	var st stsfake.Stats
	s.adminCall(t, http.MethodGet, "/_fake/stats", nil, &st)
	return st
}

func (s *STSFake) adminCall(t testing.TB, method, path string, body []byte, out any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.admin.Do(req)
	if err != nil {
		t.Fatalf("harness: sts-fake %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("harness: sts-fake %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("harness: sts-fake %s %s: %v", method, path, err)
		}
	}
}

// APIServerFake is a running apiserver-fake binary (integration/apiserver).
type APIServerFake struct {
	*Process
	// URL is the secure API endpoint (https://127.0.0.1:PORT).
	URL string
	// Addr is URL's host:port.
	Addr string
	// RecordURL is the recorder's base URL ("" when off).
	RecordURL string
	// CAFile is the CA of its serving certificate.
	CAFile string
}

var apiServerFakeReady = regexp.MustCompile(`^apiserver-fake ready (https://(\S+)) record=(\S+) ca=(\S+) `)

// StartAPIServerFake starts apiserver-fake with a fresh cert dir and a recorder on a
// free loopback port; args add flags (--proxy-token-file is one of them is required).
func StartAPIServerFake(t testing.TB, args ...string) *APIServerFake {
	t.Helper()
	full := append([]string{"--listen", FreeAddr(t), "--cert-dir", t.TempDir(), "--record-listen", FreeAddr(t)}, args...)
	p := StartProcess(t, "apiserver-fake", Bin(t, "apiserver-fake"), full...)
	m, err := p.waitLine(apiServerFakeReady)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	a := &APIServerFake{Process: p, URL: m[1], Addr: m[2], CAFile: m[4]}
	if m[3] != "off" {
		a.RecordURL = m[3]
	}
	return a
}

// RecordedRequest is what apiserver-fake's recorder says about one request: the header
// lines it received and who it served.
type RecordedRequest struct {
	Seq     int64  `json:"seq"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Headers []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"headers"`
	Authenticated *RecordedUser `json:"authenticated,omitempty"`
	User          *RecordedUser `json:"user,omitempty"`
	AuthError     string        `json:"authError,omitempty"`
	Status        int           `json:"status"`
}

// RecordedUser is a user as the API server saw it.
type RecordedUser struct {
	Username string              `json:"username"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// HeaderValues returns every value of a header line by name (case-insensitive).
func (r RecordedRequest) HeaderValues(name string) []string {
	var out []string
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			out = append(out, h.Value)
		}
	}
	return out
}

// Requests returns the recorded requests with a sequence number above since (0: all).
func (a *APIServerFake) Requests(t testing.TB, since int64) []RecordedRequest {
	t.Helper()
	if a.RecordURL == "" {
		t.Fatal("harness: apiserver-fake runs without a recorder")
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("%s/requests?since=%d", a.RecordURL, since))
	if err != nil {
		t.Fatalf("harness: apiserver-fake recorder: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Requests []RecordedRequest `json:"requests"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		t.Fatalf("harness: apiserver-fake recorder: %v", err)
	}
	return out.Requests
}

// LastSeq returns the highest recorded sequence number (0 when nothing was recorded),
// to pass to Requests later as since.
func (a *APIServerFake) LastSeq(t testing.TB) int64 {
	t.Helper()
	var last int64
	for _, r := range a.Requests(t, 0) {
		last = max(last, r.Seq)
	}
	return last
}

// Serve is a running `kube-iam-authz serve`.
type Serve struct {
	*Process
	// GRPCAddr is the ext_authz address, HTTPAddr the /metrics, /healthz, /readyz one.
	GRPCAddr, HTTPAddr string
	http               *http.Client
}

// StartServe starts `kube-iam-authz serve` on the given addresses (FreeAddr for new
// ones; a restart passes the old ones) with args, and waits until /readyz is 200.
func StartServe(t testing.TB, grpcAddr, httpAddr string, args ...string) *Serve {
	t.Helper()
	s := StartServeNoWait(t, grpcAddr, httpAddr, args...)
	if err := s.waitFor(peerReadyTimeout, func() error {
		code, body, err := s.Get("/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/readyz %d %s", code, strings.TrimSpace(body))
		}
		return nil
	}); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return s
}

// StartServeNoWait starts `kube-iam-authz serve` without waiting for readiness.
func StartServeNoWait(t testing.TB, grpcAddr, httpAddr string, args ...string) *Serve {
	t.Helper()
	full := append([]string{"serve", "--grpc-listen", grpcAddr, "--http-listen", httpAddr}, args...)
	p := StartProcess(t, "kube-iam-authz", Bin(t, "kube-iam-authz"), full...)
	s := &Serve{Process: p, GRPCAddr: grpcAddr, HTTPAddr: httpAddr, http: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(s.http.CloseIdleConnections)
	return s
}

// Get fetches a path of the HTTP endpoint.
func (s *Serve) Get(path string) (int, string, error) {
	resp, err := s.http.Get("http://" + s.HTTPAddr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(b), err
}

// Metrics returns the /metrics text.
func (s *Serve) Metrics(t testing.TB) string {
	t.Helper()
	code, body, err := s.Get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("harness: GET /metrics: %d %v", code, err)
	}
	return body
}

// MetricValue returns the value of the sample whose name and labels (in the exposition
// text, e.g. `kube_iam_authz_checks_total{reason="ok"}`) match exactly, and whether it
// was found. Labels must be written in the order Prometheus prints them (sorted).
func MetricValue(metrics, sample string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(metrics))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

func poolFromFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no certificate in %s", path)
	}
	return pool, nil
}

func tlsClientConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
