//go:build integration

package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"regexp"
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

	// The server is the release the Makefile pins (KUBE_VERSION), stamped so that
	// kubectl version names it, seen through the chain.
	t.Run("kubectl version", func(t *testing.T) {
		mk, err := os.ReadFile(harness.RepoFile(t, "Makefile"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^KUBE_VERSION\s*:=\s*(\S+)`).FindSubmatch(mk)
		if m == nil {
			t.Fatal("Makefile: no KUBE_VERSION")
		}
		res := c.Kubectl(t, harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default"), "version", "-o", "json")
		var v struct {
			ServerVersion struct {
				GitVersion string `json:"gitVersion"`
				Major      string `json:"major"`
				Minor      string `json:"minor"`
			} `json:"serverVersion"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &v); err != nil {
			t.Fatalf("kubectl version: exit %d, %v: %s %s", res.ExitCode, err, res.Stdout, res.Stderr)
		}
		want := string(m[1])
		parts := strings.Split(strings.TrimPrefix(want, "v"), ".")
		if v.ServerVersion.GitVersion != want || v.ServerVersion.Major != parts[0] || v.ServerVersion.Minor != parts[1] {
			t.Errorf("server version %+v, want %s", v.ServerVersion, want)
		}
	})

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
					// This chain's request: its proxy token authenticated it (other tests
					// share the API server and the identities).
					return e.Verb == "create" && e.RequestReceivedTimestamp.After(since) && c.KubeProxyToken.Authenticated(e) &&
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
