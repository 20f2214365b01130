//go:build integration

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// The identities of these tests, mapped to names no other test of the shared
// kube-apiserver binds RBAC to.
const (
	asAdmin        = "kia-as-admin"
	asImpersonator = "kia-as-impersonators"
	asDeveloper    = "kia-as-developer:alice"
	asNamespace    = "kia-as"
	asAdminARN     = "arn:aws:iam::111122223333:user/admin"
)

// asMapping maps the chain's admin to a group that may impersonate bob and devs
// (asRBAC) and the developer to one that may impersonate nobody.
var asMapping = []byte(`mapRoles: |
  - rolearn: arn:aws:iam::111122223333:role/developer
    username: kia-as-developer:{{SessionName}}
    groups: [kia-as-developers]
mapUsers: |
  - userarn: arn:aws:iam::111122223333:user/admin
    username: kia-as-admin
    groups: [kia-as-impersonators]
`)

// asRBAC: the impersonators may impersonate the user bob and the group devs, and
// nothing else; a service account for the pass-through case.
const asRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kia-as-impersonate-bob
rules:
  - apiGroups: [""]
    resources: ["users"]
    resourceNames: ["bob"]
    verbs: ["impersonate"]
  - apiGroups: [""]
    resources: ["groups"]
    resourceNames: ["devs"]
    verbs: ["impersonate"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kia-as-impersonate-bob
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kia-as-impersonate-bob
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: kia-as-impersonators
---
apiVersion: v1
kind: Namespace
metadata:
  name: kia-as
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: kia-as
`

// proxyKubeconfig writes the kubeconfig serve uses for its SubjectAccessReviews:
// the real kube-apiserver, its CA, and a TokenRequest token of the proxy's
// service account (what the in-cluster config would carry).
func proxyKubeconfig(t *testing.T, k *harness.KubeAPIServer) string {
	t.Helper()
	tok, _, err := k.RequestToken(harness.ProxyNamespace, harness.ProxyServiceAccount, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return k.ProxyKubeconfig(t, tokenFile)
}

// asServeArgs turn both features on, with serve asking the real kube-apiserver.
func asServeArgs(t *testing.T, k *harness.KubeAPIServer) []string {
	return []string{"--allow-impersonation", "--kubeconfig", proxyKubeconfig(t, k), "--passthrough-non-aws-tokens"}
}

// wantOriginal is the reserved extras naming the admin as the original caller.
func wantOriginal(t *testing.T, c *harness.Chain) map[string][]string {
	admin := c.Identity(t, harness.IdentityAdmin)
	return map[string][]string{
		"kube-iam-authz.io/original-username": {asAdmin},
		"kube-iam-authz.io/original-uid":      {"aws-iam-authenticator:111122223333:" + admin.UserID},
		"kube-iam-authz.io/original-groups":   {asImpersonator},
		"kube-iam-authz.io/original-arn":      {asAdminARN},
	}
}

// TestKubectlAs is kubectl --as through the proxy against the real kube-apiserver
// v1.37 with RBAC: every decision is the API server's RBAC answering the proxy's
// SubjectAccessReviews for the mapped AWS caller, and what the proxy passes on is
// seen in `kubectl auth whoami` and in the audit log.
//
// The RBAC is applied once; then two chains share it: this one, on the real
// kube-apiserver, and the one of testKubectlAsUpstreamLines.
func TestKubectlAs(t *testing.T) {
	t.Parallel()
	k := kube.Get(t)
	k.Apply(t, asRBAC)
	t.Run("kube-apiserver", func(t *testing.T) {
		t.Parallel()
		testKubectlAsKube(t, k)
	})
	t.Run("upstream lines", func(t *testing.T) {
		t.Parallel()
		testKubectlAsUpstreamLines(t, k)
	})
}

func testKubectlAsKube(t *testing.T, k *harness.KubeAPIServer) {
	clusters := harness.SidecarClusters()
	clusters[0].Mapping = asMapping
	c := startKubeChain(t, harness.ChainOptions{Clusters: clusters, ServeArgs: asServeArgs(t, k)})
	admin := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default")
	developer := harness.KubeUser(harness.IdentityDeveloper, harness.ProducerAWSCLI, "default")

	t.Run("admin as bob in devs", func(t *testing.T) {
		since := time.Now().Add(-time.Second)
		res := c.Kubectl(t, admin, "--as", "bob", "--as-group", "devs", "auth", "whoami", "-o", "json")
		got := parseWhoami(t, res)
		want := userInfo{Username: "bob", Groups: []string{"devs", "system:authenticated"}, Extra: wantOriginal(t, c)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("kubectl --as bob --as-group devs auth whoami:\n got %+v\nwant %+v", got, want)
		}
		// The audit log: the proxy's service account, acting as bob in devs, with
		// the AWS caller in the reserved extras.
		events := k.WaitAuditEvents(t, whoamiPath, func(e harness.AuditEvent) bool {
			return e.Verb == "create" && e.RequestReceivedTimestamp.After(since) &&
				e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "bob"
		})
		for _, e := range events {
			if e.User.Username != harness.ProxyUsername {
				t.Errorf("audit: authenticated as %q, want the proxy %s", e.User.Username, harness.ProxyUsername)
			}
			gotUser := userInfo{Username: e.ImpersonatedUser.Username, UID: e.ImpersonatedUser.UID, Groups: e.ImpersonatedUser.Groups, Extra: map[string][]string{}}
			for k, v := range e.ImpersonatedUser.Extra {
				gotUser.Extra[k] = v
			}
			if !reflect.DeepEqual(gotUser, want) {
				t.Errorf("audit impersonatedUser:\n got %+v\nwant %+v", gotUser, want)
			}
			if e.Code() != http.StatusCreated {
				t.Errorf("audit: response %d, want 201", e.Code())
			}
		}
		// The proxy asked RBAC about the mapped caller, as itself.
		k.WaitAuditEvents(t, "/apis/authorization.k8s.io/v1/subjectaccessreviews", func(e harness.AuditEvent) bool {
			return e.Verb == "create" && e.RequestReceivedTimestamp.After(since) && e.User.Username == harness.ProxyUsername
		})
	})

	// kubectl auth whoami hides a 403's message; kubectl get --raw prints the
	// Status message the way any kubectl command does.
	refusals := map[string]struct {
		user, message string
		args          []string
	}{
		"a developer without the right": {
			user: developer, args: []string{"--as", "bob"},
			message: `Error from server (Forbidden): users "bob" is forbidden: User "kia-as-developer:alice" cannot impersonate resource "users" in API group "" at the cluster scope`,
		},
		"a group the admin may not impersonate, with a user it may": {
			user: admin, args: []string{"--as", "bob", "--as-group", "devs", "--as-group", "system:masters"},
			message: `Error from server (Forbidden): groups "system:masters" is forbidden: User "kia-as-admin" cannot impersonate resource "groups" in API group "" at the cluster scope`,
		},
		"a user the admin may not impersonate": {
			user: admin, args: []string{"--as", "alice"},
			message: `Error from server (Forbidden): users "alice" is forbidden: User "kia-as-admin" cannot impersonate resource "users" in API group "" at the cluster scope`,
		},
	}
	for name, tc := range refusals {
		t.Run(name, func(t *testing.T) {
			since := time.Now()
			args := append(append([]string{}, tc.args...), "get", "--raw", "/version")
			res := c.Kubectl(t, tc.user, args...)
			if res.ExitCode == 0 || !strings.Contains(res.Stderr, tc.message) {
				t.Errorf("kubectl %s: exit %d\n%s\nwant the message %q", strings.Join(args, " "), res.ExitCode, res.Stderr, tc.message)
			}
			assertNotImpersonated(t, k, since)
		})
	}

	// What kubectl 1.32 cannot send (--as-user-extra is newer; a group without a
	// user it refuses itself), sent with the admin's own token.
	raw := map[string]struct {
		headers  map[string]string
		wantCode int
		message  string
	}{
		"a forged reserved extra": {
			headers:  map[string]string{"Impersonate-User": "bob", "Impersonate-Extra-Kube-Iam-Authz.Io%2Foriginal-Username": "root"},
			wantCode: http.StatusForbidden, message: "Forbidden: Impersonate-Extra keys under kube-iam-authz.io/ are set only by this proxy",
		},
		"a group without a user": {
			headers:  map[string]string{"Impersonate-Group": "devs"},
			wantCode: http.StatusBadRequest, message: "Bad request: Impersonate-Group, Impersonate-Uid and Impersonate-Extra-* need Impersonate-User",
		},
	}
	for name, tc := range raw {
		t.Run(name, func(t *testing.T) {
			since := time.Now()
			code, status := postWhoami(t, c, adminToken(t, c, admin), tc.headers)
			if code != tc.wantCode || status.Message != tc.message {
				t.Errorf("got %d %q, want %d %q", code, status.Message, tc.wantCode, tc.message)
			}
			assertNotImpersonated(t, k, since)
		})
	}

	t.Run("a service account token passes through", func(t *testing.T) {
		tok, _, err := k.RequestToken(asNamespace, "web", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		since := time.Now().Add(-time.Second)
		res := c.KubectlWithToken(t, "default", tok, "auth", "whoami", "-o", "json")
		got := parseWhoami(t, res)
		if got.Username != "system:serviceaccount:kia-as:web" ||
			!slices.Equal(got.Groups, []string{"system:serviceaccounts", "system:serviceaccounts:kia-as", "system:authenticated"}) {
			t.Errorf("whoami with a service account token: %+v", got)
		}
		events := k.WaitAuditEvents(t, whoamiPath, func(e harness.AuditEvent) bool {
			return e.RequestReceivedTimestamp.After(since) && e.User.Username == "system:serviceaccount:kia-as:web"
		})
		for _, e := range events {
			if e.ImpersonatedUser != nil {
				t.Errorf("audit: a pass-through request was impersonated as %+v", e.ImpersonatedUser)
			}
		}
		// Its own --as goes to the API server untouched, which refuses it for the
		// service account (it has no impersonate rights). Kubernetes 1.37 runs the
		// constrained impersonation filter, which names the first mode it tried
		// (impersonate-on:user-info) rather than the legacy check.
		res = c.KubectlWithToken(t, "default", tok, "--as", "bob", "get", "--raw", "/version")
		want := `Error from server (Forbidden): forbidden: User "system:serviceaccount:kia-as:web" cannot impersonate`
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, want) {
			t.Errorf("service account --as bob: exit %d, stderr %s; want the API server's refusal %q", res.ExitCode, res.Stderr, want)
		}
	})
}

// parseWhoami decodes `kubectl auth whoami -o json`, failing unless it succeeded.
func parseWhoami(t *testing.T, res harness.KubectlResult) userInfo {
	t.Helper()
	if res.ExitCode != 0 {
		t.Fatalf("kubectl auth whoami: exit %d\nstderr: %s", res.ExitCode, res.Stderr)
	}
	got, err := decodeWhoami(res.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// testKubectlAsUpstreamLines: the same decisions (serve asks the real
// kube-apiserver's RBAC), with the API-server stand-in as the upstream so that
// every case asserts the whole set of identity header lines that arrived: the
// requested user, the client's group lines exactly once each, the reserved extras
// and the proxy's credential, or nothing at all when refused or passed through.
func testKubectlAsUpstreamLines(t *testing.T, k *harness.KubeAPIServer) {
	clusters := harness.SidecarClusters()
	clusters[0].Mapping = asMapping
	c := harness.StartChain(t, harness.ChainOptions{Clusters: clusters, ServeArgs: asServeArgs(t, k)})
	admin := harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default")
	developer := harness.KubeUser(harness.IdentityDeveloper, harness.ProducerToken, "default")
	adminID := c.Identity(t, harness.IdentityAdmin)

	line := func(name, value string) string { return textproto.CanonicalMIMEHeaderKey(name) + ": " + value }
	original := []string{
		line("impersonate-extra-kube-iam-authz.io%2foriginal-username", asAdmin),
		line("impersonate-extra-kube-iam-authz.io%2foriginal-uid", "aws-iam-authenticator:111122223333:"+adminID.UserID),
		line("impersonate-extra-kube-iam-authz.io%2foriginal-groups", asImpersonator),
		line("impersonate-extra-kube-iam-authz.io%2foriginal-arn", asAdminARN),
	}
	saTok, _, err := k.RequestToken(asNamespace, "web", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	tests := map[string]struct {
		user      string // kubeconfig user; "" uses saTok
		args      []string
		headers   map[string]string // sent directly with user's token instead of kubectl
		wantLines []string          // nil: nothing reaches the upstream
	}{
		"admin as bob in devs": {
			user: admin, args: []string{"--as", "bob", "--as-group", "devs"},
			wantLines: append([]string{
				"Authorization: " + harness.RedactedBearer(c.ProxyToken(t)),
				"Impersonate-Group: devs",
				"Impersonate-User: bob",
			}, original...),
		},
		"developer as bob: refused": {user: developer, args: []string{"--as", "bob"}},
		"admin as bob in system:masters: refused": {
			user: admin, args: []string{"--as", "bob", "--as-group", "devs", "--as-group", "system:masters"},
		},
		"forged reserved extra: refused": {
			user: admin, headers: map[string]string{"Impersonate-User": "bob", "Impersonate-Extra-Kube-Iam-Authz.Io%2Foriginal-Arn": "x"},
		},
		"group without user: refused": {user: admin, headers: map[string]string{"Impersonate-Group": "devs"}},
		"service account token with its own --as: untouched": {
			args: []string{"--as", "bob", "--as-group", "devs"},
			wantLines: []string{
				"Authorization: " + harness.RedactedBearer(saTok),
				"Impersonate-Group: devs",
				"Impersonate-User: bob",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c.ResetRecorded(t)
			args := append(append([]string{}, tc.args...), "auth", "whoami", "-o", "json")
			var res harness.KubectlResult
			switch {
			case tc.headers != nil:
				tok := adminToken(t, c, tc.user)
				c.ResetRecorded(t)
				if code, _ := postWhoami(t, c, tok, tc.headers); code < 400 {
					res.ExitCode = 0
				} else {
					res.ExitCode = 1
				}
			case tc.user == "":
				res = c.KubectlWithToken(t, "default", saTok, args...)
			default:
				res = c.Kubectl(t, tc.user, args...)
			}
			recs := c.Recorded(t)
			if tc.wantLines == nil {
				if res.ExitCode == 0 {
					t.Errorf("%v %v succeeded", args, tc.headers)
				}
				if len(recs) != 0 {
					t.Errorf("a refused request reached the upstream: %s", describe(recs))
				}
				return
			}
			rec := onlyRequest(t, recs, http.MethodPost, whoamiPath)
			want := append([]string(nil), tc.wantLines...)
			sort.SliceStable(want, func(i, j int) bool {
				ni, _, _ := strings.Cut(want[i], ":")
				nj, _, _ := strings.Cut(want[j], ":")
				return ni < nj
			})
			if got := identityLines(rec); !reflect.DeepEqual(got, want) {
				t.Errorf("identity header lines received upstream:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
		})
	}
}

// decodeWhoami decodes `kubectl auth whoami -o json` output.
func decodeWhoami(out string) (userInfo, error) {
	var review struct {
		Kind   string `json:"kind"`
		Status struct {
			UserInfo userInfo `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &review); err != nil || review.Kind != "SelfSubjectReview" {
		return userInfo{}, fmt.Errorf("kubectl auth whoami printed no SelfSubjectReview (%v):\n%s", err, out)
	}
	return review.Status.UserInfo, nil
}

