package check

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sar"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
)

// TestNestedDecisionLog: the decision line names the caller and the
// impersonated user, and counts the reviews.
func TestNestedDecisionLog(t *testing.T) {
	f := newFixture(t, fixtureOptions{allowImpersonation: true})
	if _, err := f.server.Check(context.Background(), raw(tokAlice, "impersonate-user", "bob", "impersonate-group", "devs")); err != nil {
		t.Fatal(err)
	}
	line := f.logs.String()
	for _, want := range []string{
		`"arn":"arn:aws:sts::111122223333:assumed-role/Dev/alice"`, `"username":"dev:alice"`,
		`"result":"allowed"`, `"reason":"impersonated"`,
		`"impersonated_user":"bob"`, `"impersonated_groups":["devs"]`, `"sar_reviews":2`,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("decision line lacks %s:\n%s", want, line)
		}
	}
	if strings.Contains(line, tokAlice) {
		t.Error("token logged")
	}
}

// The reserved extras naming alice, the original caller, as the header
// sets Envoy applies (test-side spelling of the contract).
var aliceOriginal = []hdr{
	{"impersonate-extra-kube-iam-authz.io%2Foriginal-username", "dev:alice", setH},
	{"impersonate-extra-kube-iam-authz.io%2Foriginal-uid", "aws-iam-authenticator:111122223333:AROAEXAMPLE", setH},
	{"impersonate-extra-kube-iam-authz.io%2Foriginal-groups", "devs,viewers,team:platform", setH},
	{"impersonate-extra-kube-iam-authz.io%2Foriginal-arn", "arn:aws:sts::111122223333:assumed-role/Dev/alice", setH},
}

// aliceSubject is alice as the API server knows her when the proxy
// impersonates her: the SubjectAccessReview subject of her nested
// impersonations.
var aliceSubject = sar.Subject{
	User:   "dev:alice",
	Groups: []string{"devs", "viewers", "team:platform", "system:authenticated"},
	UID:    "aws-iam-authenticator:111122223333:AROAEXAMPLE",
	Extra: map[string][]string{
		"arn":          {"arn:aws:sts::111122223333:assumed-role/Dev/alice"},
		"canonicalarn": {"arn:aws:iam::111122223333:role/Dev"},
		"sessionname":  {"alice"},
		"accesskeyid":  {"ASIAEXAMPLE"},
		"principalid":  {"AROAEXAMPLE"},
	},
}

// bobSubject: an IAM user mapped without groups still has
// system:authenticated, and no sessionname extra.
var bobSubject = sar.Subject{
	User:   "bob",
	Groups: []string{"system:authenticated"},
	UID:    "aws-iam-authenticator:111122223333:AIDAEXAMPLE",
	Extra: map[string][]string{
		"arn":          {"arn:aws:iam::111122223333:user/bob"},
		"canonicalarn": {"arn:aws:iam::111122223333:user/bob"},
		"accesskeyid":  {"AKIAEXAMPLE"},
		"principalid":  {"AIDAEXAMPLE"},
	},
}

func users(name string) sar.Attributes {
	return sar.Attributes{Verb: "impersonate", Version: "v1", Resource: "users", Name: name}
}

func groups(name string) sar.Attributes {
	return sar.Attributes{Verb: "impersonate", Version: "v1", Resource: "groups", Name: name}
}

func uids(name string) sar.Attributes {
	return sar.Attributes{Verb: "impersonate", Group: "authentication.k8s.io", Version: "v1", Resource: "uids", Name: name}
}

func userextras(key, value string) sar.Attributes {
	return sar.Attributes{Verb: "impersonate", Group: "authentication.k8s.io", Version: "v1", Resource: "userextras", Subresource: key, Name: value}
}

func serviceaccounts(ns, name string) sar.Attributes {
	return sar.Attributes{Verb: "impersonate", Version: "v1", Resource: "serviceaccounts", Namespace: ns, Name: name}
}

// wantForbidden is the API server's own 403 for a refused impersonation,
// body spelled out as kube-apiserver writes it.
func wantForbidden(message, details string) *authv3.CheckResponse {
	d := denials["impersonation_denied"]
	resp := d.response()
	resp.GetDeniedResponse().Body = fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":"Forbidden","details":%s,"code":403}`, message, details)
	return resp
}

