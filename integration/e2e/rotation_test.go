//go:build integration

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// servedCert is what one request through Envoy saw.
type servedCert struct {
	serial   string
	notAfter time.Time
}

func (c servedCert) String() string {
	return "serial " + c.serial + " notAfter " + c.notAfter.UTC().Format(time.RFC3339)
}

// TestCertRotationUnderLoad: the reviewed sidecar reads the listener certificate and
// the API server's CA through watched file-based SDS (envoy/sds/*.yaml). While
// closed-loop clients keep sending requests, each on a NEW TLS connection, the
// listener's Secret volume is updated the kubelet way (a new hidden directory and one
// rename of ..data), then with a broken pair, and then the API server CA volume: new
// connections get the new certificate (serial and notAfter), the broken pair is
// refused with the last good certificate still served, Envoy is not restarted, and no
// request fails.
func TestCertRotationUnderLoad(t *testing.T) {
	ca := harness.NewCA(t)
	first := ca.IssueValidFor(t, "listener-1", 2*time.Hour, "localhost", "127.0.0.1")
	second := ca.IssueValidFor(t, "listener-2", 3*time.Hour, "localhost", "127.0.0.1")
	secretFiles := func(c *harness.Cert) map[string][]byte {
		crt, key := c.PEM(t)
		return map[string][]byte{"tls.crt": crt, "tls.key": key}
	}
	vol := harness.NewProjectedDir(t, secretFiles(first))
	s := newRelStack(t, relOptions{listenerTLS: vol, listenerCA: ca, projectedAPICA: true})
	tok := s.token(t, "alice")
	want := func(c *harness.Cert) servedCert {
		return servedCert{serial: c.TLS.Leaf.SerialNumber.Text(16), notAfter: c.TLS.Leaf.NotAfter}
	}
	pid := s.envoy.Pid()

	// Every request opens its own TLS connection: a handshake that fails during the
	// swap is a failed request.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"},
		DisableKeepAlives: true,
	}}
	defer client.CloseIdleConnections()
	var (
		mu       sync.Mutex
		seen     = map[servedCert]int{}
		failures []string
		total    int
		latest   servedCert
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequest(http.MethodGet, s.url()+"/version", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				mu.Lock()
				total++
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				default:
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
					resp.Body.Close()
					leaf := resp.TLS.PeerCertificates[0]
					got := servedCert{serial: leaf.SerialNumber.Text(16), notAfter: leaf.NotAfter}
					seen[got]++
					latest = got
					if resp.StatusCode != http.StatusOK {
						failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body))))
					}
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	stop := func() {
		cancel()
		wg.Wait()
	}
	defer stop()
	current := func() servedCert {
		mu.Lock()
		defer mu.Unlock()
		return latest
	}
	countOf := func(c servedCert) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[c]
	}

	waitUntil(t, 20*time.Second, "requests served with the first certificate", func() bool { return countOf(want(first)) >= 20 })
	// Envoy counts TLS contexts rebuilt from SDS per listener and cluster (a re-read
	// of a watched file is not an SDS resource update: sds.<name>.update_success
	// stays put).
	stat := func(name string) uint64 {
		n, err := s.envoy.Stat(name)
		if err != nil {
			t.Fatalf("envoy stat: %v", err)
		}
		return n
	}
	updates := func() uint64 {
		return stat("listener." + strings.ReplaceAll(s.ports.Listeners["kube-api"], ":", "_") + ".server_ssl_socket_factory.ssl_context_update_by_sds")
	}
	before := updates()

	// The listener's Secret volume, renewed (cert-manager writes the Secret; the
	// kubelet swaps ..data).
	vol.Update(t, secretFiles(second))
	waitUntil(t, 20*time.Second, "new connections served with the renewed certificate", func() bool {
		return current() == want(second) && countOf(want(second)) >= 20
	})
	if got := updates(); got <= before {
		t.Errorf("listener ssl_context_update_by_sds = %d, was %d: the listener was not updated through SDS", got, before)
	}
	// Past the swap, no new connection gets the old certificate.
	settled := countOf(want(first))
	time.Sleep(500 * time.Millisecond)
	if got := countOf(want(first)); got != settled {
		t.Errorf("%d more connections got the old certificate after the renewed one was served", got-settled)
	}
	var served int

	// A broken renewal (the next certificate with the old key): Envoy refuses it and
	// keeps serving the renewed certificate; requests go on succeeding.
	third := ca.IssueValidFor(t, "listener-3", 4*time.Hour, "localhost", "127.0.0.1")
	broken := secretFiles(third)
	broken["tls.key"] = secretFiles(second)["tls.key"]
	rotationFailed := func() uint64 { return stat("sds.listener-cert.key_rotation_failed") }
	failedBefore := rotationFailed()
	vol.Update(t, broken)
	waitUntil(t, 20*time.Second, "Envoy to refuse the mismatched pair", func() bool { return rotationFailed() > failedBefore })
	served = countOf(want(second))
	waitUntil(t, 20*time.Second, "requests after the broken renewal", func() bool { return countOf(want(second)) >= served+20 })
	if got := current(); got != want(second) {
		t.Errorf("after a broken renewal: serving %v, want the last good %v", got, want(second))
	}

	// The API server's CA volume: a CA rotation first adds the new CA to the bundle.
	// Envoy re-reads it (its /certs lists the added CA) and upstream requests keep
	// succeeding on the old one.
	apiCA, err := os.ReadFile(s.api.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	nextCA := harness.NewCA(t)
	nextPEM, err := os.ReadFile(nextCA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	clusterUpdates := func() uint64 { return stat("cluster.apiserver.client_ssl_socket_factory.ssl_context_update_by_sds") }
	beforeCA := clusterUpdates()
	s.apiCAVolume.Update(t, map[string][]byte{"ca.crt": append(append([]byte{}, apiCA...), nextPEM...)})
	waitUntil(t, 20*time.Second, "the API server CA bundle re-read through SDS", func() bool { return clusterUpdates() > beforeCA })
	served = countOf(want(second))
	waitUntil(t, 20*time.Second, "requests after the CA update", func() bool { return countOf(want(second)) >= served+20 })

	stop()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d requests, certificates served %v", total, seen)
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed across the rotations, e.g. %q", len(failures), total, failures[:min(3, len(failures))])
	}
	for c := range seen {
		if c != want(first) && c != want(second) {
			t.Errorf("a connection got certificate %+v, neither the first nor the renewed one", c)
		}
	}
	for _, name := range []string{"sds.listener-cert.update_rejected", "sds.apiserver-ca.update_rejected", "sds.apiserver-ca.key_rotation_failed"} {
		if n := stat(name); n != 0 {
			t.Errorf("%s = %d, want 0", name, n)
		}
	}
	if got := s.envoy.Pid(); got != pid {
		t.Errorf("envoy restarted (pid %d → %d)", pid, got)
	}
}
