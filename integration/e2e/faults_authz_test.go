//go:build integration

package e2e

import (
	"context"

	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// proxyFingerprint is how apiserver-fake's recorder shows the proxy's credential.
func proxyFingerprint(tok string) string { return "Bearer sha256:" + token.Fingerprint(tok) }

// TestFaultsAuthzKilledUnderLoad: kube-iam-authz is SIGKILLed while requests flow
// through Envoy, and started again on the same port. Clients see 200 or 503, nothing
// else; no request reaches the API server without a decision (every request the
// upstream recorded carries the proxy's credential and an Impersonate-User, and there
// are exactly as many of them as 200s); a request with no token or with a client
// Impersonate-* header is never a 200; and Envoy, never restarted, recovers by itself.
func TestFaultsAuthzKilledUnderLoad(t *testing.T) {
	const proxyToken = "proxy-sa-token-kill-0001"
	s := newRelStack(t, relOptions{proxyToken: proxyToken, apiserverExtraArgs: []string{"--record-capacity", "10000"}})
	toks := []string{s.token(t, "alice"), s.token(t, "bob")}
	for _, tok := range toks {
		wantOK(t, "warm-up", s.get(t, tok))
	}
	since := s.lastSeq(t)
	envoyPID := s.envoy.Pid()

	ctx, cancel := context.WithCancel(context.Background())
	var tally *loadTally
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tally = runLoad(ctx, t, s, 6, func(w, i int) relReq {
			switch w {
			case 0:
				return relReq{class: "no token"}
			case 1:
				return relReq{class: "smuggled", tok: toks[i%2], header: http.Header{"Impersonate-Group": {"system:masters"}}}
			default:
				return relReq{class: "valid", tok: toks[i%2]}
			}
		})
	}()

	time.Sleep(1500 * time.Millisecond)
	old := s.currentServe()
	if err := old.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-old.Done()
	time.Sleep(1500 * time.Millisecond) // traffic while the server is gone
	downCount := tally503(t, s)
	s.restartServe(t)
	restarted := time.Now()
	// Requests succeed again without touching Envoy.
	waitUntil(t, 10*time.Second, "a 200 through Envoy after the restart", func() bool {
		return s.get(t, toks[0]).status == http.StatusOK
	})
	t.Logf("recovered %s after the restart (503s while down: %d)", time.Since(restarted).Round(time.Millisecond), downCount)
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	t.Logf("outcomes: %s", tally)

	for class, allowed := range map[string][]string{
		"valid":    {"200", "503"},
		"no token": {"401", "503"},
		"smuggled": {"403", "503"},
	} {
		for _, o := range tally.outcomes(class) {
			if !contains(allowed, o) {
				t.Errorf("%s requests: outcome %s (%d times), want only %v", class, o, tally.get(class, o), allowed)
			}
		}
	}
	if tally.get("valid", "503") == 0 {
		t.Error("no 503 while the server was down: the kill did not happen under load")
	}
	if tally.get("valid", "200") == 0 {
		t.Error("no 200 at all")
	}
	if exited, _ := s.envoy.Exited(); exited || s.envoy.Pid() != envoyPID {
		t.Error("Envoy did not survive")
	}

	// Every request the API server saw was decided: the proxy's credential, an
	// impersonated user, no client group.
	recorded := s.recorded(t, since)
	for _, r := range recorded {
		auth := r.Lines("Authorization")
		users := r.Lines("Impersonate-User")
		if len(auth) != 1 || auth[0] != proxyFingerprint(proxyToken) || len(users) != 1 {
			t.Errorf("upstream request %d without a decision: Authorization %q Impersonate-User %q", r.Seq, auth, users)
		}
		for _, g := range r.Lines("Impersonate-Group") {
			if g == "system:masters" {
				t.Errorf("upstream request %d carries the client's Impersonate-Group", r.Seq)
			}
		}
	}
	// Recorded during the run: the load's 200s plus the probes of waitUntil.
	if got, want := len(recorded), tally.get("valid", "200"); got < want {
		t.Errorf("upstream recorded %d requests, fewer than the %d 200s", got, want)
	} else if got > want+20 {
		t.Errorf("upstream recorded %d requests, more than the %d 200s and the recovery probes: something got through undecided", got, want)
	}
}

func tally503(t *testing.T, s *relStack) int {
	t.Helper()
	n := 0
	for i := 0; i < 3; i++ {
		if r := s.get(t, ""); r.status == http.StatusServiceUnavailable {
			n++
		}
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestFaultsAuthzSIGTERM: SIGTERM while Checks are in flight (STS answering slowly).
// Every in-flight Check finishes with its real answer (200), the process exits cleanly
// within the grace period, and requests arriving after the signal are refused with 503
// through Envoy, never let through.
func TestFaultsAuthzSIGTERM(t *testing.T) {
	s := newRelStack(t, relOptions{serveArgs: []string{"--sts-timeout", "4s"}})
	const inFlight = 6
	toks := make([]string, inFlight)
	for i := range toks {
		toks[i] = s.token(t, []string{"alice", "bob"}[i%2])
	}
	s.sts.SetLatency(t, 1500*time.Millisecond)

	results := make([]relResponse, inFlight)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.get(t, toks[i])
		}()
	}
	// Wait until every Check is waiting at STS (the stand-in records the cluster id on
	// arrival and counts the request when it answers), then signal.
	waitUntil(t, 10*time.Second, "the in-flight Checks to reach STS", func() bool {
		return len(s.sts.Stats(t).ClusterIDs) >= inFlight
	})
	srv := s.currentServe()
	signalled := time.Now()
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if answered := s.sts.Stats(t).Total; answered != 0 {
		t.Fatalf("STS already answered %d Checks when SIGTERM was sent: nothing was in flight", answered)
	}
	// New requests after the signal: refused, never let through.
	time.Sleep(200 * time.Millisecond)
	late := s.get(t, s.token(t, "alice"))
	wg.Wait()

	for i, r := range results {
		if r.err != nil || r.status != http.StatusOK {
			t.Errorf("in-flight request %d: HTTP %d %v (%q), want 200: the drain cut it", i, r.status, r.err, r.body)
		}
	}
	if late.status != http.StatusServiceUnavailable {
		t.Errorf("request after SIGTERM: HTTP %d (%q), want 503", late.status, late.body)
	}
	select {
	case <-srv.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not exit within its 5s grace period")
	}
	if _, err := srv.Exited(); err != nil {
		t.Errorf("serve exited with %v after SIGTERM, want 0", err)
	}
	t.Logf("exited %s after SIGTERM", time.Since(signalled).Round(time.Millisecond))
	if d := s.decisions(t); len(d) < inFlight {
		t.Errorf("%d decisions logged, want the %d in-flight ones", len(d), inFlight)
	}

}
