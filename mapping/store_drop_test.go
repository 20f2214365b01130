package mapping

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

// twoUsers maps Alice and Bob; edited drops Bob and, in the same edit,
// breaks Alice's entry (a comma in a group), the scenario of issue 13:
// under all-or-nothing the edit is refused and Bob keeps access.
const (
	twoUsers = "mapUsers: |\n  - userarn: arn:aws:iam::111122223333:user/Alice\n    username: alice\n    groups: [devs]\n  - userarn: arn:aws:iam::111122223333:user/Bob\n    username: bob\n"
	edited   = "mapUsers: |\n  - userarn: arn:aws:iam::111122223333:user/Alice\n    username: alice\n    groups: [\"devs,ops\"]\n  - userarn: arn:aws:iam::111122223333:user/Carol\n    username: carol\n"
)

func userID(name string) identity.Identity {
	return identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:user/" + name, AccountID: "111122223333", PrincipalID: "AIDA" + strings.ToUpper(name)}
}

func mapName(t *testing.T, s *Store, name string) (string, error) {
	t.Helper()
	m, err := NewMapper(MapperOptions{Snapshots: s})
	if err != nil {
		t.Fatal(err)
	}
	u, err := m.Map(context.Background(), userID(name))
	return u.Username, err
}

func TestStoreDropsInvalidEntriesByDefault(t *testing.T) {
	f := newStoreFixture(t, twoUsers, nil)
	mustLoad(t, f)
	writeFile(t, f.path, edited)
	if err := f.store.Load(); err != nil {
		t.Fatalf("Load(edited) = %v, want the broken entry dropped and the rest loaded", err)
	}
	tests := map[string]struct {
		user     string
		wantName string
		wantErr  error
	}{
		"removed user loses access":          {user: "Bob", wantErr: kubeuser.ErrUnmapped},
		"added user gains access":            {user: "Carol", wantName: "carol"},
		"broken entry grants nothing":        {user: "Alice", wantErr: kubeuser.ErrUnmapped},
		"unrelated principal stays unmapped": {user: "Dave", wantErr: kubeuser.ErrUnmapped},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := mapName(t, f.store, tc.user)
			if !errors.Is(err, tc.wantErr) || got != tc.wantName {
				t.Errorf("Map(%s) = %q, %v; want %q, %v", tc.user, got, err, tc.wantName, tc.wantErr)
			}
		})
	}
	if _, err := mapName(t, f.store, "Alice"); RuleOf(err) != RuleNameChars {
		t.Errorf("RuleOf(Map(Alice)) = %q, want %q (err %v)", RuleOf(err), RuleNameChars, err)
	}
	if got := testutil.ToFloat64(f.metrics.dropped.WithLabelValues("test")); got != 1 {
		t.Errorf("kube_iam_authz_mapping_dropped_entries = %v, want 1", got)
	}
	if got := f.reloads(ResultSuccess); got != 2 {
		t.Errorf("successful reloads = %v, want 2", got)
	}
	logged := f.logs.FilterMessage("mapping entry dropped; it grants nothing").All()
	if len(logged) != 1 {
		t.Fatalf("got %d dropped-entry log lines, want 1", len(logged))
	}
	fields := logged[0].ContextMap()
	if want := f.path + ":4"; fields["position"] != want {
		t.Errorf("position = %v, want %s", fields["position"], want)
	}
	if fields["at"] != "mapUsers[0].groups[0]" || !strings.Contains(fields["problem"].(string), "contains a comma") {
		t.Errorf("log fields = %v", fields)
	}
	// Fixing the entry clears the gauge.
	writeFile(t, f.path, twoUsers)
	mustLoad(t, f)
	if got := testutil.ToFloat64(f.metrics.dropped.WithLabelValues("test")); got != 0 {
		t.Errorf("dropped entries after the fix = %v, want 0", got)
	}
}

func TestStoreStrictKeepsAllOrNothing(t *testing.T) {
	f := newStoreFixture(t, twoUsers, func(o *StoreOptions) { o.Strict = true })
	mustLoad(t, f)
	writeFile(t, f.path, edited)
	if err := f.store.Load(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("strict Load(edited) = %v, want ErrInvalid", err)
	}
	if got, err := mapName(t, f.store, "Bob"); err != nil || got != "bob" {
		t.Errorf("strict: Map(Bob) = %q, %v; want the last good mapping (bob) kept", got, err)
	}
	if got := f.reloads(ResultInvalid); got != 1 {
		t.Errorf("invalid reloads = %v, want 1", got)
	}
}
