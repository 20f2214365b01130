//go:build integration

package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestUpstreamTokenRotation: the proxy's own credential is a projected token the
// kubelet rotates. After a rotation the API server receives the new token, without
// a restart of anything; the old one is never sent again.
func TestUpstreamTokenRotation(t *testing.T) {
	t.Parallel()
	c := harness.StartChain(t, harness.ChainOptions{})
	user := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default")
	api := c.Clusters[0].APIServer
	pid := c.Serve.Pid()

	old := c.ProxyToken(t)
	api.ResetRecorded(t)
	whoami(t, c, "default", user)
	if got := onlyRequest(t, api.Recorded(t), http.MethodPost, whoamiPath).Lines("Authorization"); len(got) != 1 || got[0] != harness.RedactedBearer(old) {
		t.Fatalf("before rotation: Authorization lines %q, want [%s]", got, harness.RedactedBearer(old))
	}

	fresh := c.RotateProxyToken(t)
	// The API server accepts only the new token from now on, as with a revoked
	// one; serve picks the new file up from its directory watch.
	eventually(t, 15*time.Second, "a request carrying the new proxy token", func() (bool, string) {
		api.ResetRecorded(t)
		res := c.Kubectl(t, user, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
		return res.ExitCode == 0 && res.Stdout == "admin", res.Stderr
	})
	for i := 0; i < 3; i++ {
		api.ResetRecorded(t)
		whoami(t, c, "default", user)
		rec := onlyRequest(t, api.Recorded(t), http.MethodPost, whoamiPath)
		if got := rec.Lines("Authorization"); len(got) != 1 || got[0] != harness.RedactedBearer(fresh) {
			t.Errorf("after rotation: Authorization lines %q, want [%s]", got, harness.RedactedBearer(fresh))
		}
		if rec.Authenticated == nil || rec.Authenticated.Username != proxyUser {
			t.Errorf("after rotation: API server authenticated %+v, want %s", rec.Authenticated, proxyUser)
		}
	}
	if got := c.Serve.Pid(); got != pid {
		t.Errorf("serve restarted (pid %d → %d)", pid, got)
	}
}
