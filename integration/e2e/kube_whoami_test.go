//go:build integration

package e2e

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestWhoami is the product's promise end to end, against the real kube-apiserver
// v1.37 with RBAC on: real kubectl with a real exec plugin (ours, and awscli's `aws
// eks get-token`), through the real Envoy running the reviewed sidecar config, to a
// real kube-apiserver that authenticates the proxy by its TokenRequest token,
// authorizes the impersonation with the examples' RBAC and acts as the mapped user.
// Seen two ways: what `kubectl auth whoami` prints, and the audit log (user is the
// proxy's service account, impersonatedUser the mapped user with its groups, uid and
// extras). TestWhoamiUpstreamLines shows the same on the wire.
func TestWhoami(t *testing.T) {
	t.Parallel()
	c := startKubeChain(t, harness.ChainOptions{})
	k := c.Clusters[0].Kube

	for _, identity := range []string{harness.IdentityAdmin, harness.IdentityDeveloper, harness.IdentityAccountOnly} {
		for _, producer := range []string{harness.ProducerToken, harness.ProducerAWSCLI} {
			user := harness.KubeUser(identity, producer, "default")
			t.Run(user, func(t *testing.T) {
				want := wantUserInfo(t, c, identity)
				since := time.Now().Add(-time.Second)

				if got := whoami(t, c, "default", user); !reflect.DeepEqual(got, want) {
					t.Errorf("kubectl auth whoami:\n got %+v\nwant %+v", got, want)
				}

				events := k.WaitAuditEvents(t, whoamiPath, func(e harness.AuditEvent) bool {
					return e.Verb == "create" && e.RequestReceivedTimestamp.After(since) &&
						e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == want.Username
				})
				for _, e := range events {
					if e.User.Username != harness.ProxyUsername || !slices.Contains(e.User.Groups, "system:serviceaccounts:"+harness.ProxyNamespace) {
						t.Errorf("audit: authenticated as %q %q, want the proxy's service account %s", e.User.Username, e.User.Groups, harness.ProxyUsername)
					}
					got := userInfo{Username: e.ImpersonatedUser.Username, UID: e.ImpersonatedUser.UID, Groups: e.ImpersonatedUser.Groups, Extra: map[string][]string{}}
					for k, v := range e.ImpersonatedUser.Extra {
						got.Extra[k] = v
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("audit impersonatedUser:\n got %+v\nwant %+v", got, want)
					}
					if e.Code() != http.StatusCreated {
						t.Errorf("audit: response %d, want 201", e.Code())
					}
					if !slices.Contains(e.SourceIPs, "127.0.0.1") || !strings.HasPrefix(e.UserAgent, "kubectl") {
						t.Errorf("audit: source %q user agent %q, want kubectl's request via Envoy on loopback", e.SourceIPs, e.UserAgent)
					}
				}
			})
		}
	}
}
