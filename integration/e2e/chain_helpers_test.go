//go:build integration

package e2e

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// whoamiPath is the request `kubectl auth whoami` sends (authentication.k8s.io/v1).
const whoamiPath = "/apis/authentication.k8s.io/v1/selfsubjectreviews"

// proxyUser is who the proxy's own token authenticates as on the API server
// stand-in (its default --proxy-user, a service account as in a real deployment).
const proxyUser = "system:serviceaccount:kube-iam-authz:proxy"

// userInfo is SelfSubjectReview.status.userInfo as kubectl prints it.
type userInfo struct {
	Username string              `json:"username"`
	UID      string              `json:"uid"`
	Groups   []string            `json:"groups"`
	Extra    map[string][]string `json:"extra"`
}

// whoami runs `kubectl auth whoami -o json` as user against cluster and returns the
// user the API server saw, failing the test unless kubectl succeeded.
func whoami(t *testing.T, c *harness.Chain, cluster, user string) userInfo {
	t.Helper()
	res := c.KubectlOn(t, cluster, user, "auth", "whoami", "-o", "json")
	if res.ExitCode != 0 {
		t.Fatalf("kubectl auth whoami as %s on %s: exit %d\nstderr: %s", user, cluster, res.ExitCode, res.Stderr)
	}
	var review struct {
		Kind   string `json:"kind"`
		Status struct {
			UserInfo userInfo `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &review); err != nil || review.Kind != "SelfSubjectReview" {
		t.Fatalf("kubectl auth whoami printed no SelfSubjectReview (%v):\n%s", err, res.Stdout)
	}
	return review.Status.UserInfo
}

// identityLines returns the lines of a received request that say who it is: the
// Authorization line and every Impersonate-* line, "Name: value", in the order the
// recorder keeps (sorted by name, repeated lines in arrival order).
func identityLines(r harness.Received) []string {
	var out []string
	for _, h := range r.Headers {
		if h.Name == "Authorization" || strings.HasPrefix(h.Name, "Impersonate-") {
			out = append(out, h.String())
		}
	}
	return out
}

// onlyRequest returns the one request the API server received for path, failing the
// test when there are none or several.
func onlyRequest(t *testing.T, recs []harness.Received, method, path string) harness.Received {
	t.Helper()
	var found []harness.Received
	for _, r := range recs {
		if r.Method == method && r.Path == path {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("API server received %d %s %s requests, want 1; all received: %s", len(found), method, path, describe(recs))
	}
	return found[0]
}

func describe(recs []harness.Received) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString("\n  " + r.Method + " " + r.Path + " → " + strconv.Itoa(r.Status))
	}
	if b.Len() == 0 {
		return "(nothing)"
	}
	return b.String()
}

// assertNothingOfTheClient fails the test if any header the API server received
// carries one of the client's tokens, their fingerprint (the recorder's redacted
// form of an Authorization value), or any k8s-aws-v1 token at all.
func assertNothingOfTheClient(t *testing.T, r harness.Received, clientTokens []string) {
	t.Helper()
	if len(clientTokens) == 0 {
		t.Fatal("no client token was captured: the exec plugin did not run through the capture wrapper")
	}
	for _, h := range r.Headers {
		if strings.Contains(h.Value, token.Prefix) || strings.EqualFold(h.Name, token.ClusterIDHeader) {
			t.Errorf("API server received a client credential line %q", h.Name)
		}
		for _, tok := range clientTokens {
			if strings.Contains(h.Value, tok) || strings.Contains(h.Value, token.Fingerprint(tok)) {
				t.Errorf("API server received the client's token (or its fingerprint) in %q", h.Name)
			}
		}
	}
}

// recordedNothing fails the test if the API server received any request.
func recordedNothing(t *testing.T, api *harness.APIServer) {
	t.Helper()
	if recs := api.Recorded(t); len(recs) != 0 {
		t.Errorf("API server received %d requests, want none: %s", len(recs), describe(recs))
	}
}

// eventually polls cond every 100ms for up to timeout and fails the test with what
// it last saw.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last seen: %s", what, timeout, last)
}

// wantUserInfo is who the default mapping (harness.DefaultMapping) makes of
// identity, as the API server reports it (SelfSubjectReview, audit impersonatedUser).
func wantUserInfo(t *testing.T, c *harness.Chain, identity string) userInfo {
	t.Helper()
	id := c.Identity(t, identity)
	switch identity {
	case harness.IdentityAdmin:
		const arn = "arn:aws:iam::111122223333:user/admin"
		return userInfo{
			Username: "admin",
			UID:      "aws-iam-authenticator:111122223333:" + id.UserID,
			// Three mapped groups arrive as three groups, in mapping order; the API
			// server adds system:authenticated.
			Groups: withAuthenticated("system:masters", "ops", "auditors"),
			Extra: map[string][]string{
				"accesskeyid":  {id.AccessKeyID},
				"arn":          {arn},
				"canonicalarn": {arn},
				"principalid":  {id.UserID},
			},
		}
	case harness.IdentityDeveloper:
		// STS's UserId of a role session is ROLEID:SESSION; the principal id is ROLEID.
		principal, _, _ := strings.Cut(id.UserID, ":")
		return userInfo{
			Username: "developer:alice",
			UID:      "aws-iam-authenticator:111122223333:" + principal,
			Groups:   withAuthenticated("developers", "viewers", "team-111122223333"),
			Extra: map[string][]string{
				"accesskeyid":  {id.AccessKeyID},
				"arn":          {"arn:aws:sts::111122223333:assumed-role/developer/alice"},
				"canonicalarn": {"arn:aws:iam::111122223333:role/developer"},
				"principalid":  {principal},
				"sessionname":  {"alice"},
			},
		}
	case harness.IdentityAccountOnly:
		const arn = "arn:aws:iam::444455556666:user/carol"
		return userInfo{
			Username: arn,
			UID:      "aws-iam-authenticator:444455556666:" + id.UserID,
			Groups:   withAuthenticated(),
			Extra: map[string][]string{
				"accesskeyid":  {id.AccessKeyID},
				"arn":          {arn},
				"canonicalarn": {arn},
				"principalid":  {id.UserID},
			},
		}
	}
	t.Fatalf("no expected user for identity %q", identity)
	return userInfo{}
}

// withAuthenticated appends system:authenticated, which the API server adds to every
// impersonated user's groups.
func withAuthenticated(groups ...string) []string {
	return append(slices.Clone(groups), "system:authenticated")
}
