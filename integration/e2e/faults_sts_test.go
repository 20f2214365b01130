//go:build integration

package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// relEnvoyAuthzTimeout is the reviewed ext_authz timeout in envoy/sidecar.yaml: an
// answer later than this would be Envoy's own 503 (no Status body), so every answer
// below must come from the server, well before it.
const relEnvoyAuthzTimeout = 6 * time.Second

// wantStatus checks that r is a Kubernetes Status JSON body with the given code and
// reason, from the server (not an empty Envoy 503), and that a 429 or 503 carries
// Retry-After.
func wantStatus(t *testing.T, what string, r relResponse, code int, reason string) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v", what, r.err)
	}
	if r.status != code {
		t.Fatalf("%s: HTTP %d, want %d; body %q", what, r.status, code, r.body)
	}
	var st struct {
		Kind, APIVersion, Status, Message, Reason string
		Code                                      int
	}
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		t.Fatalf("%s: body is not a Status: %v: %q", what, err, r.body)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Code != code || st.Reason != reason || st.Message == "" {
		t.Errorf("%s: Status %+v, want code %d reason %s", what, st, code, reason)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if (code == 429 || code == 503) && r.header.Get("Retry-After") == "" {
		t.Errorf("%s: HTTP %d without Retry-After", what, code)
	}
}

func wantOK(t *testing.T, what string, r relResponse) {
	t.Helper()
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("%s: HTTP %d %v, want 200; body %q", what, r.status, r.err, r.body)
	}
}

// TestFaultsSTS: with STS unreachable, slower than the deadline, throttling or
// answering 5xx, a token verified before keeps working (past the cache TTL, as long as
// the token lives), a new token gets a 503 or 429 Status with Retry-After from the
// server (never Envoy's own timeout), and the same new token works as soon as STS is
// back, without any restart: failures are never cached as verdicts.
func TestFaultsSTS(t *testing.T) {
	s := newRelStack(t, relOptions{serveArgs: []string{"--cache-ttl", "2s", "--cache-negative-ttl", "1s"}})
	cached := s.token(t, "alice")
	wantOK(t, "alice before the faults", s.get(t, cached))

	tests := map[string]struct {
		inject, clear func(t *testing.T)
		wantCode      int
		wantReason    string
		// wantAtLeast: the answer waits for the STS deadline (a slow STS).
		wantAtLeast time.Duration
	}{
		"unreachable (connection refused)": {
			inject: func(*testing.T) { s.stsProxy.Down() }, clear: func(t *testing.T) { s.stsProxy.Up(t) },
			wantCode: 503, wantReason: "ServiceUnavailable",
		},
		"connection closed without an answer": {
			inject:   func(t *testing.T) { s.sts.SetFault(t, stsfake.Fault{Kind: stsfake.FaultCloseConn}) },
			clear:    func(t *testing.T) { s.sts.SetFault(t, stsfake.Fault{}) },
			wantCode: 503, wantReason: "ServiceUnavailable",
		},
		"slower than the deadline": {
			inject:   func(t *testing.T) { s.sts.SetLatency(t, 3*relSTSTimeout) },
			clear:    func(t *testing.T) { s.sts.SetLatency(t, 0) },
			wantCode: 503, wantReason: "ServiceUnavailable", wantAtLeast: relSTSTimeout,
		},
		"throttling (400 Throttling)": {
			inject:   func(t *testing.T) { s.sts.SetFault(t, stsfake.Fault{Kind: stsfake.FaultThrottle}) },
			clear:    func(t *testing.T) { s.sts.SetFault(t, stsfake.Fault{}) },
			wantCode: 429, wantReason: "TooManyRequests",
		},
		"500 InternalFailure": {
			inject:   func(t *testing.T) { s.sts.SetFault(t, stsfake.Fault{Kind: stsfake.FaultServerError, Status: 500}) },
			clear:    func(t *testing.T) { s.sts.SetFault(t, stsfake.Fault{}) },
			wantCode: 503, wantReason: "ServiceUnavailable",
		},
		"503 ServiceUnavailable": {
			inject:   func(t *testing.T) { s.sts.SetFault(t, stsfake.Fault{Kind: stsfake.FaultServerError, Status: 503}) },
			clear:    func(t *testing.T) { s.sts.SetFault(t, stsfake.Fault{}) },
			wantCode: 503, wantReason: "ServiceUnavailable",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fresh := s.token(t, "bob")
			tc.inject(t)
			// Past the 2s cache TTL: the cached identity must be re-verified, fails
			// transiently, and is served stale.
			time.Sleep(2100 * time.Millisecond)
			wantOK(t, "token verified before the fault", s.get(t, cached))

			r := s.get(t, fresh)
			wantStatus(t, "new token during the fault", r, tc.wantCode, tc.wantReason)
			if r.elapsed >= relEnvoyAuthzTimeout || r.elapsed < tc.wantAtLeast {
				t.Errorf("new token answered after %s, want in [%s, %s)", r.elapsed, tc.wantAtLeast, relEnvoyAuthzTimeout)
			}

			tc.clear(t)
			wantOK(t, "the same new token after recovery", s.get(t, fresh))
		})
	}
}

// TestFaultsSTSKubectl: what a user sees. A persistent STS outage makes kubectl print
// the server's message (after client-go has retried on Retry-After); a blip of two
// failed STS calls is ridden out by those retries and kubectl succeeds.
func TestFaultsSTSKubectl(t *testing.T) {
	s := newRelStack(t, relOptions{})

	s.sts.SetFault(t, stsfake.Fault{Kind: stsfake.FaultServerError, Status: 503})
	out, errOut, err := s.kubectl(t, s.token(t, "alice"), "auth", "whoami")
	if err == nil {
		t.Fatalf("kubectl succeeded during an STS outage: %s", out)
	}
	const want = "Error from server (ServiceUnavailable): Service unavailable: AWS STS could not be reached to verify the token; retry later"
	if !strings.Contains(errOut, want) {
		t.Errorf("kubectl stderr %q, want it to contain %q", errOut, want)
	}

	s.sts.SetFault(t, stsfake.Fault{Kind: stsfake.FaultThrottle, Count: 2})
	out, errOut, err = s.kubectl(t, s.token(t, "alice"), "auth", "whoami")
	if err != nil || !strings.Contains(out, "dev:alice") {
		t.Fatalf("kubectl after a 2-call throttling blip: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if st := s.sts.Stats(t); st.Outcomes["fault:throttle"] != 2 {
		t.Errorf("sts-fake outcomes %v, want 2 throttled calls (the blip really happened)", st.Outcomes)
	}
}

// TestFaultsSTSUntilExpiry: a cached identity outlives an STS outage only as long as
// its token: once the token expires it is refused (401, decided locally), outage or not.
func TestFaultsSTSUntilExpiry(t *testing.T) {
	s := newRelStack(t, relOptions{serveArgs: []string{"--cache-ttl", "1s", "--cache-negative-ttl", "1s"}})
	// Signed 14m56s ago: valid for 4 more seconds.
	signedAt := time.Now().Add(-15*time.Minute + 4*time.Second)
	tok := s.tokenFor(t, "alice", relClusterID, signedAt)
	wantOK(t, "fresh", s.get(t, tok))
	s.stsProxy.Down()
	defer s.stsProxy.Up(t)
	time.Sleep(1500 * time.Millisecond)
	wantOK(t, "past the cache TTL, STS down, token valid", s.get(t, tok))
	time.Sleep(time.Until(signedAt.Add(15*time.Minute + time.Second)))
	wantStatus(t, "expired token, STS down", s.get(t, tok), 401, "Unauthorized")
}
