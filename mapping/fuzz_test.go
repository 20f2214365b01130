package mapping

import (
	"errors"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, must either
// return a snapshot or a *ParseError with at least one described problem,
// and must be deterministic.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"reference-example.yaml", "kubectl-get.yaml", "kubectl-get.json", "dynamicfile.json", "match.yaml"} {
		f.Add(readTestdata(f, name))
	}
	for _, s := range []string{
		"", "{}", "[]", "data: {}", "mapRoles: |\n  - rolearn: x\n", "mapAccounts: [012345678901]",
		"a: &a [*a]", "mapRoles:\n  - &e {rolearn: arn:aws:iam::111122223333:role/R, username: u, groups: [\"{{SessionName}}\"]}\n  - *e\n",
		"mapRoles:\n  - sso: {permissionSetName: A, accountID: \"111122223333\"}\n    username: \"{{AccountID}}{{\"\n",
	} {
		f.Add([]byte(s))
	}
	ids := []identity.Identity{
		{CanonicalARN: "arn:aws:iam::111122223333:role/R", AccountID: "111122223333", SessionName: "s"},
		{CanonicalARN: "arn:aws:iam::111122223333:role/AWSReservedSSO_A_0123456789abcdef", AccountID: "111122223333"},
		{CanonicalARN: "arn:aws:iam::555555555555:user/admin", AccountID: "555555555555"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := Parse(data)
		if err != nil {
			var perr *ParseError
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("Parse error %v is not a *ParseError with problems", err)
			}
			for _, p := range perr.Problems {
				if p.Message == "" {
					t.Fatalf("problem without a message: %+v", p)
				}
			}
			return
		}
		again, err := Parse(data)
		if err != nil || again.Hash() != snap.Hash() || again.Counts() != snap.Counts() {
			t.Fatalf("Parse is not deterministic: %v", err)
		}
		c := snap.Counts()
		live := func(index map[string]*entry) (n int) {
			for _, e := range index {
				if e.drop == nil {
					n++
				}
			}
			return n
		}
		if c.Roles+c.Users != live(snap.roles)+live(snap.users) || c.SSO != live(snap.sso) || c.Accounts != len(snap.accounts) {
			t.Fatalf("Counts %+v disagree with the indexes", c)
		}
		if (c.Dropped > 0) != (len(snap.Dropped()) > 0) {
			t.Fatalf("Counts.Dropped = %d but %d dropped problems", c.Dropped, len(snap.Dropped()))
		}
		strict, err := ParseWith(data, ParseOptions{Strict: true})
		if (err == nil) != (c.Dropped == 0 && len(snap.Dropped()) == 0) {
			t.Fatalf("strict Parse error = %v with %d dropped entries", err, c.Dropped)
		}
		if err == nil && strict.Counts() != c {
			t.Fatalf("strict Counts %+v, default %+v", strict.Counts(), c)
		}
		for _, id := range ids {
			if _, err := snap.Lookup(id); err != nil && !errors.Is(err, kubeuser.ErrUnmapped) {
				t.Fatalf("Lookup error %v does not wrap kubeuser.ErrUnmapped", err)
			}
		}
	})
}
