package aiadiff

import (
	"errors"
	"regexp"
	"strings"

	"sigs.k8s.io/aws-iam-authenticator/pkg/config"
	"sigs.k8s.io/aws-iam-authenticator/pkg/mapper/configmap"
	"sigs.k8s.io/aws-iam-authenticator/pkg/token"
)

// result is one mapping outcome: a refusal, or a username and groups.
type result struct {
	refused  bool
	username string
	groups   []string
	// viaSSO marks an AIA answer that came from an sso entry.
	viaSSO bool
}

func (r result) String() string {
	if r.refused {
		return "refused"
	}
	return r.username + " " + strings.Join(r.groups, ",")
}

func (r result) same(o result) bool {
	if r.refused || o.refused {
		return r.refused == o.refused
	}
	if r.username != o.username || len(r.groups) != len(o.groups) {
		return false
	}
	for i := range r.groups {
		if r.groups[i] != o.groups[i] {
			return false
		}
	}
	return true
}

// aiaStore is what AIA's MapStore holds after a ConfigMap event. The
// parsing is AIA's own configmap.ParseMap; the store's fields are
// unexported, so its saveMap (a map keyed by each entry's Key(), filled in
// file order, so a later duplicate wins) is restated here in four lines.
type aiaStore struct {
	users    map[string]config.UserMapping
	roles    map[string]config.RoleMapping
	accounts map[string]bool
}

func aiaLoad(data map[string]string) aiaStore {
	// Errors are logged by AIA and the good part is kept: same here.
	users, roles, accounts, _ := configmap.ParseMap(data)
	s := aiaStore{users: map[string]config.UserMapping{}, roles: map[string]config.RoleMapping{}, accounts: map[string]bool{}}
	for _, u := range users {
		s.users[u.Key()] = u
	}
	for _, r := range roles {
		s.roles[r.Key()] = r
	}
	for _, a := range accounts {
		s.accounts[a] = true
	}
	return s
}

// aiaInstanceID is AIA's pattern for {{EC2PrivateDNSName}} session names.
var aiaInstanceID = regexp.MustCompile(`^i-(\w{8}|\w{17})$`)

var errNoInstance = errors.New("instance not found")

// rawMatch is a matching entry before its templates are rendered.
type rawMatch struct {
	username string
	groups   []string
	sso      bool
}

// matches returns every entry ConfigMapMapper.Map may answer with for the
// canonical ARN: it returns the first matching role, else the first
// matching user, iterating Go maps, so any matching entry may be the one.
// Matching is AIA's own RoleMapping.Matches / UserMapping.Matches on the
// lower-cased canonical ARN. TestOracleIsTheRealConfigMapMapper checks this
// against the real ConfigMapMapper fed through a watch.
func (s aiaStore) matches(canonicalARN string) []rawMatch {
	subject := strings.ToLower(canonicalARN)
	var out []rawMatch
	for _, r := range s.roles {
		if r.Matches(subject) {
			out = append(out, rawMatch{username: r.Username, groups: r.Groups, sso: r.SSO != nil})
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, u := range s.users {
		if u.Matches(subject) {
			out = append(out, rawMatch{username: u.Username, groups: u.Groups})
		}
	}
	return out
}

// aiaMap returns every answer AIA may give for id: the server's doMapping
// renders the matched entry's templates (renderTemplate, restated below:
// the handler is unexported) or, with no match, allows an account listed
// in mapAccounts with the canonical ARN and no groups.
func (s aiaStore) aiaMap(id *token.Identity, dns func(string) (string, error)) []result {
	var out []result
	for _, m := range s.matches(id.CanonicalARN) {
		res := aiaRender(m.username, m.groups, id, dns)
		res.viaSSO = m.sso
		out = append(out, res)
	}
	if len(out) > 0 {
		return out
	}
	if s.accounts[id.AccountID] {
		return []result{{username: id.CanonicalARN}}
	}
	return []result{{refused: true}}
}

func aiaRender(username string, groups []string, id *token.Identity, dns func(string) (string, error)) result {
	render := func(t string) (string, error) {
		if strings.Contains(t, "{{EC2PrivateDNSName}}") {
			if !aiaInstanceID.MatchString(id.SessionName) {
				return "", errNoInstance
			}
			name, err := dns(id.SessionName)
			if err != nil {
				return "", err
			}
			t = strings.ReplaceAll(t, "{{EC2PrivateDNSName}}", name)
		}
		t = strings.ReplaceAll(t, "{{AccountID}}", id.AccountID)
		t = strings.ReplaceAll(t, "{{SessionName}}", strings.ReplaceAll(id.SessionName, "@", "-"))
		t = strings.ReplaceAll(t, "{{SessionNameRaw}}", id.SessionName)
		t = strings.ReplaceAll(t, "{{AccessKeyID}}", id.AccessKeyID)
		return t, nil
	}
	u, err := render(username)
	if err != nil {
		return result{refused: true}
	}
	res := result{username: u}
	for _, g := range groups {
		r, err := render(g)
		if err != nil {
			return result{refused: true}
		}
		res.groups = append(res.groups, r)
	}
	return res
}
