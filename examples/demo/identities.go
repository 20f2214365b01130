package main

import (
	"fmt"
	"os"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// principalsFile holds the demo's fake keys, relative to the repository.
const principalsFile = "examples/demo/sts-principals.yaml"

// caller is one demo caller: a kubeconfig context that signs tokens with
// one principal's static fake keys, and what `kubectl auth whoami` must
// show for it.
type caller struct {
	// Context is the kubeconfig context and user name.
	Context string
	// Rule says which aws-auth entry applies.
	Rule string
	// AccessKeyID picks the principal from the principals file.
	AccessKeyID string
	// WantAllowed is true when whoami must succeed.
	WantAllowed bool
	// WantUser and WantGroups must appear in whoami's output; for a denied
	// identity WantDenied must appear in kubectl's error.
	WantUser   string
	WantGroups []string
	WantDenied string

	// Principal is filled from the principals file.
	Principal stsfake.Principal
}

// scriptedIdentities are the three callers of the scripted part, in order.
// system:authenticated is added by the API server to every impersonated
// user, as for any authenticated one.
func scriptedIdentities() []caller {
	return []caller{
		{
			Context: "admin", Rule: "IAM user, mapped by mapUsers", AccessKeyID: "AKIADEMOADMIN0000001",
			WantAllowed: true, WantUser: "admin",
			WantGroups: []string{"system:masters", "system:authenticated"},
		},
		{
			Context: "developer", Rule: "assumed-role session, mapped by mapRoles", AccessKeyID: "ASIADEMODEVELOPER001",
			WantAllowed: true, WantUser: "developer:alice",
			WantGroups: []string{"developers", "viewers", "team-111122223333", "system:authenticated"},
		},
		{
			Context: "unmapped", Rule: "IAM user in no mapping", AccessKeyID: "AKIADEMOUNMAPPED0001",
			WantDenied: "(Forbidden)",
		},
	}
}

// loadIdentities resolves the scripted identities against the principals
// file, so that the keys the kubeconfig signs with are exactly the ones the
// STS stand-in knows.
func loadIdentities(path string) ([]caller, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	principals, err := stsfake.ParsePrincipals(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	byKey := map[string]stsfake.Principal{}
	for _, p := range principals {
		byKey[p.AccessKeyID] = p
	}
	ids := scriptedIdentities()
	for i := range ids {
		p, ok := byKey[ids[i].AccessKeyID]
		if !ok {
			return nil, fmt.Errorf("%s has no principal with access key %s (identity %s)", path, ids[i].AccessKeyID, ids[i].Context)
		}
		ids[i].Principal = p
	}
	return ids, nil
}
