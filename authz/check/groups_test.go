package check

import (
	"context"
	"fmt"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// TestEnvoyContract pins the server's copies of the Envoy contract to the
// reviewed configs' constants (envoy/contract.go).
func TestEnvoyContract(t *testing.T) {
	if MaxGroups != envoy.GroupSlots {
		t.Errorf("MaxGroups = %d, Envoy routes read %d group slots", MaxGroups, envoy.GroupSlots)
	}
	for i := 0; i < MaxGroups; i++ {
		if groupSlotKeys[i] != envoy.GroupSlotKey(i) {
			t.Errorf("slot %d key %q, Envoy reads %q", i, groupSlotKeys[i], envoy.GroupSlotKey(i))
		}
	}
	if MetadataDecisionID != envoy.MetadataDecisionID {
		t.Errorf("decision id key %q, Envoy logs %q", MetadataDecisionID, envoy.MetadataDecisionID)
	}
}

// numberedGroups returns n distinct group names, g00, g01, ….
func numberedGroups(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("g%02d", i)
	}
	return out
}

// TestGroupSlots: up to MaxGroups groups fill that many slots in order
// (wantOK compares the whole metadata); one more is refused, never
// truncated.
func TestGroupSlots(t *testing.T) {
	if MaxGroups < 64 {
		t.Fatalf("MaxGroups = %d; issue #16 promises at least 64", MaxGroups)
	}
	tests := map[string]struct {
		groups    []string
		wantLabel string
	}{
		"no groups":                  {groups: nil},
		"one group":                  {groups: numberedGroups(1)},
		"17, over the old limit":     {groups: numberedGroups(17)},
		"exactly MaxGroups":          {groups: numberedGroups(MaxGroups)},
		"MaxGroups+1 are refused":    {groups: numberedGroups(MaxGroups + 1), wantLabel: "too_many_groups"},
		"1000 are refused":           {groups: numberedGroups(1000), wantLabel: "too_many_groups"},
		"comma is refused":           {groups: []string{"ok", "a,b"}, wantLabel: "invalid_mapping"},
		"over the limit and a comma": {groups: append(numberedGroups(MaxGroups), "a,b"), wantLabel: "too_many_groups"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{})
			f.mapper.set(bob.CanonicalARN, kubeuser.User{Username: "bob", Groups: tc.groups})
			got, err := f.server.Check(context.Background(), request(bearer(tokBob), nil))
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantLabel != "" {
				assertResponse(t, got, wantDenied(t, tc.wantLabel))
				return
			}
			assertResponse(t, got, wantOK(withAuth(bobHeaders, proxyAuth), tc.groups))
		})
	}
}
