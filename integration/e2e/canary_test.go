//go:build integration

package e2e

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// reencode turns a (modified) presigned URL back into a token.
func reencode(u string) string {
	return "k8s-aws-v1." + base64.RawURLEncoding.EncodeToString([]byte(u))
}

// canaryVariants derives invalid tokens from a valid one, each carrying the valid
// token's signature and session token somewhere a careless error message would quote.
func canaryVariants(t *testing.T, tok string) map[string]string {
	t.Helper()
	presigned, err := stsfake.DecodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(presigned)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sig, session := q.Get("X-Amz-Signature"), q.Get("X-Amz-Security-Token")
	out := map[string]string{
		"duplicate signature (case variant)":       reencode(presigned + "&x-amz-signature=" + sig),
		"duplicate session token":                  reencode(presigned + "&X-Amz-Security-Token=" + url.QueryEscape(session)),
		"credential case variant (CVE-2022-2385)":  reencode(presigned + "&x-amz-credential=" + url.QueryEscape(q.Get("X-Amz-Credential"))),
		"unknown parameter carrying the signature": reencode(presigned + "&X-Amz-Foo=" + sig),
		"foreign host":    reencode(strings.Replace(presigned, "sts.amazonaws.com", "sts.amazonaws.com.evil.example", 1)),
		"http scheme":     reencode(strings.Replace(presigned, "https://", "http://", 1)),
		"path":            reencode(strings.Replace(presigned, ".com/?", ".com/x?", 1)),
		"padded base64":   "k8s-aws-v1." + base64.URLEncoding.EncodeToString([]byte(presigned+"x")),
		"standard base64": "k8s-aws-v1." + base64.StdEncoding.EncodeToString([]byte(presigned+"??>>")),
		"oversized":       tok + strings.Repeat("A", 5000),
		"truncated":       tok[:len(tok)-7],
	}
	return out
}

// TestCanaryNeverLeaks sends recognisable canary tokens, valid and invalid, through the
// whole chain along every path (allowed, unmapped, refused by the parser, refused by
// STS, STS down or answering garbage, throttled, header abuse, kubectl), with serve at
// debug level. Then every log (serve, Envoy, sts-fake, apiserver-fake), serve's
// /metrics, Envoy's /stats, kubectl's output and every response body is scanned for
// each token, its base64 payload, its presigned URL (raw and escaped), its signature
// and its session token (newRelStack's cleanup does the scan). A negative control
// proves the scan finds a planted canary.
func TestCanaryNeverLeaks(t *testing.T) {
	s := newRelStack(t, relOptions{serveArgs: []string{"--log-level", "debug"}})
	valid := s.token(t, "alice")
	unmapped := s.token(t, "mallory")
	forged := s.forgedToken(t, "bob")
	otherCluster := s.tokenFor(t, "alice", "some-other-cluster", s.nextSignedAt())
	expired := s.tokenFor(t, "alice", relClusterID, time.Now().Add(-20*time.Minute))

	send := func(what string, tok string, h http.Header) relResponse {
		r := s.do(t, http.MethodGet, "/version", tok, h)
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r
	}
	wantOK(t, "valid canary", send("valid", valid, nil))
	send("unmapped", unmapped, nil)
	send("forged", forged, nil)
	send("other cluster", otherCluster, nil)
	send("expired", expired, nil)
	for name, v := range canaryVariants(t, valid) {
		if err := s.canary.AddToken(v); err != nil {
			t.Fatal(err)
		}
		if r := send(name, v, nil); r.status != 401 && r.status != 431 {
			t.Errorf("%s: HTTP %d, want 401", name, r.status)
		}
	}
	send("comma-joined", "", http.Header{"Authorization": {"Bearer " + valid + ",Bearer " + forged}})
	send("two lines", "", http.Header{"Authorization": {"Bearer " + valid, "Bearer " + forged}})
	send("impersonation", valid, http.Header{"Impersonate-User": {"admin"}})
	send("token in a custom header", "", http.Header{"X-Token": {valid}})

	for _, f := range []stsfake.Fault{
		{Kind: stsfake.FaultServerError}, {Kind: stsfake.FaultThrottle}, {Kind: stsfake.FaultHTML},
		{Kind: stsfake.FaultBadARN}, {Kind: stsfake.FaultRedirect, Location: "https://127.0.0.1:9/"},
	} {
		s.sts.SetFault(t, f)
		send(string(f.Kind), s.token(t, "bob"), nil)
	}
	s.sts.SetFault(t, stsfake.Fault{})
	s.stsProxy.Down()
	send("sts down", s.token(t, "bob"), nil)
	s.stsProxy.Up(t)

	if out, errOut, err := s.kubectl(t, valid, "auth", "whoami"); err != nil {
		t.Errorf("kubectl whoami with the valid canary: %v: %s %s", err, out, errOut)
	}
	_, _, _ = s.kubectl(t, forged, "get", "--raw", "/version")
	_, _, _ = s.kubectl(t, valid, "get", "--raw", "/version", "-v=6")

	// The scan covers serve's decisions for these tokens: their fingerprints are in
	// the log, the tokens are not.
	for _, tok := range []string{valid, unmapped, forged} {
		// serve buffers its log lines for up to a second.
		waitUntil(t, 15*time.Second, "serve's decision for canary "+token.Fingerprint(tok)+" (else the scan would prove nothing)", func() bool {
			return strings.Contains(s.serve.Stderr(), token.Fingerprint(tok))
		})
	}
	if body, code, err := envoyAdmin(s, "/stats"); err == nil && code == http.StatusOK {
		s.canary.Record("envoy /stats", body)
	}

	// Negative control: the same scanner finds a canary planted in a log line.
	planted := `{"level":"debug","msg":"verifying","url":"` + mustDecode(t, valid) + `"}`
	if leaks := s.canary.Scan("planted log line", planted); len(leaks) == 0 {
		t.Fatal("negative control: the scanner did not find a planted presigned URL")
	}
	if leaks := s.canary.Scan("planted body", "x "+valid+" y"); len(leaks) == 0 {
		t.Fatal("negative control: the scanner did not find a planted token")
	}
	if n := s.canary.Sources(); n < 10 {
		t.Errorf("only %d sources registered for the scan", n)
	}
}

func mustDecode(t *testing.T, tok string) string {
	t.Helper()
	u, err := stsfake.DecodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func envoyAdmin(s *relStack, path string) (string, int, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(s.envoy.AdminURL + path)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return string(b), resp.StatusCode, err
}
