package check

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// TestDecisionLogFingerprint: the decision line's token field is the
// token's fingerprint whether the verifier supplied it with the result
// (what verify.Verifier does, so cache hits reuse it) or not, and on
// failures.
func TestDecisionLogFingerprint(t *testing.T) {
	tests := map[string]struct {
		supplied    string
		verifierErr error
		want        string
	}{
		"verifier supplies the fingerprint": {supplied: "0123456789ab", want: "0123456789ab"},
		"verifier supplies none":            {want: token.Fingerprint(tokAlice)},
		"verification fails":                {verifierErr: errors.New("sts down"), want: token.Fingerprint(tokAlice)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{verifierErr: tc.verifierErr})
			f.verifier.results[tokAlice] = verify.Result{Identity: alice, Expiry: time.Unix(2e9, 0), STSRegion: "global", Fingerprint: tc.supplied}
			if _, err := f.server.Check(context.Background(), request(bearer(tokAlice), nil)); err != nil {
				t.Fatal(err)
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(f.logs.String())), &line); err != nil {
				t.Fatalf("log line: %v\n%s", err, f.logs)
			}
			if line["token"] != tc.want {
				t.Errorf("log token = %v, want %s", line["token"], tc.want)
			}
		})
	}
}
