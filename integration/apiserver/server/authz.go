package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Grant names accepted by Options.ProxyGrants: which impersonation verbs the
// proxy identity holds, as an RBAC ClusterRole would grant them.
const (
	// GrantImpersonate is the classic verb "impersonate" on users, groups,
	// uids, serviceaccounts and userextras/* — what an EKS cluster's
	// ClusterRole for an impersonating proxy grants today.
	GrantImpersonate = "impersonate"
	// GrantUserInfo is constrained impersonation (KEP-5284) of arbitrary
	// users: "impersonate:user-info" on the same resources in
	// authentication.k8s.io plus "impersonate-on:user-info:<verb>" for
	// every verb of the request. Only the ConstrainedImpersonation filter
	// asks for it.
	GrantUserInfo = "user-info"
)

// Verbs the impersonation filters authorize with.
const (
	verbImpersonate        = "impersonate"
	verbImpersonatePrefix  = "impersonate:"
	verbImpersonateOnPrefx = "impersonate-on:"
	userInfoMode           = "user-info"
)

// publicInfoPaths are readable anonymously, like the system:public-info-viewer
// ClusterRole of a real cluster; readiness probes rely on it.
var publicInfoPaths = []string{"/healthz", "/livez", "/readyz", "/version", "/version/"}

// proxyAuthorizer is the test peer's RBAC stand-in. Its rules, in order:
//  1. users listed in DenyUsers are denied everything: proves authorization
//     runs against the impersonated user, not the proxy;
//  2. system:masters may do anything (the privileged-group authorizer of a
//     real cluster; also the loopback client);
//  3. impersonation verbs are allowed only to the proxy identity, and only
//     the verbs its grants name;
//  4. system:anonymous may read only the public info paths;
//  5. any other authenticated request is allowed (there are no
//     storage-backed resources to protect).
type proxyAuthorizer struct {
	proxyUser string
	grants    map[string]bool
	denyUsers map[string]bool
}

var _ authorizer.UnconditionalAuthorizer = (*proxyAuthorizer)(nil)

func newProxyAuthorizer(o *Options) *proxyAuthorizer {
	a := &proxyAuthorizer{
		proxyUser: o.ProxyUser,
		grants:    map[string]bool{},
		denyUsers: map[string]bool{},
	}
	for _, g := range o.ProxyGrants {
		a.grants[g] = true
	}
	for _, u := range o.DenyUsers {
		a.denyUsers[u] = true
	}
	return a
}

// Authorize implements authorizer.UnconditionalAuthorizer.
func (a *proxyAuthorizer) Authorize(_ context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	u := attrs.GetUser()
	if u == nil {
		return authorizer.DecisionDeny, "no user", nil
	}
	name := u.GetName()
	verb := attrs.GetVerb()

	if a.denyUsers[name] {
		return authorizer.DecisionDeny, fmt.Sprintf("user %q is on the deny list", name), nil
	}
	if slices.Contains(u.GetGroups(), user.SystemPrivilegedGroup) {
		return authorizer.DecisionAllow, "", nil
	}
	if isImpersonationVerb(verb) {
		if name != a.proxyUser {
			return authorizer.DecisionDeny, fmt.Sprintf("only %q may impersonate", a.proxyUser), nil
		}
		if grant := grantFor(verb); grant != "" && a.grants[grant] {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionDeny, fmt.Sprintf("verb %q is not granted to the proxy", verb), nil
	}
	if name == user.Anonymous {
		if !attrs.IsResourceRequest() && verb == "get" && slices.Contains(publicInfoPaths, attrs.GetPath()) {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionDeny, "anonymous access is limited to health and version", nil
	}
	return authorizer.DecisionAllow, "", nil
}

func isImpersonationVerb(verb string) bool {
	return verb == verbImpersonate ||
		strings.HasPrefix(verb, verbImpersonatePrefix) ||
		strings.HasPrefix(verb, verbImpersonateOnPrefx)
}

// grantFor names the grant that covers an impersonation verb, or "" for
// modes the peer never grants (serviceaccount, arbitrary-node,
// associated-node), so those constrained modes always fall through to the
// next one exactly as they would under an RBAC role that omits them.
func grantFor(verb string) string {
	switch {
	case verb == verbImpersonate:
		return GrantImpersonate
	case verb == verbImpersonatePrefix+userInfoMode,
		strings.HasPrefix(verb, verbImpersonateOnPrefx+userInfoMode+":"):
		return GrantUserInfo
	default:
		return ""
	}
}

// withRecording wraps an authorizer so every check is appended to the
// request's record: the impersonation filter's per-header checks show exactly
// how it decoded each header (an extra's key arrives as the subresource of
// "userextras"), and the final check shows the effective user. AuthorizerFunc
// supplies the conditions-aware methods of authorizer.Authorizer the way a
// non-conditional authorizer must (deny condition evaluation).
func withRecording(next authorizer.UnconditionalAuthorizer) authorizer.Authorizer {
	return authorizer.AuthorizerFunc(func(ctx context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
		d, reason, err := next.Authorize(ctx, attrs)
		if rec := recordFrom(ctx); rec != nil {
			rec.addCheck(attrs, d, reason)
		}
		return d, reason, err
	})
}
