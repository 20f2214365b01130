package sar

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/rest"
)

// fakeAPIServer answers SubjectAccessReview creates with answer, and
// records what it received.
type fakeAPIServer struct {
	srv      *httptest.Server
	got      atomic.Pointer[authorizationv1.SubjectAccessReview]
	auth     atomic.Value
	answer   func(w http.ResponseWriter, r *http.Request, sar *authorizationv1.SubjectAccessReview)
	requests atomic.Int32
}

func newFakeAPIServer(t *testing.T, answer func(http.ResponseWriter, *http.Request, *authorizationv1.SubjectAccessReview)) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{answer: answer}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		f.auth.Store(r.Header.Get("Authorization"))
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authorization.k8s.io/v1/subjectaccessreviews" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		var in authorizationv1.SubjectAccessReview
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.got.Store(&in)
		f.answer(w, r, &in)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPIServer) config() *rest.Config {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	return &rest.Config{Host: f.srv.URL, BearerToken: "proxy-token", TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
}

func status(st authorizationv1.SubjectAccessReviewStatus) func(http.ResponseWriter, *http.Request, *authorizationv1.SubjectAccessReview) {
	return func(w http.ResponseWriter, _ *http.Request, in *authorizationv1.SubjectAccessReview) {
		out := in.DeepCopy()
		out.Kind, out.APIVersion = "SubjectAccessReview", "authorization.k8s.io/v1"
		out.Status = st
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(out)
	}
}

func TestClientReview(t *testing.T) {
	subject := Subject{User: "dev:alice", Groups: []string{"devs", "system:authenticated"}, UID: "aws-iam-authenticator:1:AROA",
		Extra: map[string][]string{"arn": {"arn:aws:sts::1:assumed-role/Dev/alice"}}}
	attrs := Attributes{Verb: "impersonate", Group: "authentication.k8s.io", Version: "v1", Resource: "userextras", Subresource: "example.com/team", Name: "a"}
	tests := map[string]struct {
		answer     func(http.ResponseWriter, *http.Request, *authorizationv1.SubjectAccessReview)
		want       Decision
		wantErr    bool
		wantResult string
	}{
		"allowed": {
			answer: status(authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: `RBAC: allowed by ClusterRoleBinding "x"`}),
			want:   Decision{Allowed: true, Reason: `RBAC: allowed by ClusterRoleBinding "x"`}, wantResult: "allowed",
		},
		"denied without reason": {
			answer: status(authorizationv1.SubjectAccessReviewStatus{}), want: Decision{}, wantResult: "denied",
		},
		"denied with an evaluation error": {
			answer:     status(authorizationv1.SubjectAccessReviewStatus{Reason: "r", EvaluationError: "webhook down"}),
			want:       Decision{Reason: "webhook down: r"},
			wantResult: "denied",
		},
		"explicitly denied": {
			answer: status(authorizationv1.SubjectAccessReviewStatus{Denied: true, Allowed: true}), want: Decision{Allowed: true}, wantResult: "allowed",
		},
		"the proxy may not create reviews (403)": {
			answer: func(w http.ResponseWriter, _ *http.Request, _ *authorizationv1.SubjectAccessReview) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`)
			},
			wantErr: true, wantResult: "error",
		},
		"server error": {
			answer: func(w http.ResponseWriter, _ *http.Request, _ *authorizationv1.SubjectAccessReview) {
				http.Error(w, "etcd", http.StatusInternalServerError)
			},
			wantErr: true, wantResult: "error",
		},
		"redirect is not followed": {
			answer: func(w http.ResponseWriter, r *http.Request, _ *authorizationv1.SubjectAccessReview) {
				http.Redirect(w, r, "https://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect)
			},
			wantErr: true, wantResult: "error",
		},
		"too slow": {
			answer: func(w http.ResponseWriter, r *http.Request, in *authorizationv1.SubjectAccessReview) {
				select {
				case <-r.Context().Done():
				case <-time.After(2 * time.Second):
				}
				status(authorizationv1.SubjectAccessReviewStatus{Allowed: true})(w, r, in)
			},
			wantErr: true, wantResult: "error",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			api := newFakeAPIServer(t, tc.answer)
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewClientForConfig(api.config(), ClientOptions{Timeout: 300 * time.Millisecond, Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Review(context.Background(), subject, attrs)
			if tc.wantErr {
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("err = %v, want ErrUnavailable", err)
				}
				if got.Allowed {
					t.Fatal("an error came with an allow")
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decision = %+v, want %+v", got, tc.want)
			}
			if n := api.requests.Load(); n != 1 {
				t.Errorf("requests = %d, want 1 (no retries, no redirects followed)", n)
			}
			if a, _ := api.auth.Load().(string); a != "Bearer proxy-token" {
				t.Errorf("Authorization = %q", a)
			}
			if api.got.Load() == nil {
				t.Fatalf("no review received (requests %d, err %v)", api.requests.Load(), err)
			}
			spec := api.got.Load().Spec
			wantSpec := authorizationv1.SubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "impersonate", Group: "authentication.k8s.io", Version: "v1",
					Resource: "userextras", Subresource: "example.com/team", Name: "a"},
				User: "dev:alice", Groups: []string{"devs", "system:authenticated"}, UID: "aws-iam-authenticator:1:AROA",
				Extra: map[string]authorizationv1.ExtraValue{"arn": {"arn:aws:sts::1:assumed-role/Dev/alice"}},
			}
			if !reflect.DeepEqual(spec, wantSpec) {
				t.Errorf("spec = %+v\nwant %+v", spec, wantSpec)
			}
			if n := testutil.ToFloat64(m.requests[tc.wantResult]); n != 1 {
				t.Errorf("requests{%s} = %v, want 1", tc.wantResult, n)
			}
		})
	}
}

func TestClientVerifiesTLS(t *testing.T) {
	api := newFakeAPIServer(t, status(authorizationv1.SubjectAccessReviewStatus{Allowed: true}))
	cfg := api.config()
	cfg.TLSClientConfig.CAData = nil // system roots do not know the test CA
	c, err := NewClientForConfig(cfg, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Review(context.Background(), Subject{User: "a"}, Attributes{Verb: "impersonate", Resource: "users", Name: "b"}); !errors.Is(err, ErrUnavailable) || d.Allowed {
		t.Fatalf("untrusted server: %+v %v", d, err)
	}
	if api.requests.Load() != 0 {
		t.Error("a request reached an untrusted server")
	}
	cfg.Insecure = true
	if _, err := NewClientForConfig(cfg, ClientOptions{}); err == nil {
		t.Error("insecure-skip-tls-verify accepted")
	}
}

func TestNewClientFromKubeconfig(t *testing.T) {
	api := newFakeAPIServer(t, status(authorizationv1.SubjectAccessReviewStatus{Allowed: true}))
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.srv.Certificate().Raw})
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: u, user: {token: proxy-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, api.srv.URL, caFile)
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(ClientOptions{Kubeconfig: path})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Review(context.Background(), Subject{User: "a"}, Attributes{Verb: "impersonate", Resource: "users", Name: "b"}); err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := NewClient(ClientOptions{Kubeconfig: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing kubeconfig accepted")
	}
	if _, err := NewClient(ClientOptions{Kubeconfig: path, Timeout: time.Hour}); err == nil {
		t.Error("an hour-long timeout accepted")
	}
}

// TestNewClientOutsideAPod: without a kubeconfig and outside a pod, the
// client is refused with client-go's ErrNotInCluster (internal/kubeclient
// tests the in-cluster config itself).
func TestNewClientOutsideAPod(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := NewClient(ClientOptions{TokenFile: "/t"}); !errors.Is(err, rest.ErrNotInCluster) {
		t.Errorf("outside a pod: %v, want ErrNotInCluster", err)
	}
}
