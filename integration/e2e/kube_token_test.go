//go:build integration

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// credentialID is how the API server records a service-account token in the audit
// log (user.extra authentication.kubernetes.io/credential-id): "JTI=" + the JWT's
// jti claim.
func credentialID(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("the proxy token is not a JWT (%d parts)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Sub != harness.ProxyUsername || claims.JTI == "" {
		t.Fatalf("proxy token claims sub=%q jti=%q, want the proxy's service account with a jti", claims.Sub, claims.JTI)
	}
	return "JTI=" + claims.JTI
}

// TestKubeProxyTokenRotation: the proxy's credential is a real TokenRequest token
// (a JWT for its service account, expiring), rotated the way the kubelet rotates a
// projected one. After a rotation serve sends the new token, with no restart: the
// audit log names the token that authenticated each request by its jti.
func TestKubeProxyTokenRotation(t *testing.T) {
	t.Parallel()
	c := startKubeChain(t, harness.ChainOptions{})
	k := c.Clusters[0].Kube
	user := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default")
	pid := c.Serve.Pid()

	sentWith := func(t *testing.T, since time.Time, want string) (bool, string) {
		res := c.Kubectl(t, user, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
		if res.ExitCode != 0 || res.Stdout != "admin" {
			return false, "whoami: " + res.Stderr
		}
		var seen []string
		events := k.WaitAuditEvents(t, whoamiPath, func(e harness.AuditEvent) bool {
			return e.RequestReceivedTimestamp.After(since) && e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "admin"
		})
		for _, e := range events {
			id := strings.Join(e.User.Extra["authentication.kubernetes.io/credential-id"], ",")
			if id == want {
				return true, ""
			}
			seen = append(seen, id)
		}
		return false, "credential ids " + strings.Join(seen, " ")
	}

	if until := k.ProxyTokenExpiry(); time.Until(until) <= 0 || time.Until(until) > 10*time.Minute {
		t.Errorf("proxy token expires at %s, want within the next 10 minutes (an expiring token)", until)
	}
	before := credentialID(t, c.ProxyToken(t))
	since := time.Now().Add(-time.Second)
	eventually(t, 15*time.Second, "a request authenticated by the current proxy token", func() (bool, string) {
		// Another test may rotate the shared token meanwhile: compare with the
		// token in the file now.
		return sentWith(t, since, credentialID(t, c.ProxyToken(t)))
	})

	fresh := credentialID(t, k.RotateProxyToken(t))
	if fresh == before {
		t.Fatalf("the rotation produced the same token id %s", fresh)
	}
	since = time.Now()
	eventually(t, 15*time.Second, "a request authenticated by the rotated proxy token", func() (bool, string) {
		return sentWith(t, since, credentialID(t, c.ProxyToken(t)))
	})
	if got := c.Serve.Pid(); got != pid {
		t.Errorf("serve restarted (pid %d → %d)", pid, got)
	}
}
