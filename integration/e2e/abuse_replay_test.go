//go:build integration

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestAbuseCrossClusterReplay: a token signed for cluster prod-a is refused by cluster
// prod-b's route of the same proxy (envoy/multi-cluster.yaml, one server for both) and
// by a separate server for prod-b, whether that token is already cached as verified for
// prod-a (warm) or has never been seen (cold). It stays valid for prod-a throughout: a
// refusal for B must not be remembered against A either. The refusal is STS's: the
// server asks with its own x-k8s-aws-id, which the token did not sign.
func TestAbuseCrossClusterReplay(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yaml")
	mappingB := filepath.Join(dir, "aws-auth-b.yaml")
	// prod-b maps alice too: the refusal must come from verification, not mapping.
	for path, content := range map[string]string{
		mappingB: relMapping,
		cfg:      fmt.Sprintf("clusters:\n- {name: prod-a, clusterID: prod-a, mappingFile: %q}\n- {name: prod-b, clusterID: prod-b, mappingFile: %q}\n", mappingB, mappingB),
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := newRelStack(t, relOptions{
		config:            "../../envoy/multi-cluster.yaml",
		apiServerClusters: []string{"apiserver-a", "apiserver-b"},
		caFiles:           []string{"/etc/kube-iam-authz/upstream/prod-a-ca.crt", "/etc/kube-iam-authz/upstream/prod-b-ca.crt"},
		serveArgs:         []string{"--config", cfg},
	})
	// A second server that only knows prod-b, beside the first.
	serveB := harness.StartServe(t, harness.ServeOptions{
		ClusterID: "prod-b", MappingFile: mappingB, STS: s.sts, UpstreamTokenFile: s.proxyTokenPath,
		ExtraArgs: []string{"--sts-endpoint", "https://" + s.stsProxy.Addr},
	})
	s.canary.Watch("serve-b stderr", serveB.Stderr)
	checkB := newCheckClient(t, serveB.GRPCAddr)

	viaA := func(tok string) relResponse { return s.doAt(t, "kube-api-a", http.MethodGet, "/version", tok, nil) }
	viaB := func(tok string) relResponse { return s.doAt(t, "kube-api-b", http.MethodGet, "/version", tok, nil) }

	t.Run("warm: verified for A first", func(t *testing.T) {
		tok := s.tokenFor(t, "alice", "prod-a", s.nextSignedAt())
		wantOK(t, "A's route", viaA(tok))
		wantOK(t, "A's route again (cached)", viaA(tok))
		wantStatus(t, "B's route", viaB(tok), 401, "Unauthorized")
		wantStatus(t, "B's route again", viaB(tok), 401, "Unauthorized")
		if code := checkB.status(t, tok); code != 401 {
			t.Errorf("B's own server: HTTP %d, want 401", code)
		}
		wantOK(t, "A's route after the replays", viaA(tok))
	})
	t.Run("cold: replayed to B first", func(t *testing.T) {
		tok := s.tokenFor(t, "bob", "prod-a", s.nextSignedAt())
		wantStatus(t, "B's route", viaB(tok), 401, "Unauthorized")
		if code := checkB.status(t, tok); code != 401 {
			t.Errorf("B's own server: HTTP %d, want 401", code)
		}
		wantOK(t, "A's route after the refusal for B", viaA(tok))
		wantStatus(t, "B's route after A verified it", viaB(tok), 401, "Unauthorized")
	})
	t.Run("control: a token for B works on B only", func(t *testing.T) {
		tok := s.tokenFor(t, "alice", "prod-b", s.nextSignedAt())
		wantOK(t, "B's route", viaB(tok))
		if code := checkB.status(t, tok); code != 200 {
			t.Errorf("B's own server: HTTP %d, want 200", code)
		}
		wantStatus(t, "A's route", viaA(tok), 401, "Unauthorized")
	})
	// STS saw only the clusters' own ids, never one taken from a token.
	for _, id := range s.sts.Stats(t).ClusterIDs {
		if id != "prod-a" && id != "prod-b" {
			t.Errorf("STS was asked with x-k8s-aws-id %q", id)
		}
	}
}
