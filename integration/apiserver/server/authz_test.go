package server

import (
	"context"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

func TestProxyAuthorizer(t *testing.T) {
	proxy := &user.DefaultInfo{Name: DefaultProxyUser, Groups: []string{user.AllAuthenticated}}
	bob := &user.DefaultInfo{Name: "bob", Groups: []string{user.AllAuthenticated}}
	admin := &user.DefaultInfo{Name: "admin", Groups: []string{user.SystemPrivilegedGroup}}
	mallory := &user.DefaultInfo{Name: "mallory", Groups: []string{user.SystemPrivilegedGroup}}
	anon := &user.DefaultInfo{Name: user.Anonymous, Groups: []string{user.AllUnauthenticated}}

	impersonate := func(u user.Info, verb, resource string) authorizer.AttributesRecord {
		return authorizer.AttributesRecord{User: u, Verb: verb, Resource: resource, Name: "x", ResourceRequest: true}
	}
	nonResource := func(u user.Info, verb, path string) authorizer.AttributesRecord {
		return authorizer.AttributesRecord{User: u, Verb: verb, Path: path}
	}

	tests := map[string]struct {
		grants       []string
		attrs        authorizer.AttributesRecord
		wantDecision authorizer.Decision
	}{
		"proxy may use the classic verb when granted": {
			grants: []string{GrantImpersonate}, attrs: impersonate(proxy, "impersonate", "users"), wantDecision: authorizer.DecisionAllow,
		},
		"proxy may not use the classic verb without the grant": {
			grants: []string{GrantUserInfo}, attrs: impersonate(proxy, "impersonate", "groups"), wantDecision: authorizer.DecisionDeny,
		},
		"proxy may use user-info constrained verbs when granted": {
			grants: []string{GrantUserInfo}, attrs: impersonate(proxy, "impersonate:user-info", "userextras"), wantDecision: authorizer.DecisionAllow,
		},
		"proxy may act as user-info for any request verb when granted": {
			grants: []string{GrantUserInfo}, attrs: impersonate(proxy, "impersonate-on:user-info:create", "selfsubjectreviews"), wantDecision: authorizer.DecisionAllow,
		},
		"user-info verbs need the user-info grant": {
			grants: []string{GrantImpersonate}, attrs: impersonate(proxy, "impersonate:user-info", "users"), wantDecision: authorizer.DecisionDeny,
		},
		"serviceaccount mode is never granted": {
			grants: []string{GrantImpersonate, GrantUserInfo}, attrs: impersonate(proxy, "impersonate:serviceaccount", "serviceaccounts"), wantDecision: authorizer.DecisionDeny,
		},
		"node modes are never granted": {
			grants: []string{GrantImpersonate, GrantUserInfo}, attrs: impersonate(proxy, "impersonate-on:arbitrary-node:get", "pods"), wantDecision: authorizer.DecisionDeny,
		},
		"other users may not impersonate": {
			grants: []string{GrantImpersonate}, attrs: impersonate(bob, "impersonate", "users"), wantDecision: authorizer.DecisionDeny,
		},
		"other users may not use constrained verbs": {
			grants: []string{GrantUserInfo}, attrs: impersonate(bob, "impersonate-on:user-info:get", "pods"), wantDecision: authorizer.DecisionDeny,
		},
		"authenticated users may create selfsubjectreviews": {
			attrs: impersonate(bob, "create", "selfsubjectreviews"), wantDecision: authorizer.DecisionAllow,
		},
		"deny list wins over everything, even system:masters": {
			attrs: impersonate(mallory, "create", "selfsubjectreviews"), wantDecision: authorizer.DecisionDeny,
		},
		"system:masters may impersonate like in a real cluster": {
			attrs: impersonate(admin, "impersonate", "users"), wantDecision: authorizer.DecisionAllow,
		},
		"anonymous may read readyz": {
			attrs: nonResource(anon, "get", "/readyz"), wantDecision: authorizer.DecisionAllow,
		},
		"anonymous may read version": {
			attrs: nonResource(anon, "get", "/version"), wantDecision: authorizer.DecisionAllow,
		},
		"anonymous may not read discovery": {
			attrs: nonResource(anon, "get", "/apis"), wantDecision: authorizer.DecisionDeny,
		},
		"anonymous may not post to readyz": {
			attrs: nonResource(anon, "post", "/readyz"), wantDecision: authorizer.DecisionDeny,
		},
		"anonymous may not create resources": {
			attrs: impersonate(anon, "create", "selfsubjectreviews"), wantDecision: authorizer.DecisionDeny,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := NewOptions()
			o.ProxyGrants = tc.grants
			o.DenyUsers = []string{"mallory"}
			a := newProxyAuthorizer(o)
			got, reason, err := a.Authorize(context.Background(), tc.attrs)
			if err != nil {
				t.Fatalf("Authorize error: %v", err)
			}
			if got != tc.wantDecision {
				t.Errorf("decision = %v (reason %q), want %v", got, reason, tc.wantDecision)
			}
			if got == authorizer.DecisionDeny && reason == "" {
				t.Errorf("deny without a reason: the 403 body would not say why")
			}
		})
	}
}
