//go:build integration

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

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

	credentialID := func(tok string) string {
		t.Helper()
		id, err := harness.CredentialID(tok)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// sentWith runs whoami and reports whether the token named want authenticated
	// this chain's request.
	sentWith := func(since time.Time, want string) (bool, string) {
		res := c.Kubectl(t, user, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
		if res.ExitCode != 0 || res.Stdout != "admin" {
			return false, "whoami: " + res.Stderr
		}
		var seen []string
		events := k.WaitAuditEvents(t, whoamiPath, func(e harness.AuditEvent) bool {
			return e.RequestReceivedTimestamp.After(since) && c.KubeProxyToken.Authenticated(e)
		})
		for _, e := range events {
			id := strings.Join(e.User.Extra[harness.CredentialIDExtra], ",")
			if id == want {
				return true, ""
			}
			seen = append(seen, id)
		}
		return false, "credential ids " + strings.Join(seen, " ")
	}

	if left := time.Until(c.KubeProxyToken.Expiry()); left <= 0 || left > 10*time.Minute {
		t.Errorf("proxy token expires in %s, want within 10 minutes (an expiring token)", left)
	}
	before := credentialID(c.ProxyToken(t))
	since := time.Now().Add(-time.Second)
	eventually(t, 15*time.Second, "a request authenticated by the proxy token", func() (bool, string) {
		return sentWith(since, before)
	})

	fresh := credentialID(c.RotateProxyToken(t))
	if fresh == before {
		t.Fatalf("the rotation produced the same token id %s", fresh)
	}
	since = time.Now()
	eventually(t, 15*time.Second, "a request authenticated by the rotated proxy token", func() (bool, string) {
		return sentWith(since, fresh)
	})
	if got := c.Serve.Pid(); got != pid {
		t.Errorf("serve restarted (pid %d → %d)", pid, got)
	}
}
