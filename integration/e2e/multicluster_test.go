//go:build integration

package e2e

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestMultiCluster: one Envoy (envoy/multi-cluster.yaml) and one authz server in
// front of two API servers. Each listener's route names its cluster, whose id the
// server verifies tokens against and whose mapping applies; a token signed for
// cluster A is refused on B's route, even the very token that A just accepted.
func TestMultiCluster(t *testing.T) {
	t.Parallel()
	clusters := harness.MultiClusters()
	clusters[0].Mapping = adminMapping("team-a-admins", "ops", "auditors")
	clusters[1].Mapping = adminMapping("team-b-viewers", "ops", "auditors")
	c := harness.StartChain(t, harness.ChainOptions{EnvoyConfig: "envoy/multi-cluster.yaml", Clusters: clusters})
	a, b := c.Cluster(t, "prod-a"), c.Cluster(t, "prod-b")
	reset := func() { a.APIServer.ResetRecorded(t); b.APIServer.ResetRecorded(t) }

	for _, tc := range []struct {
		cluster    *harness.RunningCluster
		other      *harness.RunningCluster
		wantGroups []string
	}{
		{cluster: a, other: b, wantGroups: withAuthenticated("team-a-admins", "ops", "auditors")},
		{cluster: b, other: a, wantGroups: withAuthenticated("team-b-viewers", "ops", "auditors")},
	} {
		t.Run("token for "+tc.cluster.Name+" on "+tc.cluster.Name, func(t *testing.T) {
			reset()
			user := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, tc.cluster.Name)
			got := whoami(t, c, tc.cluster.Name, user)
			if got.Username != "admin" || !reflect.DeepEqual(got.Groups, tc.wantGroups) {
				t.Errorf("whoami = %s %q, want admin %q (this cluster's mapping)", got.Username, got.Groups, tc.wantGroups)
			}
			rec := onlyRequest(t, tc.cluster.APIServer.Recorded(t), http.MethodPost, whoamiPath)
			if got := rec.Lines("Impersonate-Group"); !reflect.DeepEqual(got, tc.wantGroups[:3]) {
				t.Errorf("Impersonate-Group lines = %q, want %q", got, tc.wantGroups[:3])
			}
			recordedNothing(t, tc.other.APIServer)
		})
	}

	const want401 = "error: You must be logged in to the server (Unauthorized: AWS STS did not accept the token (expired or revoked credentials, or a token for another cluster))\n"
	t.Run("token for prod-a on prod-b", func(t *testing.T) {
		reset()
		before := c.STS.Stats(t)
		res := c.KubectlOn(t, "prod-b", harness.KubeUser(harness.IdentityAdmin, harness.ProducerAWSCLI, "prod-a"), "auth", "whoami")
		if res.ExitCode != 1 || res.Stderr != want401 {
			t.Errorf("exit %d, stderr %q; want exit 1 and %q", res.ExitCode, res.Stderr, want401)
		}
		recordedNothing(t, a.APIServer)
		recordedNothing(t, b.APIServer)
		// The server asked STS with prod-b's id, which the token's signature does not
		// cover.
		after := c.STS.Stats(t)
		if got := after.Outcomes["SignatureDoesNotMatch"] - before.Outcomes["SignatureDoesNotMatch"]; got < 1 {
			t.Errorf("STS outcomes %v → %v: want a SignatureDoesNotMatch", before.Outcomes, after.Outcomes)
		}
		if ids := after.ClusterIDs; len(ids) == 0 || ids[len(ids)-1] != "prod-b" {
			t.Errorf("STS saw cluster ids %q, want prod-b last", ids)
		}
	})

	t.Run("token accepted on prod-a replayed on prod-b", func(t *testing.T) {
		user := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "prod-a")
		reset()
		whoami(t, c, "prod-a", user)
		issued := c.IssuedTokens(t, user)
		accepted := issued[len(issued)-1]
		reset()
		// The verification cache holds this very token as valid for prod-a: it must
		// not answer for prod-b.
		res := c.KubectlWithToken(t, "prod-b", accepted, "auth", "whoami")
		if res.ExitCode != 1 || res.Stderr != want401 {
			t.Errorf("exit %d, stderr %q; want exit 1 and %q", res.ExitCode, res.Stderr, want401)
		}
		recordedNothing(t, a.APIServer)
		recordedNothing(t, b.APIServer)
	})
}

// adminMapping maps the default admin user with groups and nothing else.
func adminMapping(groups ...string) []byte {
	var b strings.Builder
	// The bare data map, one of the shapes the mapping file may take.
	b.WriteString("mapUsers: |\n  - userarn: arn:aws:iam::111122223333:user/admin\n    username: admin\n    groups:\n")
	for _, g := range groups {
		b.WriteString("      - " + g + "\n")
	}
	return []byte(b.String())
}
