//go:build integration

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// awsAuthRef is the cluster's own mapping ConfigMap, the one EKS and
// aws-iam-authenticator read and examples/kubernetes/rbac.yaml lets the proxy
// get, list and watch. Only this test touches it on the shared kube-apiserver.
const awsAuthRef = "kube-system/aws-auth"

// awsAuthConfigMap is kube-system/aws-auth with mapUsers entries (IAM user name
// → Kubernetes username) for the accounts of the default identities.
func awsAuthConfigMap(users map[string]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapUsers: |\n")
	for _, arn := range slices.Sorted(maps.Keys(users)) {
		fmt.Fprintf(&b, "    - userarn: %s\n      username: %s\n      groups: [kia-cm-readers]\n", arn, users[arn])
	}
	return b.String()
}

const (
	adminARN   = "arn:aws:iam::111122223333:user/admin"
	malloryARN = "arn:aws:iam::999988887777:user/mallory"
)

// TestMappingFromClusterConfigMap: serve --mapping-configmap=kube-system/aws-auth
// against the real kube-apiserver, as the proxy's service account with exactly
// the shipped RBAC (get/list/watch on that one name) and its rotating TokenRequest
// token. While Checks run without pause, a user is added and removed, the
// ConfigMap is broken, deleted and re-created. Each edit is in effect within
// seconds (the measured delays are logged); a broken or deleted ConfigMap keeps the
// last good mapping, and /readyz, the metrics and the log say so; no Check of the
// user nobody edits ever fails.
func TestMappingFromClusterConfigMap(t *testing.T) {
	t.Parallel()
	k := kube.Get(t)
	k.Apply(t, awsAuthConfigMap(map[string]string{adminARN: "kia-cm-admin"}))
	t.Cleanup(func() { k.Kubectl(t, "delete", "configmap", "-n", "kube-system", "aws-auth", "--ignore-not-found") })

	c := startKubeChain(t, harness.ChainOptions{MappingConfigMap: awsAuthRef})
	admin := adminToken(t, c, harness.KubeUser(harness.IdentityAdmin, harness.ProducerToken, "default"))
	mallory := adminToken(t, c, harness.KubeUser(harness.IdentityUnmapped, harness.ProducerToken, "default"))
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: c.CA.Pool(), ServerName: "127.0.0.1"},
	}}
	t.Cleanup(client.CloseIdleConnections)
	who := func(tok string) (int, string) { return whoamiUsername(t, c, client, tok) }

	if code, name := who(admin); code != http.StatusCreated || name != "kia-cm-admin" {
		t.Fatalf("admin at start: %d %q, want 201 kia-cm-admin (mapped by the ConfigMap)", code, name)
	}
	if code, _ := who(mallory); code != http.StatusForbidden {
		t.Fatalf("mallory at start: %d, want 403 (in no mapping)", code)
	}

	// The admin, whom no step changes, is checked without pause throughout.
	// A wrong answer fails the test; a request the loaded test machine did not
	// answer within the client timeout is counted apart (it is not the mapping).
	var checks, failures, unanswered atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			code, name := whoamiUsernameNoFail(c, client, admin)
			checks.Add(1)
			if code == 0 {
				unanswered.Add(1)
				continue
			}
			if code != http.StatusCreated || name != "kia-cm-admin" {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %q", code, name))
			}
		}
	}()
	stopChecks := func() {
		close(stop)
		wg.Wait()
	}
	defer func() {
		select {
		case <-stop:
		default:
			stopChecks()
		}
	}()

	// inEffect applies manifest and measures how long until cond holds for
	// mallory's Checks.
	inEffect := func(what, manifest string, cond func(code int, name string) bool) {
		t.Helper()
		start := time.Now()
		if manifest != "" {
			k.Apply(t, manifest)
		}
		applied := time.Now()
		var code int
		var name string
		for time.Since(applied) < 15*time.Second {
			if code, name = who(mallory); cond(code, name) {
				t.Logf("%s: in effect %s after the API server accepted it (%s including kubectl apply)",
					what, time.Since(applied).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: not in effect within 15s; mallory gets %d %q", what, code, name)
	}
	mapped := func(code int, name string) bool { return code == http.StatusCreated && name == "kia-cm-mallory" }
	unmapped := func(code int, _ string) bool { return code == http.StatusForbidden }

	inEffect("mallory added", awsAuthConfigMap(map[string]string{adminARN: "kia-cm-admin", malloryARN: "kia-cm-mallory"}), mapped)
	inEffect("mallory removed", awsAuthConfigMap(map[string]string{adminARN: "kia-cm-admin"}), unmapped)

	// The proxy's own token rotates (kubelet-style); the informer's client
	// re-reads it, so a later edit still arrives.
	c.RotateProxyToken(t)
	inEffect("mallory added after the proxy token rotated", awsAuthConfigMap(map[string]string{adminARN: "kia-cm-admin", malloryARN: "kia-cm-mallory"}), mapped)

	const (
		invalid = `kube_iam_authz_mapping_reloads_total{mapping="default",result="invalid"}`
		missing = `kube_iam_authz_mapping_reloads_total{mapping="default",result="missing"}`
		lastOK  = `kube_iam_authz_mapping_last_reload_successful{mapping="default"}`
	)

	// Broken: mapUsers no longer parses. The last good mapping (mallory in)
	// stays, and readiness, metric and log say so.
	invalids := c.Serve.Metric(t, invalid)
	k.Apply(t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapUsers: |\n    - userarn: [\n")
	waitMetricAbove(t, c.Serve, invalid, invalids)
	if code, name := who(mallory); !mapped(code, name) {
		t.Errorf("after a broken ConfigMap: mallory %d %q, want the last good mapping's kia-cm-mallory", code, name)
	}
	if got := c.Serve.Metric(t, lastOK); got != 0 {
		t.Errorf("%s = %v after a broken ConfigMap, want 0", lastOK, got)
	}
	wantReadyz(t, c, "configmap kube-system/aws-auth", "serving the last good mapping")
	wantLog(t, c, "the mapping is invalid")

	// Deleted: the last good mapping stays (never nobody, never everybody).
	missings := c.Serve.Metric(t, missing)
	k.Kubectl(t, "delete", "configmap", "-n", "kube-system", "aws-auth")
	waitMetricAbove(t, c.Serve, missing, missings)
	if code, name := who(mallory); !mapped(code, name) {
		t.Errorf("after the ConfigMap was deleted: mallory %d %q, want the last good mapping's kia-cm-mallory", code, name)
	}
	wantReadyz(t, c, "was deleted", "serving the last good mapping")
	wantLog(t, c, "the mapping source is missing")

	// Re-created without mallory: applied like any edit.
	inEffect("re-created without mallory", awsAuthConfigMap(map[string]string{adminARN: "kia-cm-admin"}), unmapped)
	if got := c.Serve.Metric(t, lastOK); got != 1 {
		t.Errorf("%s = %v after the re-creation, want 1", lastOK, got)
	}

	stopChecks()
	n, f, u := checks.Load(), failures.Load(), unanswered.Load()
	if n-u == 0 || f != 0 {
		t.Errorf("admin Checks during the edits: %d answered wrongly of %d answered (first: %v), want 0 of >0", f, n-u, firstFailure.Load())
	} else {
		t.Logf("admin Checks during the edits: %d answered, all allowed as kia-cm-admin (%d not answered within the client timeout)", n-u, u)
	}

	// The proxy read the ConfigMap as its service account, through list and
	// watch restricted to that name: what the RBAC's resourceNames allow.
	for _, verb := range []string{"get", "list", "watch"} {
		k.WaitAuditEvents(t, "/api/v1/namespaces/kube-system/configmaps", func(e harness.AuditEvent) bool {
			return e.Verb == verb && e.User.Username == harness.ProxyUsername && e.Code() < 300
		})
	}
	for _, e := range k.AuditEvents(t) {
		if e.User.Username == harness.ProxyUsername && strings.Contains(e.RequestURI, "/configmaps") && e.Code() == http.StatusForbidden {
			t.Errorf("audit: the proxy was refused %s %s", e.Verb, e.RequestURI)
		}
	}
}

// whoamiUsername posts a SelfSubjectReview through Envoy with tok and returns
// the status and the username the API server saw.
func whoamiUsername(t *testing.T, c *harness.Chain, client *http.Client, tok string) (int, string) {
	t.Helper()
	code, name := whoamiUsernameNoFail(c, client, tok)
	if code == 0 {
		t.Fatalf("whoami through Envoy: %s", name)
	}
	return code, name
}

// whoamiUsernameNoFail is whoamiUsername for goroutines: a transport error is
// code 0 with the error as the name.
func whoamiUsernameNoFail(c *harness.Chain, client *http.Client, tok string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, "https://"+c.Clusters[0].Addr+whoamiPath,
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	_ = json.Unmarshal(body, &review)
	return resp.StatusCode, review.Status.UserInfo.Username
}

// wantReadyz waits until serve's /readyz detail holds every part (it stays 200:
// a last good mapping serves).
func wantReadyz(t *testing.T, c *harness.Chain, parts ...string) {
	t.Helper()
	eventually(t, 15*time.Second, "/readyz to say "+strings.Join(parts, ", "), func() (bool, string) {
		resp, err := http.Get("http://" + c.Serve.HTTPAddr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		for _, p := range parts {
			if !strings.Contains(string(body), p) {
				return false, fmt.Sprintf("%d %s", resp.StatusCode, body)
			}
		}
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, body)
	})
}

// wantLog waits until serve has logged msg.
func wantLog(t *testing.T, c *harness.Chain, msg string) {
	t.Helper()
	eventually(t, 15*time.Second, "serve to log "+msg, func() (bool, string) {
		return strings.Contains(c.Serve.Stderr()+c.Serve.Stdout(), msg), "not yet"
	})
}
