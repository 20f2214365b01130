//go:build integration

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestDenials: every refusal reaches the user as kubectl's familiar error line
// carrying our Kubernetes Status message, and nothing reaches the API server (the
// real kube-apiserver: its audit log never sees the refused request, and the
// namespace it would have created does not exist).
func TestDenials(t *testing.T) {
	t.Parallel()
	c := startKubeChain(t, harness.ChainOptions{})
	k := c.Clusters[0].Kube
	admin := c.Identity(t, harness.IdentityAdmin)
	expired := signedAt(t, admin, time.Now().Add(-20*time.Minute), harness.DefaultClusterID)

	// What kubectl prints. `auth whoami` replaces any 403 with its own sentence;
	// commands that decode the Status body (create, get --raw) print our message.
	// (Discovery-driven commands such as `get namespaces` print "Error from server
	// (Forbidden): unknown" for any 403, from a real API server too: client-go's
	// discovery reads error bodies raw.)
	const (
		whoamiForbidden = "error: the selfsubjectreviews API is not enabled in the cluster or you do not have permission to call it\n"
		unmapped        = "Error from server (Forbidden): Forbidden: the AWS identity is not mapped to a Kubernetes user on this cluster\n"
		impersonation   = "Error from server (Forbidden): Forbidden: Impersonate-* headers are not accepted through this proxy (kubectl --as is not supported here)\n"
		badToken        = "error: You must be logged in to the server (Unauthorized: the token is malformed or expired; get a new one)\n"
	)
	whoami := []string{"auth", "whoami"}
	// deniedNS is replaced by a name of the subtest's own (the API server is shared).
	const deniedNS = "e2e-denied"
	create := []string{"create", "namespace", deniedNS}
	type run struct {
		args       []string
		wantStderr string
	}
	tests := map[string]struct {
		user  string // kubeconfig user, or
		token string // a fixed bearer token
		runs  []run
		// wantSTS says whether the refusal needs STS: only a verified identity can be
		// found unmapped.
		wantSTS bool
	}{
		"unmapped identity is 403": {
			user:    harness.KubeUser(harness.IdentityUnmapped, harness.ProducerToken, "default"),
			runs:    []run{{whoami, whoamiForbidden}, {create, unmapped}},
			wantSTS: true,
		},
		"unmapped identity with aws eks get-token is 403": {
			user:    harness.KubeUser(harness.IdentityUnmapped, harness.ProducerAWSCLI, "default"),
			runs:    []run{{whoami, whoamiForbidden}, {create, unmapped}},
			wantSTS: true,
		},
		"invalid token is 401": {
			token: "k8s-aws-v1.bm90IGEgcHJlc2lnbmVkIFVSTA",
			runs:  []run{{whoami, badToken}, {create, badToken}},
		},
		"expired token is 401": {
			token: expired,
			runs:  []run{{whoami, badToken}, {create, badToken}},
		},
		"kubectl --as is 403": {
			user: harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default"),
			runs: []run{
				{append([]string{"--as", "someone"}, whoami...), whoamiForbidden},
				{append([]string{"--as", "someone"}, create...), impersonation},
			},
		},
		"kubectl --as-group is 403": {
			user: harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default"),
			runs: []run{{append([]string{"--as", "admin", "--as-group", "system:masters"}, create...), impersonation}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns := fmt.Sprintf("%s-%d", deniedNS, time.Now().UnixNano()%1e9)
			before := c.STS.Stats(t).Total

			for _, r := range tc.runs {
				r.args = slices.Clone(r.args)
				if i := slices.Index(r.args, deniedNS); i >= 0 {
					r.args[i] = ns
				}
				var res harness.KubectlResult
				if tc.token != "" {
					res = c.KubectlWithToken(t, "default", tc.token, r.args...)
				} else {
					res = c.KubectlOn(t, "default", tc.user, r.args...)
				}
				if res.ExitCode != 1 || res.Stderr != r.wantStderr || res.Stdout != "" {
					t.Errorf("kubectl %v: exit %d\nstdout: %q\nstderr: %q\nwant exit 1, no stdout and stderr %q", r.args, res.ExitCode, res.Stdout, res.Stderr, r.wantStderr)
				}
			}
			reachedNothing(t, k, ns)
			// A refusal that needs no STS (a malformed or expired token, an
			// impersonation header) costs no STS call. An unmapped identity costs its
			// verification: one call per distinct token (two runs in the same second
			// present the same token, which the cache answers).
			calls := c.STS.Stats(t).Total - before
			if tc.wantSTS && (calls < 1 || calls > int64(len(tc.runs))) {
				t.Errorf("STS received %d calls, want 1 to %d", calls, len(tc.runs))
			}
			if !tc.wantSTS && calls != 0 {
				t.Errorf("STS received %d calls, want none", calls)
			}
		})
	}
}

// reachedNothing fails the test if the API server ever saw a request naming
// namespace ns from the proxy. The fixture's admin then asks for ns (NotFound):
// once that request is in the audit log, every earlier one would be too.
func reachedNothing(t *testing.T, k *harness.KubeAPIServer, ns string) {
	t.Helper()
	if res := k.Kubectl(t, "get", "namespace", ns); res.ExitCode == 0 || !strings.Contains(res.Stderr, "NotFound") {
		t.Errorf("namespace %s: exit %d, %s; want NotFound", ns, res.ExitCode, res.Stderr)
	}
	k.WaitAuditEvents(t, "/api/v1/namespaces/"+ns, func(e harness.AuditEvent) bool {
		return e.Verb == "get" && e.User.Username != harness.ProxyUsername
	})
	for _, e := range k.AuditEvents(t) {
		names := strings.Contains(e.RequestURI, ns) || (e.ObjectRef != nil && (e.ObjectRef.Name == ns || e.ObjectRef.Namespace == ns))
		if e.User.Username == harness.ProxyUsername && names {
			t.Errorf("the API server received a refused request: %s %s as %+v", e.Verb, e.RequestURI, e.ImpersonatedUser)
		}
	}
}

// signedAt presigns a token for identity the way the token command does, with a
// signing clock of at.
func signedAt(t *testing.T, id harness.Identity, at time.Time, clusterID string) string {
	t.Helper()
	g, err := token.NewGenerator(token.GeneratorOptions{
		Config: aws.Config{
			Region:      "us-east-1",
			Credentials: credentials.NewStaticCredentialsProvider(id.AccessKeyID, id.SecretAccessKey, id.SessionToken),
		},
		Now: func() time.Time { return at },
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := g.Generate(context.Background(), clusterID)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}
