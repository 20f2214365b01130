//go:build integration

package e2e

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestWhoamiUpstreamLines is TestWhoami's promise seen on the wire: behind the
// API-server stand-in (a real k8s.io/apiserver handler chain that records the raw
// header lines it received), the mapped user arrives with every group as its own
// Impersonate-Group line and the AWS extras, authenticated as the proxy and with
// nothing of the client's credential.
func TestWhoamiUpstreamLines(t *testing.T) {
	t.Parallel()
	// Both impersonation filters of k8s.io/apiserver: classic (what EKS runs) and
	// constrained (on by default since Kubernetes 1.36).
	for _, mode := range []string{"classic", "constrained"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testWhoamiUpstreamLines(t, harness.StartChain(t, harness.ChainOptions{ImpersonationMode: mode}))
		})
	}
}

func testWhoamiUpstreamLines(t *testing.T, c *harness.Chain) {
	admin := c.Identity(t, harness.IdentityAdmin)
	const arn = "arn:aws:iam::111122223333:user/admin"
	uid := "aws-iam-authenticator:111122223333:" + admin.UserID

	tests := map[string]struct {
		producer string
	}{
		"kube-iam-authz token": {producer: harness.ProducerToken},
		// An EKS kubeconfig's exec args, with kube-iam-authz as the command.
		"kube-iam-authz token --cluster-name": {producer: harness.ProducerTokenClusterName},
		"aws eks get-token":                   {producer: harness.ProducerAWSCLI},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c.ResetRecorded(t)
			user := harness.KubeUser(harness.IdentityAdmin, tc.producer, "default")

			got := whoami(t, c, "default", user)

			wantUser := userInfo{
				Username: "admin",
				UID:      uid,
				// Three mapped groups arrive as three groups, in mapping order; the API
				// server adds system:authenticated.
				Groups: withAuthenticated("system:masters", "ops", "auditors"),
				Extra: map[string][]string{
					"accesskeyid":  {admin.AccessKeyID},
					"arn":          {arn},
					"canonicalarn": {arn},
					"principalid":  {admin.UserID},
				},
			}
			if !reflect.DeepEqual(got, wantUser) {
				t.Errorf("kubectl auth whoami:\n got %+v\nwant %+v", got, wantUser)
			}

			rec := onlyRequest(t, c.Recorded(t), http.MethodPost, whoamiPath)
			// The exact identity lines on the wire: the proxy's own bearer token, one
			// Impersonate-User, one Impersonate-Group LINE per group (never
			// comma-joined: the API server does not split them), the uid and extras.
			wantLines := []string{
				"Authorization: " + harness.RedactedBearer(c.ProxyToken(t)),
				"Impersonate-Extra-Accesskeyid: " + admin.AccessKeyID,
				"Impersonate-Extra-Arn: " + arn,
				"Impersonate-Extra-Canonicalarn: " + arn,
				"Impersonate-Extra-Principalid: " + admin.UserID,
				"Impersonate-Group: system:masters",
				"Impersonate-Group: ops",
				"Impersonate-Group: auditors",
				"Impersonate-Uid: " + uid,
				"Impersonate-User: admin",
			}
			if got := identityLines(rec); !reflect.DeepEqual(got, wantLines) {
				t.Errorf("identity header lines received upstream:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(wantLines, "\n     "))
			}
			if rec.Authenticated == nil || rec.Authenticated.Username != proxyUser {
				t.Errorf("API server authenticated %+v, want the proxy %s", rec.Authenticated, proxyUser)
			}
			if rec.Status != http.StatusCreated {
				t.Errorf("API server answered %d, want 201", rec.Status)
			}
			assertNothingOfTheClient(t, rec, c.IssuedTokens(t, user))
		})
	}
}

