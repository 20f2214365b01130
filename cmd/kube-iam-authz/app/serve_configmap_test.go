package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// apiStandIn answers the requests of serve's ConfigMap informer: a list and
// watches of kube-system configmaps restricted to metadata.name=aws-auth
// (anything else is refused, so the field selector is proven), with watch
// events the test sends. It stands in until the real kube-apiserver test.
type apiStandIn struct {
	*httptest.Server
	mu      sync.Mutex
	current map[string]string // data of aws-auth; nil when deleted
	rv      int
	events  chan string
}

func newAPIStandIn(t *testing.T, data map[string]string) *apiStandIn {
	a := &apiStandIn{current: data, rv: 1, events: make(chan string, 16)}
	done := make(chan struct{})
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/api/v1/namespaces/kube-system/configmaps" || q.Get("fieldSelector") != "metadata.name=aws-auth" {
			http.Error(w, "only kube-system/aws-auth is readable", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		a.mu.Lock()
		if q.Get("watch") == "" {
			items := []any{}
			if a.current != nil {
				items = append(items, a.object(a.current))
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"kind": "ConfigMapList", "apiVersion": "v1", "metadata": map[string]any{"resourceVersion": fmt.Sprint(a.rv)}, "items": items})
			a.mu.Unlock()
			return
		}
		initial := q.Get("sendInitialEvents") == "true"
		var first []string
		if initial { // the streaming list: the object, then the end-of-list bookmark
			if a.current != nil {
				first = append(first, a.event("ADDED", a.object(a.current)))
			}
			first = append(first, a.event("BOOKMARK", map[string]any{"kind": "ConfigMap", "apiVersion": "v1", "metadata": map[string]any{"resourceVersion": fmt.Sprint(a.rv), "annotations": map[string]string{"k8s.io/initial-events-end": "true"}}}))
		}
		a.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		for _, ev := range first {
			fmt.Fprintln(w, ev)
		}
		w.(http.Flusher).Flush()
		for {
			select {
			case ev := <-a.events:
				fmt.Fprintln(w, ev)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			case <-done:
				return
			}
		}
	}))
	t.Cleanup(func() {
		close(done)
		a.CloseClientConnections()
		a.Close()
	})
	return a
}

// object and event are called with mu held.
func (a *apiStandIn) object(data map[string]string) map[string]any {
	return map[string]any{"kind": "ConfigMap", "apiVersion": "v1", "metadata": map[string]any{"name": "aws-auth", "namespace": "kube-system", "resourceVersion": fmt.Sprint(a.rv)}, "data": data}
}

func (a *apiStandIn) event(typ string, obj map[string]any) string {
	b, _ := json.Marshal(map[string]any{"type": typ, "object": obj})
	return string(b)
}

// set changes the ConfigMap (nil deletes it) and tells the watchers.
func (a *apiStandIn) set(data map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rv++
	switch {
	case data == nil:
		a.events <- a.event("DELETED", a.object(a.current))
	case a.current == nil:
		a.events <- a.event("ADDED", a.object(data))
	default:
		a.events <- a.event("MODIFIED", a.object(data))
	}
	a.current = data
}

func bobAs(username string) map[string]string {
	return map[string]string{"mapUsers": "- userarn: arn:aws:iam::111122223333:user/bob\n  username: " + username + "\n"}
}

// TestServeMappingConfigMap: serve --mapping-configmap reads the mapping
// from the API (kubeconfig, informer, field selector) and follows edits
// within 2 s; a deletion keeps the last good mapping and /readyz says so;
// a re-creation applies again.
func TestServeMappingConfigMap(t *testing.T) {
	bob := stsfake.IAMUser("111122223333", "bob", stsfake.Credentials{AccessKeyID: "AKIABOBBOBBOBBOB0001", SecretAccessKey: "s1"})
	fake, err := stsfake.New(stsfake.Options{Principals: []stsfake.Principal{bob}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := fake.Start(stsfake.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	api := newAPIStandIn(t, bobAs("bob"))
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	replaceFile(t, kubeconfig, "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: "+api.URL+"\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n")

	s := startServe(t, "--cluster-id", "dev-cluster", "--mapping-configmap", "kube-system/aws-auth", "--kubeconfig", kubeconfig,
		"--sts-endpoint", run.URL, "--sts-timeout", "2s")
	tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: bob.Credentials, ClusterID: "dev-cluster", SignedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	user := func() string {
		resp, err := s.client.Check(context.Background(), checkReq(tok, nil))
		if err != nil {
			t.Fatal(err)
		}
		return headerValue(resp, "impersonate-user")
	}
	within2s := func(want string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for user() != want {
			if time.Now().After(deadline) {
				t.Fatalf("impersonate-user is not %q within 2s\nlogs:\n%s", want, s.logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	within2s("bob")

	api.set(bobAs("robert"))
	within2s("robert")

	api.set(nil)
	waitUntil(t, func() bool {
		_, body := httpGet(t, "http://"+s.httpAddr+"/readyz")
		return strings.Contains(body, "was deleted; keeping the last good mapping")
	}, "/readyz to report the deletion", s.logs)
	if got := user(); got != "robert" {
		t.Errorf("after the deletion impersonate-user = %q, want the last good robert", got)
	}

	api.set(bobAs("bobby"))
	within2s("bobby")
	if !strings.Contains(s.logs.String(), "configmap kube-system/aws-auth") {
		t.Errorf("the logs never name the ConfigMap source:\n%s", s.logs.String())
	}
}
