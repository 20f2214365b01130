//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// decisionLine is one "decision" log line of serve.
type decisionLine struct {
	Token, Result, Reason, Error, Username string
	Code                                   int
}

// decisions returns serve's decision log lines so far.
func (s *relStack) decisions(t *testing.T) []decisionLine {
	t.Helper()
	var out []decisionLine
	for _, line := range strings.Split(s.currentServe().Stderr(), "\n") {
		var d struct {
			Msg string `json:"msg"`
			decisionLine
		}
		if json.Unmarshal([]byte(line), &d) == nil && d.Msg == "decision" {
			out = append(out, d.decisionLine)
		}
	}
	return out
}

// TestFaultsSTSGarbage: STS (or something posing as it) answers with garbage after the
// token was sent. Every case is a 503 with Retry-After, never a 401 and never a crash:
// the token may well be good (STS did not refuse it), the answer cannot be trusted, and
// a retry may reach a healthy STS. A 401 would tell kubectl to throw its credential
// away, and a verdict would be cached; neither is true of a broken upstream. The body
// is read with a 64 KiB cap, so a huge answer costs no more than that.
func TestFaultsSTSGarbage(t *testing.T) {
	s := newRelStack(t, relOptions{})
	tests := map[string]struct {
		fault   stsfake.Fault
		who     string
		wantLog string // in the decision's error: why it was refused
	}{
		"HTML login page":                           {fault: stsfake.Fault{Kind: stsfake.FaultHTML}, who: "alice", wantLog: "content-type"},
		"truncated JSON":                            {fault: stsfake.Fault{Kind: stsfake.FaultTruncated}, who: "alice", wantLog: "decode"},
		"huge body (1 MiB)":                         {fault: stsfake.Fault{Kind: stsfake.FaultHugeBody}, who: "alice", wantLog: "answer exceeds the 65536 byte cap"},
		"huge body (32 MiB)":                        {fault: stsfake.Fault{Kind: stsfake.FaultHugeBody, Size: 32 << 20}, who: "bob", wantLog: "answer exceeds the 65536 byte cap"},
		"JSON labelled text/html":                   {fault: stsfake.Fault{Kind: stsfake.FaultWrongContent}, who: "bob", wantLog: "content-type"},
		"ARN that does not parse":                   {fault: stsfake.Fault{Kind: stsfake.FaultBadARN}, who: "alice", wantLog: "inconsistent identity"},
		"Account that does not match the ARN":       {fault: stsfake.Fault{Kind: stsfake.FaultAccountMismatch}, who: "bob", wantLog: "does not match ARN account"},
		"UserId session that does not match (role)": {fault: stsfake.Fault{Kind: stsfake.FaultUserIDMismatch}, who: "alice", wantLog: "does not match the ARN's session"},
		"UserId with a session part (IAM user)":     {fault: stsfake.Fault{Kind: stsfake.FaultUserIDMismatch}, who: "bob", wantLog: "has a session part"},
		"redirect elsewhere (not followed)":         {fault: stsfake.Fault{Kind: stsfake.FaultRedirect, Location: "https://127.0.0.1:9/steal"}, who: "alice", wantLog: "redirect"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tok := s.token(t, tc.who)
			s.sts.SetFault(t, tc.fault)
			r := s.get(t, tok)
			s.sts.SetFault(t, stsfake.Fault{})
			wantStatus(t, name, r, 503, "ServiceUnavailable")
			if exited, err := s.currentServe().Exited(); exited {
				t.Fatalf("serve exited: %v", err)
			}
			// serve buffers its log lines for up to a second.
			waitUntil(t, 15*time.Second, fmt.Sprintf("an sts_unavailable decision logged with %q", tc.wantLog), func() bool {
				for _, d := range s.decisions(t) {
					if strings.Contains(d.Error, tc.wantLog) && d.Reason == "sts_unavailable" {
						return true
					}
				}
				return false
			})
			// Not cached as a verdict: the same token works once STS is sane.
			wantOK(t, "the same token after the fault", s.get(t, tok))
		})
	}
}
