//go:build integration

package e2e

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

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

// TestWhoamiGroupLimit: the reviewed route has 16 group slots. An identity mapped to
// 16 groups gets all 16 as 16 lines, in order; one mapped to 17 is refused (never
// truncated: a missing group could be a deny-list group) and nothing goes upstream.
func TestWhoamiGroupLimit(t *testing.T) {
	t.Parallel()
	var sixteen, seventeen []string
	for i := 1; i <= 17; i++ {
		g := fmt.Sprintf("group-%02d", i)
		if i <= 16 {
			sixteen = append(sixteen, g)
		}
		seventeen = append(seventeen, g)
	}
	mapping := "mapRoles: |\n  - rolearn: arn:aws:iam::111122223333:role/developer\n    username: developer:{{SessionName}}\n    groups: [" + strings.Join(seventeen, ", ") + "]\n" +
		"mapUsers: |\n  - userarn: arn:aws:iam::111122223333:user/admin\n    username: admin\n    groups: [" + strings.Join(sixteen, ", ") + "]\n"
	clusters := harness.SidecarClusters()
	clusters[0].Mapping = []byte(mapping)
	c := harness.StartChain(t, harness.ChainOptions{Clusters: clusters})

	t.Run("16 groups", func(t *testing.T) {
		c.ResetRecorded(t)
		got := whoami(t, c, "default", harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default"))
		if want := withAuthenticated(sixteen...); !reflect.DeepEqual(got.Groups, want) {
			t.Errorf("whoami groups = %q, want %q", got.Groups, want)
		}
		rec := onlyRequest(t, c.Recorded(t), http.MethodPost, whoamiPath)
		if got := rec.Lines("Impersonate-Group"); !reflect.DeepEqual(got, sixteen) {
			t.Errorf("Impersonate-Group lines = %q, want %q", got, sixteen)
		}
	})
	t.Run("17 groups", func(t *testing.T) {
		c.ResetRecorded(t)
		res := c.Kubectl(t, harness.KubeUser(harness.IdentityDeveloper, harness.ProducerToken, "default"), "create", "namespace", "e2e")
		const want = "Error from server (Forbidden): Forbidden: the AWS identity maps to more groups than this proxy can pass on\n"
		if res.ExitCode != 1 || res.Stderr != want {
			t.Errorf("exit %d, stderr %q; want exit 1 and %q", res.ExitCode, res.Stderr, want)
		}
		recordedNothing(t, c.Clusters[0].APIServer)
	})
}
