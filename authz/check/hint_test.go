package check

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
)

// TestDecisionLogClusterIDHint: when STS refuses a token's signature, the
// decision line adds the likeliest cause (a token made for another cluster
// id) with the id this server expects for the route's cluster; other
// failures get no hint, and the hint carries nothing of the token.
func TestDecisionLogClusterIDHint(t *testing.T) {
	tests := map[string]struct {
		err      error
		ext      map[string]string
		wantHint string
	}{
		"signature refused": {
			err:      &sts.Error{Class: sts.ErrUnauthenticated, Reason: "rejected", Status: 403, Code: "SignatureDoesNotMatch"},
			wantHint: `or the token was made for another cluster id (this server expects "dev-cluster")`,
		},
		"signature refused, wrapped, on a context-extension cluster": {
			err:      fmt.Errorf("verify: %w", &sts.Error{Class: sts.ErrUnauthenticated, Reason: "rejected", Status: 403, Code: "SignatureDoesNotMatch"}),
			ext:      map[string]string{"cluster_id": "prod-cluster"},
			wantHint: `or the token was made for another cluster id (this server expects "prod-cluster")`,
		},
		"unknown key": {
			err: &sts.Error{Class: sts.ErrUnauthenticated, Reason: "rejected", Status: 403, Code: "InvalidClientTokenId"},
		},
		"STS down": {
			err: &sts.Error{Class: sts.ErrUnavailable, Reason: "status", Status: 503},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{
				verifierErr: tc.err,
				extra:       []Cluster{{Name: "prod", ID: "prod-cluster", Mapper: &fakeMapper{}, Ready: func() bool { return true }}},
			})
			if _, err := f.server.Check(context.Background(), request(bearer(tokAlice), tc.ext)); err != nil {
				t.Fatal(err)
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(f.logs.String())), &line); err != nil {
				t.Fatalf("one JSON decision line: %v\n%s", err, f.logs.String())
			}
			got, _ := line["hint"].(string)
			if got != tc.wantHint {
				t.Errorf("hint = %q, want %q", got, tc.wantHint)
			}
			if strings.Contains(f.logs.String(), tokAlice) {
				t.Error("the log holds the token")
			}
		})
	}
}