// raw builds an encode_raw_headers CheckRequest (header_map, one entry per
// line) with alice's token first.
func raw(tok string, lines ...string) *authv3.CheckRequest {
	return rawRequest(append([]string{"authorization", "Bearer " + tok}, lines...)...)
}

// A service-account JWT's shape (header.payload.signature); the content
// does not matter to the proxy, which never parses it.
const saToken = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp3ZWIifQ.c2ln"

func TestCheckNestedImpersonation(t *testing.T) {
	tests := map[string]struct {
		fixture     fixtureOptions
		req         *authv3.CheckRequest
		want        *authv3.CheckResponse
		wantLabel   string
		wantResult  string
		wantReviews []review
		wantVerify  int
	}{
		// Flag off: today's answer, byte for byte, and nothing asked.
		"flag off: Impersonate-User is the old 403": {
			req:  raw(tokAlice, "impersonate-user", "bob"),
			want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header", wantResult: "denied",
		},

		// Allowed.
		"user and group allowed": {
			fixture:   fixtureOptions{allowImpersonation: true},
			req:       raw(tokAlice, "impersonate-user", "bob", "impersonate-group", "devs"),
			want:      wantOK(withAuth(append([]hdr{{"impersonate-user", "bob", setH}}, aliceOriginal...), proxyAuth), nil),
			wantLabel: "impersonated", wantResult: "allowed", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}, {aliceSubject, groups("devs")}},
		},
		"user only": {
			fixture:   fixtureOptions{allowImpersonation: true},
			req:       raw(tokAlice, "Impersonate-User", "bob"),
			want:      wantOK(withAuth(append([]hdr{{"impersonate-user", "bob", setH}}, aliceOriginal...), proxyAuth), nil),
			wantLabel: "impersonated", wantResult: "allowed", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}},
		},
		"uid, two groups and a two-valued extra: one review each": {
			fixture: fixtureOptions{allowImpersonation: true},
			req: raw(tokAlice, "impersonate-user", "bob", "impersonate-group", "devs", "impersonate-group", "system:authenticated",
				"impersonate-uid", "u-1", "impersonate-extra-example.com%2fteam", "a", "impersonate-extra-example.com%2fteam", "b, c"),
			want:      wantOK(withAuth(append([]hdr{{"impersonate-user", "bob", setH}, {"impersonate-uid", "u-1", setH}}, aliceOriginal...), proxyAuth), nil),
			wantLabel: "impersonated", wantResult: "allowed", wantVerify: 1,
			wantReviews: []review{
				{aliceSubject, users("bob")}, {aliceSubject, uids("u-1")},
				{aliceSubject, groups("devs")}, {aliceSubject, groups("system:authenticated")},
				{aliceSubject, userextras("example.com/team", "a")}, {aliceSubject, userextras("example.com/team", "b, c")},
			},
		},
		"service account user is reviewed in its namespace": {
			fixture:   fixtureOptions{allowImpersonation: true},
			req:       raw(tokAlice, "impersonate-user", "system:serviceaccount:team-a:builder"),
			want:      wantOK(withAuth(append([]hdr{{"impersonate-user", "system:serviceaccount:team-a:builder", setH}}, aliceOriginal...), proxyAuth), nil),
			wantLabel: "impersonated", wantResult: "allowed", wantVerify: 1,
			wantReviews: []review{{aliceSubject, serviceaccounts("team-a", "builder")}},
		},
		"not a valid service account name is a user": {
			fixture:   fixtureOptions{allowImpersonation: true},
			req:       raw(tokAlice, "impersonate-user", "system:serviceaccount:Team_A:builder"),
			want:      wantOK(withAuth(append([]hdr{{"impersonate-user", "system:serviceaccount:Team_A:builder", setH}}, aliceOriginal...), proxyAuth), nil),
			wantLabel: "impersonated", wantResult: "allowed", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("system:serviceaccount:Team_A:builder")}},
		},
		"caller without groups and no sessionname": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokBob, "impersonate-user", "alice"),
			want: wantOK(withAuth([]hdr{
				{"impersonate-user", "alice", setH},
				{"impersonate-extra-kube-iam-authz.io%2Foriginal-username", "bob", setH},
				{"impersonate-extra-kube-iam-authz.io%2Foriginal-uid", "aws-iam-authenticator:111122223333:AIDAEXAMPLE", setH},
				{"impersonate-extra-kube-iam-authz.io%2Foriginal-arn", "arn:aws:iam::111122223333:user/bob", setH},
			}, proxyAuth), nil),
			wantLabel: "impersonated", wantResult: "allowed", wantVerify: 1,
			wantReviews: []review{{bobSubject, users("alice")}},
		},
		"no upstream token: authorization removed": {
			fixture:   fixtureOptions{allowImpersonation: true, noUpstream: true},
			req:       raw(tokAlice, "impersonate-user", "bob"),
			want:      wantOK(append([]hdr{{"impersonate-user", "bob", setH}}, aliceOriginal...), nil, "authorization"),
			wantLabel: "impersonated", wantResult: "allowed", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}},
		},
		"merged headers map, single values": {
			fixture:   fixtureOptions{allowImpersonation: true},
			req:       request(map[string]string{"authorization": "Bearer " + tokAlice, "impersonate-user": "bob", "impersonate-group": "devs"}, nil),
			want:      wantOK(withAuth(append([]hdr{{"impersonate-user", "bob", setH}}, aliceOriginal...), proxyAuth), nil),
			wantLabel: "impersonated", wantResult: "allowed", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}, {aliceSubject, groups("devs")}},
		},

		// Refused by a review: the API server's own words.
		"user refused": {
			fixture: fixtureOptions{allowImpersonation: true, reviewer: &fakeReviewer{}},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-group", "devs"),
			want: wantForbidden(`users "bob" is forbidden: User "dev:alice" cannot impersonate resource "users" in API group "" at the cluster scope`,
				`{"name":"bob","kind":"users"}`),
			wantLabel: "impersonation_denied", wantResult: "denied", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}},
		},
		"user allowed, group refused": {
			fixture: fixtureOptions{allowImpersonation: true, reviewer: &fakeReviewer{allow: map[string]bool{"users bob": true, "groups devs": true}}},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-group", "devs", "impersonate-group", "system:masters"),
			want: wantForbidden(`groups "system:masters" is forbidden: User "dev:alice" cannot impersonate resource "groups" in API group "" at the cluster scope`,
				`{"name":"system:masters","kind":"groups"}`),
			wantLabel: "impersonation_denied", wantResult: "denied", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}, {aliceSubject, groups("devs")}, {aliceSubject, groups("system:masters")}},
		},
		"extra refused, with the authorizer's reason": {
			fixture: fixtureOptions{allowImpersonation: true, reviewer: &fakeReviewer{allow: map[string]bool{"users bob": true}, reason: "no RBAC policy matched"}},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-extra-Example.com%2FTeam", "a"),
			want: wantForbidden(`userextras.authentication.k8s.io "a" is forbidden: User "dev:alice" cannot impersonate resource "userextras/example.com/team" in API group "authentication.k8s.io" at the cluster scope: no RBAC policy matched`,
				`{"name":"a","group":"authentication.k8s.io","kind":"userextras"}`),
			wantLabel: "impersonation_denied", wantResult: "denied", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}, {aliceSubject, userextras("example.com/team", "a")}},
		},
		"uid refused": {
			fixture: fixtureOptions{allowImpersonation: true, reviewer: &fakeReviewer{allow: map[string]bool{"users bob": true}}},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-uid", "1234"),
			want: wantForbidden(`uids.authentication.k8s.io "1234" is forbidden: User "dev:alice" cannot impersonate resource "uids" in API group "authentication.k8s.io" at the cluster scope`,
				`{"name":"1234","group":"authentication.k8s.io","kind":"uids"}`),
			wantLabel: "impersonation_denied", wantResult: "denied", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}, {aliceSubject, uids("1234")}},
		},
		"service account refused names its namespace": {
			fixture: fixtureOptions{allowImpersonation: true, reviewer: &fakeReviewer{}},
			req:     raw(tokAlice, "impersonate-user", "system:serviceaccount:kube-system:admin"),
			want: wantForbidden(`serviceaccounts "admin" is forbidden: User "dev:alice" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "kube-system"`,
				`{"name":"admin","kind":"serviceaccounts"}`),
			wantLabel: "impersonation_denied", wantResult: "denied", wantVerify: 1,
			wantReviews: []review{{aliceSubject, serviceaccounts("kube-system", "admin")}},
		},

		// Reviews unavailable: 503 with Retry-After, never an allow.
		"reviewer unavailable": {
			fixture: fixtureOptions{allowImpersonation: true, reviewer: &fakeReviewer{err: fmt.Errorf("%w: connection refused", sar.ErrUnavailable)}},
			req:     raw(tokAlice, "impersonate-user", "bob"),
			want:    wantDenied(t, "sar_unavailable"), wantLabel: "sar_unavailable", wantResult: "denied", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}},
		},
		"reviewer timeout": {
			fixture: fixtureOptions{allowImpersonation: true, reviewer: &fakeReviewer{err: context.DeadlineExceeded}},
			req:     raw(tokAlice, "impersonate-user", "bob"),
			want:    wantDenied(t, "sar_unavailable"), wantLabel: "sar_unavailable", wantResult: "denied", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}},
		},
		"reviewer fails with an unknown error": {
			fixture: fixtureOptions{allowImpersonation: true, reviewer: &fakeReviewer{err: errors.New("boom")}},
			req:     raw(tokAlice, "impersonate-user", "bob"),
			want:    wantDenied(t, "sar_unavailable"), wantLabel: "sar_unavailable", wantResult: "denied", wantVerify: 1,
			wantReviews: []review{{aliceSubject, users("bob")}},
		},

		// The reserved extra: never from a client, however it is spelled.
		"forged original-username": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-extra-kube-iam-authz.io%2foriginal-username", "admin"),
			want:    wantDenied(t, "reserved_extra"), wantLabel: "reserved_extra", wantResult: "denied", wantVerify: 1,
		},
		"forged with upper case and an encoded dot": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob", "Impersonate-Extra-KUBE-IAM-AUTHZ%2eIO%2FOriginal-Arn", "arn:aws:iam::1:root"),
			want:    wantDenied(t, "reserved_extra"), wantLabel: "reserved_extra", wantResult: "denied", wantVerify: 1,
		},
		"forged under any key of the reserved domain": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-extra-kube-iam-authz.io%2fanything", "x"),
			want:    wantDenied(t, "reserved_extra"), wantLabel: "reserved_extra", wantResult: "denied", wantVerify: 1,
		},
		"forged reserved extra without a user": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-extra-kube-iam-authz.io%2foriginal-username", "admin"),
			want:    wantDenied(t, "reserved_extra"), wantLabel: "reserved_extra", wantResult: "denied", wantVerify: 1,
		},

		// Without Impersonate-User: the API server's 400.
		"group without user": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-group", "system:masters"),
			want:    wantDenied(t, "impersonation_without_user"), wantLabel: "impersonation_without_user", wantResult: "denied", wantVerify: 1,
		},
		"uid without user": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-uid", "1"),
			want:    wantDenied(t, "impersonation_without_user"), wantLabel: "impersonation_without_user", wantResult: "denied", wantVerify: 1,
		},
		"extra without user": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-extra-scopes", "view"),
			want:    wantDenied(t, "impersonation_without_user"), wantLabel: "impersonation_without_user", wantResult: "denied", wantVerify: 1,
		},

		// Ambiguous: refused before any review.
		"two user lines": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-user", "admin"),
			want:    wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},
		"two uid lines": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-uid", "1", "impersonate-uid", "2"),
			want:    wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},
		"empty group line": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-group", ""),
			want:    wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},
		"comma in a group": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-group", "devs,system:masters"),
			want:    wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},
		"merged map: comma-joined groups cannot be told apart": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     request(map[string]string{"authorization": "Bearer " + tokAlice, "impersonate-user": "bob", "impersonate-extra-team": "a,b"}, nil),
			want:    wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},
		"control character in the user": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob\x01"),
			want:    wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},
		"unknown Impersonate- header": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-groups", "devs"),
			want:    wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},
		"extra with an empty key": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, "impersonate-user", "bob", "impersonate-extra-", "x"),
			want:    wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},
		"more than 32 attributes": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice, append([]string{"impersonate-user", "bob"}, manyGroups(32)...)...),
			want:    wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},
		"both header representations": {
			fixture: fixtureOptions{allowImpersonation: true},
			req: func() *authv3.CheckRequest {
				r := raw(tokAlice, "impersonate-user", "bob")
				r.Attributes.Request.Http.Headers = map[string]string{"impersonate-group": "system:masters"}
				return r
			}(),
			want: wantDenied(t, "impersonation_invalid"), wantLabel: "impersonation_invalid", wantResult: "denied", wantVerify: 1,
		},

		// The caller is authenticated and mapped first, as the API server
		// authenticates before it impersonates.
		"token STS refuses, with impersonation, is a 401": {
			fixture: fixtureOptions{allowImpersonation: true, verifierErr: fmt.Errorf("verify: %w", sts.ErrUnauthenticated)},
			req:     raw(tokAlice, "impersonate-user", "bob"),
			want:    wantDenied(t, "sts_rejected"), wantLabel: "sts_rejected", wantResult: "denied", wantVerify: 1,
		},
		"no token with impersonation": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     rawRequest("impersonate-user", "bob"),
			want:    wantDenied(t, "no_token"), wantLabel: "no_token", wantResult: "denied",
		},
		"unmapped caller": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokCarol, "impersonate-user", "bob"),
			want:    wantDenied(t, "unmapped"), wantLabel: "unmapped", wantResult: "denied", wantVerify: 1,
		},
		"a caller refused without --as is refused with it": {
			fixture: fixtureOptions{allowImpersonation: true, mapped: map[string]kubeuser.User{
				carol.CanonicalARN: {Username: "carol", Groups: numberedGroups(MaxGroups + 1)},
			}},
			req:  raw(tokCarol, "impersonate-user", "bob"),
			want: wantDenied(t, "too_many_groups"), wantLabel: "too_many_groups", wantResult: "denied", wantVerify: 1,
		},
		"without impersonation the flag changes nothing": {
			fixture: fixtureOptions{allowImpersonation: true},
			req:     raw(tokAlice),
			want:    wantOK(withAuth(aliceHeaders, proxyAuth), aliceGroups), wantLabel: "ok", wantResult: "allowed", wantVerify: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tc.fixture)
			got, err := f.server.Check(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Check returned a gRPC error %v", err)
			}
			assertResponse(t, got, tc.want)
			if f.verifier.calls != tc.wantVerify {
				t.Errorf("verifier calls = %d, want %d", f.verifier.calls, tc.wantVerify)
			}
			var asked []review
			if f.reviewer != nil {
				asked = f.reviewer.reviews()
			}
			if !reflect.DeepEqual(asked, tc.wantReviews) {
				t.Errorf("reviews asked:\n got %+v\nwant %+v", asked, tc.wantReviews)
			}
			if got := testutil.ToFloat64(mustCounter(t, f.registry, tc.wantResult, tc.wantLabel)); got != 1 {
				t.Errorf("checks_total{%s,%s} = %v, want 1", tc.wantResult, tc.wantLabel, got)
			}
		})
	}
}

