package impersonate

import (
	"slices"
	"strings"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

// Groups the API server adds to every user (k8s.io/apiserver
// authentication/user).
const (
	GroupAuthenticated   = "system:authenticated"
	GroupUnauthenticated = "system:unauthenticated"
	UserAnonymous        = "system:anonymous"
)

// EffectiveGroups are the groups the API server's impersonation filter
// gives an impersonated user with these requested groups: system:anonymous
// gets system:unauthenticated, anyone else gets system:authenticated unless
// system:unauthenticated was asked for (both modes of the filter agree).
// The input is not modified.
func EffectiveGroups(username string, groups []string) []string {
	add := GroupAuthenticated
	if username == UserAnonymous {
		add = GroupUnauthenticated
	} else if slices.Contains(groups, GroupUnauthenticated) {
		return slices.Clone(groups)
	}
	if slices.Contains(groups, add) {
		return slices.Clone(groups)
	}
	out := make([]string, 0, len(groups)+1)
	return append(append(out, groups...), add)
}

// CallerInfo is the mapped AWS caller as the API server knows them when the
// proxy impersonates them: the user, groups (with system:authenticated
// added as the API server adds it), uid and extras of Headers. It is the
// subject of the SubjectAccessReviews that authorize a nested
// impersonation, so that the answer is the one the API server would give
// the caller.
type CallerInfo struct {
	User   string
	Groups []string
	UID    string
	Extra  map[string][]string
}

// Caller returns the CallerInfo of a mapped identity.
func Caller(id identity.Identity, user kubeuser.User) CallerInfo {
	c := CallerInfo{
		User:   user.Username,
		Groups: EffectiveGroups(user.Username, user.Groups),
		UID:    UID(id),
		Extra:  map[string][]string{},
	}
	for _, e := range Extras(id) {
		if e.Value != "" {
			c.Extra[e.Key] = []string{e.Value}
		}
	}
	return c
}

// NestedHeaders returns the header lines the Check service SETS for an
// allowed nested impersonation: the requested user and uid (replacing the
// client's identical single lines), then the reserved extras naming the
// original caller. The requested groups and extras are NOT among them:
// the client's own lines pass through Envoy untouched, one line each,
// exactly as they were authorized (the gRPC ext_authz can only set one
// line per name, docs/envoy-facts.md F1, and a client line survives next
// to a metadata slot line, F5, so re-sending them would duplicate them).
//
// original-groups is one comma-joined value: a header set carries one line,
// and group names never hold a comma (Headers refuses them).
func NestedHeaders(id identity.Identity, caller kubeuser.User, req Requested) ([]Header, error) {
	if _, err := Headers(id, caller); err != nil {
		return nil, err
	}
	out := []Header{{Name: HeaderUser, Value: req.User}}
	if req.UID != "" {
		out = append(out, Header{Name: HeaderUID, Value: req.UID})
	}
	reserved := []Extra{
		{Key: ExtraOriginalUsername, Value: caller.Username},
		{Key: ExtraOriginalUID, Value: UID(id)},
		{Key: ExtraOriginalGroups, Value: strings.Join(caller.Groups, ",")},
		{Key: ExtraOriginalARN, Value: id.ARN},
	}
	return appendExtras(out, reserved)
}
