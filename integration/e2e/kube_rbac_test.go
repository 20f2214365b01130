//go:build integration

package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
	"github.com/kube-iam-authz/kube-iam-authz/mapping/configmap"
)

// grant is one RBAC permission: verb on group/resource (resource may carry a
// "/subresource"), for any name.
type grant struct{ verb, group, resource string }

func (g grant) String() string {
	if g.group == "" {
		return g.verb + " " + g.resource
	}
	return g.verb + " " + g.resource + "." + g.group
}

// impersonationAttributes is what the API server's impersonation filter asks the
// authorizer for one Impersonate-* header the product sends (k8s.io/apiserver
// pkg/endpoints/filters/impersonation.go): users and groups in the core group,
// uids and userextras/<key> in authentication.k8s.io, where key is the header
// suffix lower-cased and path-unescaped, and the name is the header's value.
func impersonationAttributes(t *testing.T, h impersonate.Header) (grant, string) {
	t.Helper()
	switch name := strings.ToLower(h.Name); {
	case name == impersonate.HeaderUser:
		return grant{"impersonate", "", "users"}, h.Value
	case name == impersonate.HeaderGroup:
		return grant{"impersonate", "", "groups"}, h.Value
	case name == impersonate.HeaderUID:
		return grant{"impersonate", "authentication.k8s.io", "uids"}, h.Value
	case strings.HasPrefix(name, impersonate.HeaderExtraPrefix):
		key, err := url.PathUnescape(strings.TrimPrefix(name, impersonate.HeaderExtraPrefix))
		if err != nil {
			t.Fatalf("extra header %q: %v", h.Name, err)
		}
		return grant{"impersonate", "authentication.k8s.io", "userextras/" + key}, h.Value
	}
	// A header kind this test does not know is a header the RBAC has never been
	// checked for.
	t.Fatalf("the product sends %q, which this test cannot map to an RBAC check: teach it", h.Name)
	return grant{}, ""
}

// productGrants derives from the code what the proxy must be allowed to do: the
// headers impersonate.Headers (what authz/check sends for every allowed request)
// renders for an identity with every field set, mapped to a user with groups, and
// the headers impersonate.NestedHeaders sets for an allowed `kubectl --as` (the
// requested user and uid and the reserved original-* extras), each turned into the
// authorizer's question; plus creating SubjectAccessReviews, which authz/sar does
// to authorize a `kubectl --as` (serve --allow-impersonation). A new header or
// extra key the product starts sending shows up here, and the test fails unless
// the RBAC allows it.
func productGrants(t *testing.T) (map[grant]bool, []authzv1.ResourceAttributes) {
	t.Helper()
	id := identity.Identity{
		ARN:          "arn:aws:sts::111122223333:assumed-role/developer/alice",
		CanonicalARN: "arn:aws:iam::111122223333:role/developer",
		AccountID:    "111122223333",
		UserID:       "AROAEXAMPLEROLEID0001:alice",
		PrincipalID:  "AROAEXAMPLEROLEID0001",
		SessionName:  "alice",
		AccessKeyID:  "ASIAEXAMPLEKEY000001",
	}
	for _, e := range impersonate.Extras(id) {
		if e.Value == "" {
			t.Fatalf("identity leaves extra %q empty: every key the product can send must be checked", e.Key)
		}
	}
	caller := kubeuser.User{Username: "developer:alice", Groups: []string{"developers", "system:masters"}}
	headers, err := impersonate.Headers(id, caller)
	if err != nil {
		t.Fatal(err)
	}
	nested, err := impersonate.NestedHeaders(id, caller, impersonate.Requested{User: "someone-else", UID: "uid-of-someone-else"})
	if err != nil {
		t.Fatal(err)
	}
	// authz/sar's SubjectAccessReviews (create, cluster-wide).
	grants := map[grant]bool{{"create", "authorization.k8s.io", "subjectaccessreviews"}: true}
	attrs := []authzv1.ResourceAttributes{{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}}
	extras := map[string]bool{}
	for _, h := range append(headers, nested...) {
		g, name := impersonationAttributes(t, h)
		grants[g] = true
		resource, sub, _ := strings.Cut(g.resource, "/")
		if sub != "" {
			extras[sub] = true
		}
		attrs = append(attrs, authzv1.ResourceAttributes{Verb: g.verb, Group: g.group, Resource: resource, Subresource: sub, Name: name})
	}
	// The keys the headers carry are the keys the product declares (the manifests'
	// unit test compares rbac.yaml with the same lists).
	declared := append(impersonate.ExtraKeys(), impersonate.ReservedExtraKeys()...)
	for _, k := range declared {
		if !extras[k] {
			t.Errorf("impersonate declares extra key %q, which Headers/NestedHeaders did not send", k)
		}
	}
	if len(extras) != len(declared) {
		t.Errorf("Headers/NestedHeaders sent extras %v, impersonate declares %v", extras, declared)
	}
	return grants, attrs
}