func manyGroups(n int) []string {
	var out []string
	for i := range n {
		out = append(out, "impersonate-group", fmt.Sprintf("g%d", i))
	}
	return out
}

func TestCheckPassthrough(t *testing.T) {
	// The OK that changes nothing: no header set or removed, no slot.
	passthrough := wantOK(nil, nil)
	tests := map[string]struct {
		fixture    fixtureOptions
		req        *authv3.CheckRequest
		want       *authv3.CheckResponse
		wantLabel  string
		wantVerify int
	}{
		"service account token forwarded untouched": {
			fixture: fixtureOptions{passthrough: true},
			req:     raw(saToken, ":path", "/api"),
			want:    passthrough, wantLabel: "passthrough",
		},
		"with the client's Impersonate-* lines, also untouched": {
			fixture: fixtureOptions{passthrough: true},
			req:     raw(saToken, "impersonate-user", "bob", "impersonate-group", "devs", "impersonate-extra-kube-iam-authz.io%2foriginal-username", "x"),
			want:    passthrough, wantLabel: "passthrough",
		},
		"merged headers map": {
			fixture: fixtureOptions{passthrough: true, allowImpersonation: true},
			req:     request(bearer(saToken), nil),
			want:    passthrough, wantLabel: "passthrough",
		},
		"no bearer upstream (mTLS): never passed through": {
			fixture: fixtureOptions{passthrough: true, noUpstream: true, noValidate: true},
			req:     raw(saToken, "impersonate-user", "admin", "impersonate-group", "system:masters"),
			want:    wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header",
		},
		"no bearer upstream (mTLS), no Impersonate-*: today's 401": {
			fixture: fixtureOptions{passthrough: true, noUpstream: true, noValidate: true},
			req:     raw(saToken),
			want:    wantDenied(t, "not_aws_token"), wantLabel: "not_aws_token",
		},
		"flag off: today's 401": {
			req:  raw(saToken),
			want: wantDenied(t, "not_aws_token"), wantLabel: "not_aws_token",
		},
		"flag off, with Impersonate-User: today's 403": {
			req:  raw(saToken, "impersonate-user", "bob"),
			want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header",
		},
		"an AWS token in the wrong case is not someone else's token": {
			fixture: fixtureOptions{passthrough: true},
			req:     raw("K8S-AWS-V1.YWxpY2U"),
			want:    wantDenied(t, "not_aws_token"), wantLabel: "not_aws_token",
		},
		"AWS tokens are still verified": {
			fixture: fixtureOptions{passthrough: true},
			req:     raw(tokBob),
			want:    wantOK(withAuth(bobHeaders, proxyAuth), nil), wantLabel: "ok", wantVerify: 1,
		},
		"Basic credentials are not passed": {
			fixture: fixtureOptions{passthrough: true},
			req:     rawRequest("authorization", "Basic YWxpY2U6cHc="),
			want:    wantDenied(t, "not_bearer"), wantLabel: "not_bearer",
		},
		"two Authorization lines are not passed": {
			fixture: fixtureOptions{passthrough: true},
			req:     rawRequest("authorization", "Bearer "+saToken, "authorization", "Bearer "+saToken),
			want:    wantDenied(t, "multiple_authorization"), wantLabel: "multiple_authorization",
		},
		"comma-joined Authorization is not passed": {
			fixture: fixtureOptions{passthrough: true},
			req:     rawRequest("authorization", "Bearer "+saToken+",Bearer "+tokAlice),
			want:    wantDenied(t, "multiple_authorization"), wantLabel: "multiple_authorization",
		},
		"empty bearer is not passed": {
			fixture: fixtureOptions{passthrough: true},
			req:     rawRequest("authorization", "Bearer "),
			want:    wantDenied(t, "empty_token"), wantLabel: "empty_token",
		},
		"no Authorization is not passed": {
			fixture: fixtureOptions{passthrough: true},
			req:     rawRequest(":path", "/api"),
			want:    wantDenied(t, "no_token"), wantLabel: "no_token",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tc.fixture)
			got, err := f.server.Check(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Check returned a gRPC error %v", err)
			}
			assertResponse(t, got, tc.want)
			if f.verifier.calls != tc.wantVerify {
				t.Errorf("verifier calls = %d, want %d", f.verifier.calls, tc.wantVerify)
			}
			if f.reviewer != nil && len(f.reviewer.reviews()) != 0 {
				t.Errorf("pass-through asked %d reviews", len(f.reviewer.reviews()))
			}
			result := "denied"
			if tc.want.GetOkResponse() != nil {
				result = "allowed"
			}
			if got := testutil.ToFloat64(mustCounter(t, f.registry, result, tc.wantLabel)); got != 1 {
				t.Errorf("checks_total{%s,%s} = %v, want 1", result, tc.wantLabel, got)
			}
			if strings.Contains(f.logs.String(), saToken) {
				t.Error("the pass-through token was logged")
			}
		})
	}
}

// TestPassthroughNeedsABearerUpstream: New refuses pass-through for a cluster
// that reaches its API server without a bearer token of its own.
func TestPassthroughNeedsABearerUpstream(t *testing.T) {
	m := &fakeMapper{users: map[string]kubeuser.User{}}
	o := Options{
		Verifier: &fakeVerifier{}, Logger: zap.NewNop(), Registerer: prometheus.NewRegistry(), PassthroughNonAWSTokens: true,
		Clusters: []Cluster{{Name: "a", ID: "a", Mapper: m, Upstream: &fakeBearer{tok: "x"}}, {Name: "b", ID: "b", Mapper: m}},
	}
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), `cluster "b"`) {
		t.Fatalf("New = %v, want a refusal naming cluster b", err)
	}
	o.Upstream = &fakeBearer{tok: "y"}
	if _, err := New(o); err != nil {
		t.Fatalf("with a default upstream: %v", err)
	}
}
