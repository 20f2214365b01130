package mapping

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

// fakeDNS is a hand-written DNSResolver.
type fakeDNS struct {
	names map[string]string
	err   error
	calls []string
}

func (f *fakeDNS) PrivateDNSName(_ context.Context, instanceID string) (string, error) {
	f.calls = append(f.calls, instanceID)
	if f.err != nil {
		return "", f.err
	}
	name, ok := f.names[instanceID]
	if !ok {
		return "", fmt.Errorf("%w: instance %s not found", kubeuser.ErrForbidden, instanceID)
	}
	return name, nil
}

// sts builds an identity the way the verifier does, from a GetCallerIdentity
// answer.
func sts(t *testing.T, arn, userID, accessKeyID string) identity.Identity {
	t.Helper()
	account := strings.Split(arn, ":")[4]
	id, err := identity.FromSTS(arn, account, userID, accessKeyID)
	if err != nil {
		t.Fatalf("FromSTS(%q): %v", arn, err)
	}
	return id
}

func session(t *testing.T, account, role, sess string) identity.Identity {
	t.Helper()
	return sts(t, "arn:aws:sts::"+account+":assumed-role/"+role+"/"+sess, "AROAEXAMPLE:"+sess, "ASIAEXAMPLEKEY")
}

func loadTestMapping(t testing.TB) *Snapshot {
	t.Helper()
	snap, err := Parse(readTestdata(t, "match.yaml"))
	if err != nil {
		t.Fatalf("Parse(match.yaml): %v", err)
	}
	return snap
}

