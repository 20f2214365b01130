//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestFaultsUpstreamTokenUnderLoad: the proxy's own token file is rotated mid-flight,
// then deleted, then emptied, while requests flow. The API server, like a real one,
// accepts both the old and the new projected token. Every request stays 200; after the
// rotation the API server sees only the new token; a missing or unusable file keeps the
// last good token in use, and the failed reads are counted.
func TestFaultsUpstreamTokenUnderLoad(t *testing.T) {
	const (
		tok1 = "proxy-sa-token-rotation-0001"
		tok2 = "proxy-sa-token-rotation-0002"
	)
	dir := t.TempDir()
	tokenAuth := filepath.Join(dir, "tokens.csv")
	var csv strings.Builder
	for _, tok := range []string{tok1, tok2} {
		fmt.Fprintf(&csv, "%s,system:serviceaccount:kube-iam-authz:proxy,proxy-uid,\"system:serviceaccounts,system:serviceaccounts:kube-iam-authz\"\n", tok)
	}
	if err := os.WriteFile(tokenAuth, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	nobody := filepath.Join(dir, "static-token")
	if err := os.WriteFile(nobody, []byte("static-token-nobody-uses-000"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newRelStack(t, relOptions{
		proxyToken:         tok1,
		apiserverTokenFile: nobody,
		apiserverExtraArgs: []string{"--token-auth-file", tokenAuth, "--record-capacity", "10000"},
	})
	alice, bob := s.token(t, "alice"), s.token(t, "bob")
	wantOK(t, "alice", s.get(t, alice))

	ctx, cancel := context.WithCancel(context.Background())
	var tally *loadTally
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tally = runLoad(ctx, t, s, 4, func(w, i int) relReq {
			return relReq{class: "valid", tok: []string{alice, bob}[w%2]}
		})
	}()
	defer func() { cancel(); wg.Wait() }()

	lastAuth := func() string {
		r := s.recorded(t, 0)
		if len(r) == 0 {
			return ""
		}
		return strings.Join(r[len(r)-1].Lines("Authorization"), ",")
	}
	waitUntil(t, 5*time.Second, "requests with the first token", func() bool { return lastAuth() == proxyFingerprint(tok1) })

	// Rotation, as the kubelet does it: a new file renamed over the old.
	writeFileAtomic(t, s.proxyTokenPath, tok2+"\n")
	waitUntil(t, 10*time.Second, "the rotated token upstream", func() bool { return lastAuth() == proxyFingerprint(tok2) })
	switched := s.lastSeq(t)

	failures := `kube_iam_authz_upstream_token_reads_total{name="default",result="failure"}`
	for _, fault := range []struct {
		name  string
		apply func()
	}{
		{"deleted", func() { _ = os.Remove(s.proxyTokenPath) }},
		{"empty", func() { writeFileAtomic(t, s.proxyTokenPath, "\n") }},
		{"a directory", func() { _ = os.Remove(s.proxyTokenPath); _ = os.Mkdir(s.proxyTokenPath, 0o700) }},
	} {
		before, _ := metricValue(serveMetrics(t, s.serve), failures)
		fault.apply()
		waitUntil(t, 10*time.Second, fault.name+": the failed read to be counted", func() bool {
			v, _ := metricValue(serveMetrics(t, s.serve), failures)
			return v > before
		})
		wantOK(t, fault.name+": alice", s.get(t, alice))
		_ = os.RemoveAll(s.proxyTokenPath)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	t.Logf("outcomes: %s", tally)
	if o := tally.outcomes("valid"); len(o) != 1 || o[0] != "200" {
		t.Errorf("outcomes %v during rotation and file faults, want only 200", o)
	}
	for _, r := range s.recorded(t, switched) {
		if got := strings.Join(r.Lines("Authorization"), ","); got != proxyFingerprint(tok2) {
			t.Errorf("request %d after the rotation carried %q, want the new token only", r.Seq, got)
		}
	}
}

// TestFaultsUpstreamTokenMissingAtStart: without a usable token file there is no last
// good token, and serve refuses to start, saying why, instead of serving requests that
// would all fail upstream.
func TestFaultsUpstreamTokenMissingAtStart(t *testing.T) {
	dir := t.TempDir()
	mappingPath := filepath.Join(dir, "aws-auth.yaml")
	if err := os.WriteFile(mappingPath, []byte(relMapping), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-token")
	srv := harness.StartProcess(t, "kube-iam-authz", harness.BinPath(t, harness.BinAuthz), "serve",
		"--grpc-listen", harness.FreeAddr(t), "--http-listen", harness.FreeAddr(t),
		"--cluster-id", relClusterID, "--mapping-file", mappingPath, "--upstream-token-file", missing)
	select {
	case <-srv.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("serve kept running without its upstream token")
	}
	if _, err := srv.Exited(); err == nil {
		t.Error("serve exited 0 without its upstream token")
	}
	if !strings.Contains(srv.Stderr(), missing) {
		t.Errorf("the error does not name the file: %s", srv.Stderr())
	}
}
