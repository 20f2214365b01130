package mapping

import (
	"fmt"
	"strings"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

// Match says which entry an identity matched. The zero Match is no match.
type Match struct {
	// Source is the list the entry is in.
	Source Source
	// Index is the entry's position in that list.
	Index int
	// Line is the entry's line in the file (0 if unknown).
	Line int
	// SSO is true when a mapRoles sso permission-set entry matched.
	SSO bool

	entry *entry // nil for mapAccounts
}

// String is "mapRoles[3] (line 12)" for explanations.
func (m Match) String() string {
	s := where(m.Source, m.Index, m.Line)
	if m.SSO {
		s += " (sso)"
	}
	return s
}

func (e *entry) match() Match {
	return Match{Source: e.source, Index: e.index, Line: e.line, SSO: e.sso, entry: e}
}

// lookupBuf sizes the stack buffer lookup keys are built in; IAM ARNs are at
// most 2048 bytes but almost always far shorter, and a longer one only costs
// an allocation.
const lookupBuf = 256

// Lookup finds the entry for id in aws-iam-authenticator's order: mapRoles
// (an exact ARN before an sso permission set), then mapUsers, then
// mapAccounts. An entry's ARN is compared with the identity's canonical ARN
// (an assumed-role session as arn:P:iam::A:role/NAME), case-insensitively
// (IAM names are unique case-insensitively), whichever list it is in: a
// role ARN under mapUsers maps that role's sessions after mapRoles, as the
// reference does. A dropped entry never matches, and neither does an entry
// pinned (userid) to another principal ID, so a deleted and recreated role
// of the same name falls through to the next list, like an EKS access
// entry. No match is an error wrapping ErrUnmapped.
func (s *Snapshot) Lookup(id identity.Identity) (Match, error) {
	arn := id.CanonicalARN
	partition, account, resource, ok := splitARN(arn)
	if !ok {
		return Match{}, fmt.Errorf("%w: %q is not an ARN", kubeuser.ErrUnmapped, arn)
	}
	var buf [lookupBuf]byte
	key := appendLower(buf[:0], arn)
	var skipped *entry
	use := func(e *entry) bool {
		if e == nil {
			return false
		}
		if e.drop == nil && (e.userID == "" || e.userID == id.PrincipalID) {
			return true
		}
		if skipped == nil {
			skipped = e
		}
		return false
	}
	if e := s.roles[string(key)]; use(e) {
		return e.match(), nil
	}
	if strings.HasPrefix(resource, "role/") {
		name := resource[strings.LastIndexByte(resource, '/')+1:]
		var sbuf [lookupBuf]byte
		if e := s.ssoLookup(sbuf[:0], partition, account, name); use(e) {
			return e.match(), nil
		}
	}
	if e := s.users[string(key)]; use(e) {
		return e.match(), nil
	}
	acct := id.AccountID
	if acct == "" {
		acct = account
	}
	if a, ok := s.accounts[acct]; ok {
		return Match{Source: SourceAccounts, Index: a.index, Line: a.line}, nil
	}
	if skipped != nil {
		return Match{}, skipped.skipError(id)
	}
	return Match{}, fmt.Errorf("%w: no mapRoles, mapUsers or mapAccounts entry for %s", kubeuser.ErrUnmapped, arn)
}

// skipError explains why an entry that matches id's ARN was not used.
func (e *entry) skipError(id identity.Identity) error {
	if e.drop != nil {
		rule := e.drop.Rule
		if rule == "" {
			rule = RuleShadowed // invalid to both; it only shadows
		}
		return &ruleError{rule: rule, err: fmt.Errorf("%w: %s matches %s, which is dropped: %s", kubeuser.ErrUnmapped, id.CanonicalARN, e.ref(), e.drop.String())}
	}
	return &ruleError{rule: RuleUserID, err: fmt.Errorf("%w: %s matches %s, which is pinned to another principal ID (deleted and recreated?)", kubeuser.ErrUnmapped, id.CanonicalARN, e.ref())}
}

// Bypassed lists, for a decision log or the differential test, the entries
// whose ARN matches id but which Lookup passed over: dropped ones and ones
// pinned to another principal, each as the error Lookup would give (RuleOf
// names its divergence).
func (s *Snapshot) Bypassed(id identity.Identity) []error {
	partition, account, resource, ok := splitARN(id.CanonicalARN)
	if !ok {
		return nil
	}
	key := lowerASCII(id.CanonicalARN)
	candidates := []*entry{s.roles[key]}
	if strings.HasPrefix(resource, "role/") {
		name := resource[strings.LastIndexByte(resource, '/')+1:]
		candidates = append(candidates, s.ssoLookup(nil, partition, account, name))
	}
	candidates = append(candidates, s.users[key])
	var out []error
	for _, e := range candidates {
		if e != nil && (e.drop != nil || (e.userID != "" && e.userID != id.PrincipalID)) {
			out = append(out, e.skipError(id))
		}
	}
	return out
}

// ssoPrefix is the name IAM Identity Center gives the roles it provisions;
// IAM refuses user-created role names that start with it.
const ssoPrefix = "awsreservedsso_"

// ssoLookup matches role names AWSReservedSSO_<PermissionSet>_<16 hex>.
// The permission set is everything between the prefix and the last '_', so
// permission set "Admin" does not match "AWSReservedSSO_Admin_ReadOnly_<hex>"
// (the reference's "*" pattern does; reference §4.7).
func (s *Snapshot) ssoLookup(buf []byte, partition, account, name string) *entry {
	if len(s.sso) == 0 || len(name) <= len(ssoPrefix) || !strings.EqualFold(name[:len(ssoPrefix)], ssoPrefix) {
		return nil
	}
	rest := name[len(ssoPrefix):]
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 || !isHex16(rest[i+1:]) {
		return nil
	}
	key := appendLower(buf, partition)
	key = append(key, ':')
	key = append(key, account...)
	key = append(key, ':')
	key = appendLower(key, rest[:i])
	return s.sso[string(key)]
}

func isHex16(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// splitARN returns the partition, account and resource of
// arn:partition:service:region:account:resource without allocating.
func splitARN(arn string) (partition, account, resource string, ok bool) {
	if !strings.HasPrefix(arn, "arn:") {
		return "", "", "", false
	}
	rest := arn[4:]
	var fields [4]string
	for i := range fields {
		j := strings.IndexByte(rest, ':')
		if j < 0 {
			return "", "", "", false
		}
		fields[i], rest = rest[:j], rest[j+1:]
	}
	return fields[0], fields[3], rest, true
}

// appendLower appends s lower-cased (ASCII; ARNs are ASCII).
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// lowerASCII is appendLower for index keys built at load time, so that both
// sides of a lookup fold case the same way.
func lowerASCII(s string) string { return string(appendLower(make([]byte, 0, len(s)), s)) }