func TestMap(t *testing.T) {
	snap := loadTestMapping(t)
	const acct = "111122223333"
	nodeDNS := map[string]string{"i-0c6f21bf1f24f9708": "ip-172-31-27-14.ec2.internal", "i-0123abcd": "ip-10-0-0-1.ec2.internal", "i-00000000": "bad,name"}
	tests := map[string]struct {
		id        identity.Identity
		dns       *fakeDNS // nil: no resolver configured
		wantUser  kubeuser.User
		wantMatch string // Match.String(), "" for none
		wantErr   error
		wantInErr string
		wantCalls int
	}{
		// Precedence and exact matching.
		"exact role":                                           {id: session(t, acct, "KubeAdmin", "s"), wantUser: kubeuser.User{Username: "admin", Groups: []string{"system:masters"}}, wantMatch: "mapRoles[1] (line 5)"},
		"role ARN case-insensitive":                            {id: session(t, acct, "kubeadmin", "s"), wantUser: kubeuser.User{Username: "admin", Groups: []string{"system:masters"}}, wantMatch: "mapRoles[1] (line 5)"},
		"no prefix match on roles":                             {id: session(t, acct, "KubeAdminX", "s"), wantErr: kubeuser.ErrUnmapped},
		"no suffix match on roles":                             {id: session(t, acct, "notKubeAdmin", "s"), wantErr: kubeuser.ErrUnmapped},
		"configured role path never matches (dropped, as AIA)": {id: session(t, acct, "Pathed", "s"), wantErr: kubeuser.ErrUnmapped},
		"role in another account":                              {id: session(t, "999988887777", "KubeAdmin", "s"), wantErr: kubeuser.ErrUnmapped},
		"user":                                                 {id: sts(t, "arn:aws:iam::111122223333:user/Shanice", "AIDASHANICE", "AKIAEXAMPLE"), wantUser: kubeuser.User{Username: "shanice", Groups: []string{"devs"}}, wantMatch: "mapUsers[0] (line 38)"},
		"user case-insensitive":                                {id: sts(t, "arn:aws:iam::111122223333:user/shanice", "AIDASHANICE", ""), wantUser: kubeuser.User{Username: "shanice", Groups: []string{"devs"}}, wantMatch: "mapUsers[0] (line 38)"},
		"user not a prefix":                                    {id: sts(t, "arn:aws:iam::111122223333:user/notShanice", "AIDAX", ""), wantErr: kubeuser.ErrUnmapped},
		"user path is part of the ARN":                         {id: sts(t, "arn:aws:iam::111122223333:user/ops/Alice", "AIDAALICE", ""), wantUser: kubeuser.User{Username: "alice"}, wantMatch: "mapUsers[2] (line 43)"},
		"user without its path":                                {id: sts(t, "arn:aws:iam::111122223333:user/Alice", "AIDAALICE", ""), wantErr: kubeuser.ErrUnmapped},
		"root":                                                 {id: sts(t, "arn:aws:iam::111122223333:root", "111122223333", ""), wantUser: kubeuser.User{Username: "root-admin"}, wantMatch: "mapUsers[1] (line 41)"},
		"federated user":                                       {id: sts(t, "arn:aws:sts::111122223333:federated-user/Bob", "111122223333:Bob", ""), wantUser: kubeuser.User{Username: "bob"}, wantMatch: "mapUsers[5] (line 50)"},
		"a role never matches mapUsers":                        {id: session(t, acct, "Shanice", "s"), wantErr: kubeuser.ErrUnmapped},
		"account: canonical ARN, no groups": {
			id:        session(t, "444455556666", "SomeRole", "s"),
			wantUser:  kubeuser.User{Username: "arn:aws:iam::444455556666:role/SomeRole"},
			wantMatch: "mapAccounts[0] (line 53)",
		},
		"account: user keeps its ARN": {id: sts(t, "arn:aws:iam::444455556666:user/Dave", "AIDADAVE", ""), wantUser: kubeuser.User{Username: "arn:aws:iam::444455556666:user/Dave"}, wantMatch: "mapAccounts[0] (line 53)"},
		"unmapped":                    {id: session(t, "999988887777", "Nobody", "s"), wantErr: kubeuser.ErrUnmapped, wantInErr: "no mapRoles, mapUsers or mapAccounts entry for arn:aws:iam::999988887777:role/Nobody"},

		// Principal-ID pinning (EKS access entries; reference DynamicFile strict mode).
		"pinned role, same principal": {id: sts(t, "arn:aws:sts::111122223333:assumed-role/Pinned/s", "AROAPINNED:s", ""), wantUser: kubeuser.User{Username: "pinned"}, wantMatch: "mapRoles[3] (line 10)"},
		"pinned role, recreated":      {id: sts(t, "arn:aws:sts::999988887777:assumed-role/PinnedElsewhere/s", "AROANEWID:s", ""), wantErr: kubeuser.ErrUnmapped, wantInErr: "pinned to another principal ID"},
		"pinned user, same principal": {id: sts(t, "arn:aws:iam::111122223333:user/Pinned", "AIDAPINNED", ""), wantUser: kubeuser.User{Username: "pinned-user"}, wantMatch: "mapUsers[3] (line 45)"},
		"pinned user, recreated":      {id: sts(t, "arn:aws:iam::111122223333:user/Pinned", "AIDAOTHER", ""), wantErr: kubeuser.ErrUnmapped, wantInErr: "pinned"},

		// SSO permission sets.
		"sso exact permission set": {
			id:        session(t, acct, "AWSReservedSSO_Admin_0123456789abcdef", "alice@example.com"),
			wantUser:  kubeuser.User{Username: "sso-admin:alice-example.com", Groups: []string{"admins"}},
			wantMatch: "mapRoles[12] (line 32) (sso)",
		},
		"sso case-insensitive":            {id: session(t, acct, "awsreservedsso_ADMIN_0123456789ABCDEF", "a"), wantUser: kubeuser.User{Username: "sso-admin:a", Groups: []string{"admins"}}, wantMatch: "mapRoles[12] (line 32) (sso)"},
		"sso no prefix bleed":             {id: session(t, acct, "AWSReservedSSO_Admin_ReadOnly_0123456789abcdef", "a"), wantErr: kubeuser.ErrUnmapped},
		"sso no bleed into Administrator": {id: session(t, acct, "AWSReservedSSO_AdminX_0123456789abcdef", "a"), wantErr: kubeuser.ErrUnmapped},
		"sso suffix must be 16 hex":       {id: session(t, acct, "AWSReservedSSO_Admin_0123456789abcde", "a"), wantErr: kubeuser.ErrUnmapped},
		"sso suffix must be hex":          {id: session(t, acct, "AWSReservedSSO_Admin_0123456789abcdeg", "a"), wantErr: kubeuser.ErrUnmapped},
		"sso other account":               {id: session(t, "999988887777", "AWSReservedSSO_Admin_0123456789abcdef", "a"), wantErr: kubeuser.ErrUnmapped},
		"sso role with its IAM path": {
			id:        sts(t, "arn:aws:sts::111122223333:assumed-role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef/a", "AROAEXAMPLE:a", ""),
			wantUser:  kubeuser.User{Username: "sso-admin:a", Groups: []string{"admins"}},
			wantMatch: "mapRoles[12] (line 32) (sso)",
		},
		"sso partition as configured": {id: sts(t, "arn:aws-cn:sts::222233334444:assumed-role/AWSReservedSSO_ViewOnlyAccess_0123456789abcdef/a", "AROAEXAMPLE:a", ""), wantUser: kubeuser.User{Username: "cn-viewer"}, wantMatch: "mapRoles[13] (line 35) (sso)"},
		"sso other partition":         {id: session(t, "222233334444", "AWSReservedSSO_ViewOnlyAccess_0123456789abcdef", "a"), wantErr: kubeuser.ErrUnmapped},
		"exact role beats sso":        {id: session(t, acct, "AWSReservedSSO_Explicit_0123456789abcdef", "a"), wantUser: kubeuser.User{Username: "explicit"}, wantMatch: "mapRoles[10] (line 28)"},

		// Templates (reference TestRenderTemplate, plus single-pass).
		"every session template": {
			id:        session(t, acct, "Templ", "jdoe@example.com"),
			wantUser:  kubeuser.User{Username: "u-111122223333-jdoe-example.com-jdoe@example.com-ASIAEXAMPLEKEY", Groups: []string{"g-jdoe-example.com"}},
			wantMatch: "mapRoles[5] (line 16)",
		},
		"single pass substitution": {
			id:       identity.Identity{ARN: "arn:aws:sts::111122223333:assumed-role/Templ/{{AccountID}}", CanonicalARN: "arn:aws:iam::111122223333:role/Templ", AccountID: acct, SessionName: "{{AccountID}}", AccessKeyID: "K"},
			wantUser: kubeuser.User{Username: "u-111122223333-{{AccountID}}-{{AccountID}}-K", Groups: []string{"g-{{AccountID}}"}}, wantMatch: "mapRoles[5] (line 16)",
		},
		"access key id":                                   {id: session(t, acct, "KeyUser", "s"), wantUser: kubeuser.User{Username: "key-ASIAEXAMPLEKEY"}, wantMatch: "mapRoles[8] (line 24)"},
		"empty access key id":                             {id: sts(t, "arn:aws:sts::111122223333:assumed-role/KeyOnly/s", "AROAEXAMPLE:s", ""), wantErr: kubeuser.ErrForbidden, wantInErr: "is empty"},
		"user has no session":                             {id: sts(t, "arn:aws:iam::111122223333:user/Sessionless", "AIDAX", ""), wantErr: kubeuser.ErrForbidden, wantInErr: "is empty"},
		"session with a colon":                            {id: identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:role/Templ", AccountID: acct, SessionName: "a:b"}, wantErr: kubeuser.ErrForbidden, wantInErr: "contains ':' or '/'"},
		"session with a slash":                            {id: identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:role/Templ", AccountID: acct, SessionName: "a/b"}, wantErr: kubeuser.ErrForbidden},
		"session with a comma":                            {id: session(t, acct, "GroupSmuggle", "a,b"), wantErr: kubeuser.ErrForbidden, wantInErr: "contains a comma"},
		"literal names are not checked for session chars": {id: identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:role/KubeAdmin", AccountID: acct, SessionName: "a:b"}, wantUser: kubeuser.User{Username: "admin", Groups: []string{"system:masters"}}, wantMatch: "mapRoles[1] (line 5)"},

		// Reserved prefixes.
		"session smuggles system:masters": {id: session(t, acct, "Smuggle", "system"), wantErr: kubeuser.ErrForbidden, wantInErr: `reserved prefix "system:"`},
		"session smuggles eks:":           {id: session(t, acct, "Smuggle", "eks"), wantErr: kubeuser.ErrForbidden},
		"reserved prefix any case":        {id: session(t, acct, "Smuggle", "SYSTEM"), wantErr: kubeuser.ErrForbidden},
		"harmless session":                {id: session(t, acct, "Smuggle", "ops"), wantUser: kubeuser.User{Username: "ops:masters"}, wantMatch: "mapRoles[6] (line 19)"},
		"group smuggles aws:":             {id: session(t, acct, "GroupSmuggle", "aws"), wantErr: kubeuser.ErrForbidden, wantInErr: "group from template"},
		"group smuggles iam:":             {id: session(t, acct, "GroupSmuggle", "iam"), wantErr: kubeuser.ErrForbidden},
		"group smuggles amazon:":          {id: session(t, acct, "GroupSmuggle", "amazon"), wantErr: kubeuser.ErrForbidden},
		"literal reserved group allowed":  {id: session(t, acct, "GroupSmuggle", "dev"), wantUser: kubeuser.User{Username: "safe-dev", Groups: []string{"dev:viewers"}}, wantMatch: "mapRoles[7] (line 21)"},

		// {{EC2PrivateDNSName}} (reference server test vector).
		"node": {
			id: session(t, acct, "Node", "i-0c6f21bf1f24f9708"), dns: &fakeDNS{names: nodeDNS},
			wantUser:  kubeuser.User{Username: "system:node:ip-172-31-27-14.ec2.internal", Groups: []string{"system:bootstrappers", "system:nodes"}},
			wantMatch: "mapRoles[0] (line 2)", wantCalls: 1,
		},
		"node with a short instance id":      {id: session(t, acct, "Node", "i-0123abcd"), dns: &fakeDNS{names: nodeDNS}, wantUser: kubeuser.User{Username: "system:node:ip-10-0-0-1.ec2.internal", Groups: []string{"system:bootstrappers", "system:nodes"}}, wantMatch: "mapRoles[0] (line 2)", wantCalls: 1},
		"node session is not an instance id": {id: session(t, acct, "Node", "i-aaaaa"), dns: &fakeDNS{names: nodeDNS}, wantErr: kubeuser.ErrForbidden, wantInErr: "not an EC2 instance ID"},
		"node instance id upper-case":        {id: session(t, acct, "Node", "i-0C6F21BF1F24F9708"), dns: &fakeDNS{names: nodeDNS}, wantErr: kubeuser.ErrForbidden},
		"node instance does not exist":       {id: session(t, acct, "Node", "i-0123456789abcdef0"), dns: &fakeDNS{names: nodeDNS}, wantErr: kubeuser.ErrForbidden, wantCalls: 1},
		"node EC2 outage":                    {id: session(t, acct, "Node", "i-0c6f21bf1f24f9708"), dns: &fakeDNS{err: errors.New("connection refused")}, wantErr: kubeuser.ErrUnavailable, wantCalls: 1},
		"node DNS name is refused":           {id: session(t, acct, "Node", "i-00000000"), dns: &fakeDNS{names: nodeDNS}, wantErr: kubeuser.ErrForbidden, wantInErr: "contains a comma", wantCalls: 1},
		"node empty DNS name":                {id: session(t, acct, "Node", "i-11111111"), dns: &fakeDNS{names: map[string]string{"i-11111111": ""}}, wantErr: kubeuser.ErrForbidden, wantInErr: "no private DNS name", wantCalls: 1},
		"node without a resolver":            {id: session(t, acct, "Node", "i-0c6f21bf1f24f9708"), wantErr: kubeuser.ErrUnavailable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			opts := MapperOptions{Snapshots: StaticSource{Snapshot: snap}}
			if tc.dns != nil {
				opts.EC2 = tc.dns
			}
			m, err := NewMapper(opts)
			if err != nil {
				t.Fatal(err)
			}
			got, match, err := m.Explain(context.Background(), tc.id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Map() error = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantInErr) {
					t.Errorf("Map() error = %q, want it to contain %q", err, tc.wantInErr)
				}
			} else if err != nil {
				t.Fatalf("Map() error = %v", err)
			}
			if got.Username != tc.wantUser.Username || !slices.Equal(got.Groups, tc.wantUser.Groups) {
				t.Errorf("Map() = %+v, want %+v", got, tc.wantUser)
			}
			if tc.wantErr == nil && match.String() != tc.wantMatch {
				t.Errorf("Match = %q, want %q", match.String(), tc.wantMatch)
			}
			if tc.dns != nil && len(tc.dns.calls) != tc.wantCalls {
				t.Errorf("EC2 calls = %v, want %d", tc.dns.calls, tc.wantCalls)
			}
		})
	}
}

func TestMapReturnsACopyOfGroups(t *testing.T) {
	m, err := NewMapper(MapperOptions{Snapshots: StaticSource{Snapshot: loadTestMapping(t)}})
	if err != nil {
		t.Fatal(err)
	}
	id := session(t, "111122223333", "KubeAdmin", "s")
	first, err := m.Map(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	first.Groups[0] = "tampered"
	second, err := m.Map(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if second.Groups[0] != "system:masters" {
		t.Errorf("second Map() groups = %v: a caller mutated the snapshot", second.Groups)
	}
}

func TestMapWithoutSnapshot(t *testing.T) {
	m, err := NewMapper(MapperOptions{Snapshots: StaticSource{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Map(context.Background(), identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:user/a"}); !errors.Is(err, kubeuser.ErrUnavailable) {
		t.Errorf("Map() error = %v, want kubeuser.ErrUnavailable", err)
	}
	if _, err := NewMapper(MapperOptions{}); err == nil {
		t.Error("NewMapper without Snapshots succeeded")
	}
}

func TestLookupNotAnARN(t *testing.T) {
	snap := loadTestMapping(t)
	for _, arn := range []string{"", "arn", "arn:aws:iam", "not:an:arn:at:all:x"} {
		if _, err := snap.Lookup(identity.Identity{CanonicalARN: arn}); !errors.Is(err, kubeuser.ErrUnmapped) {
			t.Errorf("Lookup(%q) error = %v, want kubeuser.ErrUnmapped", arn, err)
		}
	}
}

// TestMapRoleARNUnderMapUsers: the case of issue 13. aws-iam-authenticator
// compares every entry's ARN with the canonical ARN, so a role ARN under
// mapUsers maps that role's sessions, after mapRoles.
func TestMapRoleARNUnderMapUsers(t *testing.T) {
	snap, err := Parse([]byte(`mapRoles: |
  - rolearn: arn:aws:iam::111122223333:role/Both
    username: from-maproles
mapUsers: |
  - userarn: arn:aws:iam::111122223333:role/DevOps
    username: devops:{{SessionName}}
    groups: [system:masters]
  - userarn: arn:aws:iam::111122223333:role/Both
    username: from-mapusers
  - userarn: arn:aws:iam::111122223333:role/team/Pathed
    username: pathed
`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMapper(MapperOptions{Snapshots: StaticSource{Snapshot: snap}})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		role      string
		wantUser  kubeuser.User
		wantMatch string
		wantErr   error
	}{
		"a session of the role":     {role: "DevOps", wantUser: kubeuser.User{Username: "devops:alice-example.com", Groups: []string{"system:masters"}}, wantMatch: "mapUsers[0] (line 5)"},
		"case-insensitively":        {role: "devops", wantUser: kubeuser.User{Username: "devops:alice-example.com", Groups: []string{"system:masters"}}, wantMatch: "mapUsers[0] (line 5)"},
		"mapRoles first":            {role: "Both", wantUser: kubeuser.User{Username: "from-maproles"}, wantMatch: "mapRoles[0] (line 2)"},
		"a role path never matches": {role: "Pathed", wantErr: kubeuser.ErrUnmapped},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			u, match, err := m.Explain(context.Background(), session(t, "111122223333", tc.role, "alice@example.com"))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Explain() error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			if u.Username != tc.wantUser.Username || !slices.Equal(u.Groups, tc.wantUser.Groups) || match.String() != tc.wantMatch {
				t.Errorf("Explain() = %+v via %s, want %+v via %s", u, match, tc.wantUser, tc.wantMatch)
			}
		})
	}
	if c := snap.Counts(); c.Users != 2 || c.Roles != 1 || c.Dropped != 1 {
		t.Errorf("Counts() = %+v, want 2 users (role ARNs), 1 role, 1 dropped", c)
	}
}