// awsAuthGrants derives from the code what the proxy must be allowed in
// kube-system for serve --mapping-configmap=kube-system/aws-auth: the verbs
// mapping/configmap's Source uses (configmap.RequiredVerbs), on that name only.
func awsAuthGrants() (map[grant]bool, []authzv1.ResourceAttributes) {
	grants := map[grant]bool{}
	var attrs []authzv1.ResourceAttributes
	for _, v := range configmap.RequiredVerbs() {
		grants[grant{v, "", "configmaps[aws-auth]"}] = true
		attrs = append(attrs, authzv1.ResourceAttributes{Verb: v, Resource: "configmaps", Namespace: "kube-system", Name: "aws-auth"})
	}
	return grants, attrs
}

// TestProxyRBACIsLeastPrivilege applies examples/kubernetes (the fixture applies
// namespace.yaml, serviceaccount.yaml and rbac.yaml at start) to the real
// kube-apiserver and proves that the proxy's service account may impersonate
// exactly what the product sends (and create the SubjectAccessReviews that
// authorize a kubectl --as), read the one ConfigMap kube-system/aws-auth the way
// serve --mapping-configmap does, and nothing else.
func TestProxyRBACIsLeastPrivilege(t *testing.T) {
	t.Parallel()
	k := kube.Get(t)
	proxyGroups := []string{"system:serviceaccounts", "system:serviceaccounts:" + harness.ProxyNamespace, "system:authenticated"}
	grants, attrs := productGrants(t)
	cmGrants, cmAttrs := awsAuthGrants()
	attrs = append(attrs, cmAttrs...)

	t.Run("allowed: every header the product sends", func(t *testing.T) {
		for _, a := range attrs {
			if ok, why := subjectAccessReview(t, k, harness.ProxyUsername, proxyGroups, a); !ok {
				t.Errorf("proxy may not %s %s/%s %q: %s", a.Verb, a.Resource, a.Subresource, a.Name, why)
			}
		}
	})

	// What RBAC would ask if the proxy ever tried more: another service account
	// (a mapping must never make the proxy act as one), a node, an extra key the
	// product does not send, the constrained-impersonation verbs (Kubernetes 1.36+),
	// and anything that is not impersonation.
	denied := map[string]authzv1.ResourceAttributes{
		"impersonate a service account":           {Verb: "impersonate", Resource: "serviceaccounts", Namespace: "kube-system", Name: "default"},
		"impersonate an extra key not sent":       {Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: "scopes", Name: "x"},
		"impersonate the credential-id extra":     {Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: "authentication.kubernetes.io/credential-id", Name: "x"},
		"constrained: impersonate:serviceaccount": {Verb: "impersonate:serviceaccount", Resource: "serviceaccounts", Namespace: "kube-system", Name: "default"},
		"constrained: impersonate:arbitrary-node": {Verb: "impersonate:arbitrary-node", Resource: "nodes", Name: "node-1"},
		"constrained: impersonate:user-info":      {Verb: "impersonate:user-info", Resource: "users", Name: "admin"},
		"read secrets":                            {Verb: "get", Resource: "secrets", Namespace: "kube-system", Name: "any"},
		"read another ConfigMap of kube-system":   {Verb: "get", Resource: "configmaps", Namespace: "kube-system", Name: "kube-proxy"},
		"list every ConfigMap of kube-system":     {Verb: "list", Resource: "configmaps", Namespace: "kube-system"},
		"change the aws-auth ConfigMap":           {Verb: "update", Resource: "configmaps", Namespace: "kube-system", Name: "aws-auth"},
		"read an aws-auth of another namespace":   {Verb: "get", Resource: "configmaps", Namespace: "kube-public", Name: "aws-auth"},
		"create pods":                             {Verb: "create", Resource: "pods", Namespace: harness.ProxyNamespace},
		"escalate RBAC":                           {Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
	}
	for name, a := range denied {
		t.Run("denied: "+name, func(t *testing.T) {
			if ok, why := subjectAccessReview(t, k, harness.ProxyUsername, proxyGroups, a); ok {
				t.Errorf("proxy may %s %s/%s in %q: %s", a.Verb, a.Resource, a.Subresource, a.Namespace, why)
			}
		})
	}

	// The same through kubectl, the way an operator checks it.
	t.Run("kubectl auth can-i", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"impersonate", "users/admin"}, "yes"},
			{[]string{"impersonate", "groups/system:masters"}, "yes"},
			{[]string{"impersonate", "serviceaccounts/default", "-n", "kube-system"}, "no"},
			{[]string{"impersonate:arbitrary-node", "nodes/node-1"}, "no"},
			{[]string{"watch", "configmaps/aws-auth", "-n", "kube-system"}, "yes"},
			{[]string{"get", "configmaps/kube-proxy", "-n", "kube-system"}, "no"},
		} {
			args := append([]string{"auth", "can-i", "--as", harness.ProxyUsername}, tc.args...)
			res := k.Kubectl(t, args...)
			if got := strings.TrimSpace(res.Stdout); got != tc.want {
				t.Errorf("kubectl %s: %q (exit %d, %s), want %q", strings.Join(args, " "), got, res.ExitCode, res.Stderr, tc.want)
			}
		}
	})

	// Nothing else, exhaustively: every rule the API server says the proxy has,
	// minus what any service account of its namespace has (discovery, self
	// reviews), is exactly the product's grants.
	t.Run("rules: exactly the product's grants", func(t *testing.T) {
		const control = "kia-rbac-control"
		k.Apply(t, "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: "+control+"\n  namespace: "+harness.ProxyNamespace+"\n")
		for ns, want := range map[string]map[grant]bool{harness.ProxyNamespace: grants, "kube-system": cmGrants} {
			proxy := rulesOf(t, k, harness.ProxyUsername, ns)
			baseline := rulesOf(t, k, "system:serviceaccount:"+harness.ProxyNamespace+":"+control, ns)
			got := map[grant]bool{}
			for g := range proxy {
				if !baseline[g] {
					got[g] = true
				}
			}
			// Cluster-wide rules show in every namespace's review.
			if ns == "kube-system" {
				for g := range grants {
					delete(got, g)
				}
			}
			if !mapsEqual(got, want) {
				t.Errorf("in %s, the proxy's rules beyond any service account's:\n got %v\nwant %v (what impersonate.Headers sends and configmap.RequiredVerbs reads)", ns, sortedGrants(got), sortedGrants(want))
			}
		}
	})
}

