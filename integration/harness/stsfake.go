package harness

import (
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
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

var stsReadyLine = regexp.MustCompile(`(?m)^sts-fake ready url=(https://127\.0\.0\.1:\d+) ca=(\S+) principals=\d+$`)

// STSFake is a running sts-fake binary: the STS stand-in over HTTPS with its own CA.
type STSFake struct {
	*Process
	// URL is the base URL (https://127.0.0.1:PORT), what serve --sts-endpoint takes.
	URL string
	// CAFile is the stand-in's CA certificate, what serve --sts-ca-file takes.
	CAFile string

	admin *http.Client
}

// StartSTSFake writes principals to a principals file, starts $KIA_BIN/sts-fake on a
// free loopback port and waits for its ready line.
func StartSTSFake(t testing.TB, principals []stsfake.Principal) *STSFake {
	t.Helper()
	dir := t.TempDir()
	f := stsfake.PrincipalsFile{}
	for _, p := range principals {
		f.Principals = append(f.Principals, stsfake.PrincipalEntry{Principal: p})
	}
	data, err := yaml.Marshal(f)
	if err != nil {
		t.Fatalf("harness: principals: %v", err)
	}
	principalsPath := filepath.Join(dir, "principals.yaml")
	caPath := filepath.Join(dir, "sts-ca.crt")
	if err := os.WriteFile(principalsPath, data, 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
	p := StartProcess(t, "sts-fake", BinPath(t, BinSTSFake),
		"--listen", FreeAddr(t), "--tls", "--ca-out", caPath, "--principals", principalsPath)
	m, err := p.waitReadyLine(stsReadyLine)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("harness: %s holds no certificate", caPath)
	}
	return &STSFake{
		Process: p,
		URL:     m[1],
		CAFile:  caPath,
		admin: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}},
	}
}

// Stats returns the stand-in's counters (GET /_fake/stats).
func (s *STSFake) Stats(t testing.TB) stsfake.Stats {
	t.Helper()
	var st stsfake.Stats
	s.call(t, http.MethodGet, "/_fake/stats", nil, &st)
	return st
}

// SetFault makes the stand-in misbehave (PUT /_fake/fault).
func (s *STSFake) SetFault(t testing.TB, f stsfake.Fault) {
	t.Helper()
	s.call(t, http.MethodPut, "/_fake/fault", f, nil)
}

// SetLatency delays every STS answer by d (PUT /_fake/latency); 0 removes the delay.
func (s *STSFake) SetLatency(t testing.TB, d time.Duration) {
	t.Helper()
	s.call(t, http.MethodPut, "/_fake/latency", map[string]string{"latency": d.String()}, nil)
}

// ClearFault ends a fault (DELETE /_fake/fault).
func (s *STSFake) ClearFault(t testing.TB) {
	t.Helper()
	s.call(t, http.MethodDelete, "/_fake/fault", nil, nil)
}

func (s *STSFake) call(t testing.TB, method, path string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	resp, err := s.admin.Do(req)
	if err != nil {
		t.Fatalf("harness: sts-fake %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("harness: sts-fake %s %s: %d %s (%v)", method, path, resp.StatusCode, b, err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("harness: sts-fake %s %s: %v", method, path, err)
		}
	}
}

// String names the stand-in in test logs.
func (s *STSFake) String() string { return fmt.Sprintf("sts-fake %s", s.URL) }