// assertNotImpersonated: no whoami or /version request acting as bob or alice
// reached the API server since.
func assertNotImpersonated(t *testing.T, k *harness.KubeAPIServer, since time.Time) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // the audit log is written after the response
	for _, e := range k.AuditEvents(t) {
		if e.RequestReceivedTimestamp.After(since) && e.ImpersonatedUser != nil &&
			(e.ImpersonatedUser.Username == "bob" || e.ImpersonatedUser.Username == "alice") {
			t.Errorf("audit: a refused impersonation reached the API server: %s as %+v", e.RequestURI, e.ImpersonatedUser)
		}
	}
}

// adminToken returns a token the admin's exec plugin issued (running kubectl
// once if it has issued none yet).
func adminToken(t *testing.T, c *harness.Chain, user string) string {
	t.Helper()
	toks := c.IssuedTokens(t, user)
	if len(toks) == 0 {
		c.Kubectl(t, user, "get", "--raw", "/version")
		toks = c.IssuedTokens(t, user)
	}
	if len(toks) == 0 {
		t.Fatalf("no token issued for %s", user)
	}
	return toks[len(toks)-1]
}

// postWhoami sends a SelfSubjectReview through Envoy with tok and extra headers
// and returns the status code and the Status body of a refusal.
func postWhoami(t *testing.T, c *harness.Chain, tok string, headers map[string]string) (int, metav1.Status) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: c.CA.Pool(), ServerName: "127.0.0.1"},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "https://"+c.Clusters[0].Addr+whoamiPath,
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header[k] = []string{v}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	c.Canary.Record("whoami response", string(body))
	var st metav1.Status
	_ = json.Unmarshal(body, &st)
	return resp.StatusCode, st
}