// subjectAccessReview asks the API server whether user (in groups) may do a.
func subjectAccessReview(t *testing.T, k *harness.KubeAPIServer, user string, groups []string, a authzv1.ResourceAttributes) (bool, string) {
	t.Helper()
	review := authzv1.SubjectAccessReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "authorization.k8s.io/v1", Kind: "SubjectAccessReview"},
		Spec:     authzv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &a},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	code, out := k.Do(t, http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
	if code != http.StatusCreated {
		t.Fatalf("SubjectAccessReview: %d: %s", code, out)
	}
	if err := json.Unmarshal(out, &review); err != nil {
		t.Fatal(err)
	}
	return review.Status.Allowed, review.Status.Reason + review.Status.EvaluationError
}

// rulesOf returns every resource rule of user (a service account) in the proxy's
// namespace, cluster-wide rules included, expanded to one grant per verb, group and
// resource; the admin asks as the user (SelfSubjectRulesReview via impersonation).
// A rule limited to resourceNames fails the test: these roles have none.
func rulesOf(t *testing.T, k *harness.KubeAPIServer, user, namespace string) map[grant]bool {
	t.Helper()
	review := authzv1.SelfSubjectRulesReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "authorization.k8s.io/v1", Kind: "SelfSubjectRulesReview"},
		Spec:     authzv1.SelfSubjectRulesReviewSpec{Namespace: namespace},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	code, out := k.DoAs(t, user, http.MethodPost, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", body)
	if code != http.StatusCreated {
		t.Fatalf("SelfSubjectRulesReview as %s: %d: %s", user, code, out)
	}
	if err := json.Unmarshal(out, &review); err != nil {
		t.Fatal(err)
	}
	if review.Status.Incomplete {
		t.Fatalf("SelfSubjectRulesReview as %s is incomplete: %s", user, review.Status.EvaluationError)
	}
	got := map[grant]bool{}
	for _, r := range review.Status.ResourceRules {
		if len(r.ResourceNames) > 0 {
			// Rules on named objects (e.g. a service account's own token) are not
			// what this test compares; they must be the same for both accounts.
			for _, v := range r.Verbs {
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						got[grant{v, g, res + "[" + strings.Join(r.ResourceNames, ",") + "]"}] = true
					}
				}
			}
			continue
		}
		for _, v := range r.Verbs {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					got[grant{v, g, res}] = true
				}
			}
		}
	}
	return got
}

func mapsEqual(a, b map[grant]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for g := range a {
		if !b[g] {
			return false
		}
	}
	return true
}

func sortedGrants(m map[grant]bool) []string {
	var out []string
	for g := range m {
		out = append(out, g.String())
	}
	sort.Strings(out)
	return slices.Compact(out)
}