// TestWhoamiGroupLimit: the reviewed route has check.MaxGroups (64) group slots. An
// identity mapped to 64 groups gets all 64, in mapping order: as 64 Impersonate-Group
// lines on the wire (behind the API-server stand-in) and as 64 groups in the real
// kube-apiserver's `kubectl auth whoami` and audit log, also with 1024-byte names (64
// KiB of header lines over HTTP/2). One mapped to 65 is refused
// (never truncated: a missing group could be a deny-list group) and nothing goes
// upstream.
func TestWhoamiGroupLimit(t *testing.T) {
	t.Parallel()
	var atLimit, overLimit []string
	for i := 1; i <= check.MaxGroups+1; i++ {
		g := fmt.Sprintf("group-%02d", i)
		if i <= check.MaxGroups {
			atLimit = append(atLimit, g)
		}
		overLimit = append(overLimit, g)
	}
	if len(atLimit) < 64 {
		t.Fatalf("check.MaxGroups = %d; issue #16 promises at least 64", len(atLimit))
	}
	// The longest names the mapping admits (1024 bytes): 64 KiB of Impersonate-Group
	// lines, over HTTP/2 from Envoy to the API server.
	longest := make([]string, check.MaxGroups)
	for i := range longest {
		longest[i] = fmt.Sprintf("long-%02d-", i) + strings.Repeat("x", 1024-len("long-00-"))
	}
	mapping := "mapRoles: |\n  - rolearn: arn:aws:iam::111122223333:role/developer\n    username: developer:{{SessionName}}\n    groups: [" + strings.Join(overLimit, ", ") + "]\n" +
		"mapUsers: |\n  - userarn: arn:aws:iam::111122223333:user/admin\n    username: admin\n    groups: [" + strings.Join(atLimit, ", ") + "]\n" +
		"  - userarn: arn:aws:iam::" + harness.AccountMapped + ":user/carol\n    username: carol\n    groups: [" + strings.Join(longest, ", ") + "]\n"
	carol := harness.KubeUser(harness.IdentityAccountOnly, harness.ProducerToken, "default")
	clusters := func() []harness.ChainCluster {
		cs := harness.SidecarClusters()
		cs[0].Mapping = []byte(mapping)
		return cs
	}
	admin := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default")
	developer := harness.KubeUser(harness.IdentityDeveloper, harness.ProducerToken, "default")
	const refused = "Error from server (Forbidden): Forbidden: the AWS identity maps to more groups than this proxy can pass on\n"

	t.Run("upstream lines", func(t *testing.T) {
		t.Parallel()
		c := harness.StartChain(t, harness.ChainOptions{Clusters: clusters()})
		// The over-limit entry loads (the others still map) and serve says so.
		t.Run("serve warns at load", func(t *testing.T) {
			want := fmt.Sprintf("maps to %d groups, more than the %d a request can carry", len(overLimit), len(atLimit))
			eventually(t, 5*time.Second, "serve logs the over-limit entry", func() (bool, string) {
				logs := c.Serve.Stderr() + c.Serve.Stdout()
				return strings.Contains(logs, "mapping warning") && strings.Contains(logs, want) && strings.Contains(logs, "mapRoles[0]"), "not yet"
			})
		})
		t.Run(fmt.Sprintf("%d groups", len(atLimit)), func(t *testing.T) {
			c.ResetRecorded(t)
			got := whoami(t, c, "default", admin)
			if want := withAuthenticated(atLimit...); !reflect.DeepEqual(got.Groups, want) {
				t.Errorf("whoami groups = %q, want %q", got.Groups, want)
			}
			rec := onlyRequest(t, c.Recorded(t), http.MethodPost, whoamiPath)
			if got := rec.Lines("Impersonate-Group"); !reflect.DeepEqual(got, atLimit) {
				t.Errorf("Impersonate-Group lines = %q, want %q", got, atLimit)
			}
		})
		t.Run(fmt.Sprintf("%d groups of 1024 bytes", len(longest)), func(t *testing.T) {
			c.ResetRecorded(t)
			got := whoami(t, c, "default", carol)
			if want := withAuthenticated(longest...); !reflect.DeepEqual(got.Groups, want) {
				t.Errorf("whoami: %d groups, want %d (%d bytes each)", len(got.Groups), len(want), len(longest[0]))
			}
			rec := onlyRequest(t, c.Recorded(t), http.MethodPost, whoamiPath)
			if got := rec.Lines("Impersonate-Group"); !reflect.DeepEqual(got, longest) {
				t.Errorf("%d Impersonate-Group lines, want the %d long ones", len(got), len(longest))
			}
		})
		t.Run(fmt.Sprintf("%d groups", len(overLimit)), func(t *testing.T) {
			c.ResetRecorded(t)
			res := c.Kubectl(t, developer, "create", "namespace", "e2e")
			if res.ExitCode != 1 || res.Stderr != refused {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", res.ExitCode, res.Stderr, refused)
			}
			recordedNothing(t, c.Clusters[0].APIServer)
		})
	})

	t.Run("kube-apiserver", func(t *testing.T) {
		t.Parallel()
		c := startKubeChain(t, harness.ChainOptions{Clusters: clusters()})
		k := c.Clusters[0].Kube
		since := time.Now().Add(-time.Second)
		// The refused identity first: the audit log is written in order, so once the
		// later request's event is there, an event of this one would be too.
		res := c.Kubectl(t, developer, "get", "--raw", "/version")
		if res.ExitCode != 1 || !strings.Contains(res.Stderr, "more groups than this proxy can pass on") {
			t.Errorf("%d groups: exit %d, stderr %q; want exit 1 and the refusal", len(overLimit), res.ExitCode, res.Stderr)
		}

		got := whoami(t, c, "default", admin)
		if want := withAuthenticated(atLimit...); !reflect.DeepEqual(got.Groups, want) {
			t.Errorf("%d groups: kubectl auth whoami groups = %q, want %q", len(atLimit), got.Groups, want)
		}
		events := k.WaitAuditEvents(t, whoamiPath, func(e harness.AuditEvent) bool {
			return e.Verb == "create" && e.RequestReceivedTimestamp.After(since) && c.KubeProxyToken.Authenticated(e) &&
				e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "admin"
		})
		for _, e := range events {
			if want := withAuthenticated(atLimit...); !reflect.DeepEqual(e.ImpersonatedUser.Groups, want) {
				t.Errorf("audit impersonatedUser.groups = %q, want %q", e.ImpersonatedUser.Groups, want)
			}
			if e.Code() != http.StatusCreated {
				t.Errorf("audit: response %d, want 201", e.Code())
			}
		}
		if got := whoami(t, c, "default", carol); !reflect.DeepEqual(got.Groups, withAuthenticated(longest...)) {
			t.Errorf("%d groups of 1024 bytes: kubectl auth whoami lists %d groups, want %d", len(longest), len(got.Groups), len(longest)+1)
		}
		events = k.WaitAuditEvents(t, whoamiPath, func(e harness.AuditEvent) bool {
			return e.Verb == "create" && e.RequestReceivedTimestamp.After(since) && c.KubeProxyToken.Authenticated(e) &&
				e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "carol"
		})
		for _, e := range events {
			if !reflect.DeepEqual(e.ImpersonatedUser.Groups, withAuthenticated(longest...)) {
				t.Errorf("audit impersonatedUser of carol: %d groups, want %d long ones", len(e.ImpersonatedUser.Groups), len(longest)+1)
			}
		}
		for _, e := range k.AuditEvents(t) {
			if e.RequestReceivedTimestamp.After(since) && c.KubeProxyToken.Authenticated(e) &&
				e.ImpersonatedUser != nil && strings.HasPrefix(e.ImpersonatedUser.Username, "developer:") {
				t.Errorf("audit: the refused identity reached the API server: %s %s as %q", e.Verb, e.RequestURI, e.ImpersonatedUser.Username)
			}
		}
	})
}
