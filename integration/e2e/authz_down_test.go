//go:build integration

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestAuthzDown: with the authz server gone Envoy fails closed (503, nothing
// upstream, kubectl says the service is unavailable); once the server is back the
// same Envoy process serves again, without a restart. The API server is the real
// kube-apiserver.
func TestAuthzDown(t *testing.T) {
	t.Parallel()
	c := startKubeChain(t, harness.ChainOptions{})
	user := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default")
	ns := fmt.Sprintf("e2e-authz-down-%d", time.Now().UnixNano()%1e9)

	if got := whoami(t, c, "default", user); got.Username != "admin" {
		t.Fatalf("before the outage: whoami = %q, want admin", got.Username)
	}
	errorsBefore := envoyStat(t, c.Envoy, "http.kube_api.ext_authz.error")

	c.Serve.Stop()
	// Envoy's own 503 (status_on_error) has no Status body: kubectl prints its
	// generic sentence for 503 with the request it made.
	for _, tc := range []struct {
		args       []string
		wantStderr string
	}{
		{[]string{"auth", "whoami"}, "Error from server (ServiceUnavailable): the server is currently unable to handle the request (post selfsubjectreviews.authentication.k8s.io)\n"},
		{[]string{"create", "namespace", ns}, "Error from server (ServiceUnavailable): the server is currently unable to handle the request (post namespaces)\n"},
	} {
		res := c.Kubectl(t, user, tc.args...)
		if res.ExitCode != 1 || res.Stderr != tc.wantStderr {
			t.Errorf("authz down, kubectl %v: exit %d, stderr %q; want exit 1 and %q", tc.args, res.ExitCode, res.Stderr, tc.wantStderr)
		}
	}
	reachedNothing(t, c.Clusters[0].Kube, ns)
	if got := envoyStat(t, c.Envoy, "http.kube_api.ext_authz.error"); got < errorsBefore+2 {
		t.Errorf("ext_authz.error went from %d to %d, want +2: the 503s were not Envoy failing closed on the authz call", errorsBefore, got)
	}

	c.Serve.Restart(t)
	// Envoy's gRPC client reconnects on its own; the first request after the restart
	// may still race the new connection, so allow a few tries, each a real kubectl.
	eventually(t, 15*time.Second, "whoami after the authz server came back", func() (bool, string) {
		res := c.Kubectl(t, user, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
		return res.ExitCode == 0 && res.Stdout == "admin", res.Stdout + res.Stderr
	})
	if exited, err := c.Envoy.Exited(); exited {
		t.Fatalf("Envoy exited (%v): recovery must not need an Envoy restart", err)
	}
}

func envoyStat(t *testing.T, e *harness.Envoy, name string) uint64 {
	t.Helper()
	v, err := e.Stat(name)
	if err != nil {
		t.Fatalf("envoy stat: %v", err)
	}
	return v
}
