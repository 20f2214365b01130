//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// developerRBAC lets the developer role's mapped group read configmaps and pods and
// open exec/attach/port-forward sessions in ns, and nothing else: what the real
// RBAC then allows and refuses is the API server's decision, not the proxy's.
func developerRBAC(ns string) string {
	return fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: developers, namespace: %[1]s}
rules:
  - apiGroups: [""]
    resources: [configmaps, pods]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [pods/exec, pods/attach, pods/portforward]
    verbs: [get, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: developers, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: developers}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: developers}
`, ns)
}

// newNamespace makes a namespace of the shared kube-apiserver for this test alone.
func newNamespace(t *testing.T, k *harness.KubeAPIServer, prefix string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e9)
	k.Apply(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+ns+"}\n")
	return ns
}

// TestKubeWorkloads: what a developer does, through the chain to the real
// kube-apiserver, with the real RBAC deciding. A watch streams events created while
// it is open; a request RBAC refuses gets the API server's own Forbidden (not ours);
// exec, attach and port-forward upgrades (kubectl 1.32 tries WebSocket, a GET, and
// falls back to SPDY, a POST) pass Envoy and the proxy, are authorized for the
// mapped user, and reach the API server's streaming handler. There is no kubelet
// here, so the API server's answer is that the pod has no node: the farthest a
// session can get without one. The audit log shows each request as the proxy's
// service account impersonating developer:alice.
func TestKubeWorkloads(t *testing.T) {
	t.Parallel()
	c := startKubeChain(t, harness.ChainOptions{})
	k := c.Clusters[0].Kube
	dev := harness.KubeUser(harness.IdentityDeveloper, harness.ProducerToken, "default")
	want := wantUserInfo(t, c, harness.IdentityDeveloper)

	ns := newNamespace(t, k, "e2e-work")
	k.Apply(t, developerRBAC(ns))
	// The pod's service account must exist (no controller-manager makes "default").
	k.Apply(t, `apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: `+ns+`}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: before-watch, namespace: `+ns+`}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: `+ns+`}
spec:
  automountServiceAccountToken: false
  containers: [{name: c, image: registry.k8s.io/pause:3.10}]
`)
	// What the kubelet would report: kubectl port-forward and attach refuse a pod
	// that is not Running before they open a session.
	if res := k.Kubectl(t, "patch", "pod", "p", "-n", ns, "--subresource", "status", "--type", "merge", "-p", `{"status":{"phase":"Running"}}`); res.ExitCode != 0 {
		t.Fatalf("patch pod status: %s", res.Stderr)
	}

	// asDeveloper checks the audit events of uri: the proxy's service account
	// impersonating the developer, answered code, with the verbs wanted.
	asDeveloper := func(t *testing.T, uri string, code int32, verbs ...string) {
		t.Helper()
		for _, verb := range verbs {
			events := k.WaitAuditEvents(t, uri, func(e harness.AuditEvent) bool { return e.Verb == verb && c.KubeProxyToken.Authenticated(e) })
			for _, e := range events {
				if e.User.Username != harness.ProxyUsername || e.ImpersonatedUser == nil || e.ImpersonatedUser.Username != want.Username ||
					!slices.Equal(e.ImpersonatedUser.Groups, want.Groups) {
					t.Errorf("audit %s %s: user %q impersonating %+v, want %s impersonating %s %q", verb, uri, e.User.Username, e.ImpersonatedUser, harness.ProxyUsername, want.Username, want.Groups)
				}
				if e.Code() != code {
					t.Errorf("audit %s %s: code %d, want %d", verb, uri, e.Code(), code)
				}
			}
		}
	}

	t.Run("watch streams events", func(t *testing.T) {
		var wg sync.WaitGroup
		var watch harness.KubectlResult
		wg.Add(1)
		go func() {
			defer wg.Done()
			watch = c.Kubectl(t, dev, "get", "--raw", "/api/v1/namespaces/"+ns+"/configmaps?watch=1&timeoutSeconds=5")
		}()
		// Created once the API server has started the watch's response (its
		// ResponseStarted audit event): the event crosses the chain live.
		k.WaitAuditStage(t, harness.AuditResponseStarted, "/api/v1/namespaces/"+ns+"/configmaps?", func(e harness.AuditEvent) bool { return e.Verb == "watch" })
		k.Apply(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: during-watch, namespace: "+ns+"}\n")
		wg.Wait()
		if watch.ExitCode != 0 {
			t.Fatalf("watch: exit %d: %s", watch.ExitCode, watch.Stderr)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(watch.Stdout), "\n") {
			var ev struct {
				Type   string `json:"type"`
				Object struct {
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
				} `json:"object"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("watch line %q: %v", line, err)
			}
			got = append(got, ev.Type+" "+ev.Object.Metadata.Name)
		}
		if want := []string{"ADDED before-watch", "ADDED during-watch"}; !slices.Equal(got, want) {
			t.Errorf("watch events %q, want %q", got, want)
		}
		asDeveloper(t, "/api/v1/namespaces/"+ns+"/configmaps?", 200, "watch")
	})

	t.Run("RBAC refuses, in the API server's words", func(t *testing.T) {
		res := c.Kubectl(t, dev, "get", "secrets", "-n", ns)
		wantErr := `Error from server (Forbidden): secrets is forbidden: User "developer:alice" cannot list resource "secrets" in API group "" in the namespace "` + ns + `"` + "\n"
		if res.ExitCode != 1 || res.Stderr != wantErr {
			t.Errorf("kubectl get secrets: exit %d, stderr %q; want exit 1 and %q", res.ExitCode, res.Stderr, wantErr)
		}
		asDeveloper(t, "/api/v1/namespaces/"+ns+"/secrets?", 403, "list")
	})

	noHost := "pod p does not have a host assigned"
	for _, tc := range []struct {
		args        []string
		subresource string
		wantStderr  string
	}{
		{[]string{"exec", "-n", ns, "p", "--", "true"}, "exec", "Error from server (BadRequest): " + noHost + "\n"},
		{[]string{"attach", "-n", ns, "p"}, "attach", "If you don't see a command prompt, try pressing enter.\nError from server (BadRequest): " + noHost + "\n"},
		{[]string{"port-forward", "-n", ns, "pod/p", "0:80"}, "portforward", "error: error upgrading connection: " + noHost + "\n"},
	} {
		t.Run(tc.subresource, func(t *testing.T) {
			res := c.Kubectl(t, dev, tc.args...)
			if res.ExitCode != 1 || res.Stderr != tc.wantStderr {
				t.Errorf("kubectl %s: exit %d, stderr %q; want exit 1 and %q", strings.Join(tc.args, " "), res.ExitCode, res.Stderr, tc.wantStderr)
			}
			// get: the WebSocket upgrade; create: the SPDY one.
			asDeveloper(t, "/api/v1/namespaces/"+ns+"/pods/p/"+tc.subresource+"?", 400, "get", "create")
		})
	}
}
