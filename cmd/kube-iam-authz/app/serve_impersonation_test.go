package app

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// sarServer is a hand-written API server answering SubjectAccessReviews: bob
// may impersonate the user alice and nothing else.
type sarServer struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []authorizationv1.SubjectAccessReviewSpec
}

func newSARServer(t *testing.T) *sarServer {
	s := &sarServer{}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in authorizationv1.SubjectAccessReview
		if r.URL.Path != "/apis/authorization.k8s.io/v1/subjectaccessreviews" || r.Header.Get("Authorization") != "Bearer proxy-sa-token" ||
			json.NewDecoder(r.Body).Decode(&in) != nil {
			http.Error(w, "unexpected request", http.StatusForbidden)
			return
		}
		s.mu.Lock()
		s.got = append(s.got, in.Spec)
		s.mu.Unlock()
		a := in.Spec.ResourceAttributes
		in.Status.Allowed = in.Spec.User == "bob" && a.Verb == "impersonate" && a.Resource == "users" && a.Name == "alice"
		in.Kind, in.APIVersion = "SubjectAccessReview", "authorization.k8s.io/v1"
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(&in)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sarServer) specs() []authorizationv1.SubjectAccessReviewSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]authorizationv1.SubjectAccessReviewSpec(nil), s.got...)
}

// TestServeNestedImpersonation wires --allow-impersonation, --kubeconfig and
// --passthrough-non-aws-tokens through serve: reviews reach the API server named
// by the kubeconfig with the proxy's token, and their answers decide.
func TestServeNestedImpersonation(t *testing.T) {
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

	api := newSARServer(t)
	ca := writeTemp(t, "ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.srv.Certificate().Raw})))
	tokenFile := writeTemp(t, "token", "proxy-sa-token\n")
	kubeconfig := writeTemp(t, "kubeconfig", fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: u, user: {tokenFile: %q}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, api.srv.URL, ca, tokenFile))
	mappingFile := writeTemp(t, "aws-auth.yaml", "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/bob\n    username: bob\n    groups: [devs]\n")

	s := startServe(t, "--cluster-id", "dev", "--mapping-file", mappingFile, "--sts-endpoint", run.URL,
		"--upstream-token-file", tokenFile, "--allow-impersonation", "--kubeconfig", kubeconfig, "--passthrough-non-aws-tokens")
	tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: bob.Credentials, ClusterID: "dev", SignedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	check := func(headers map[string]string) *authv3.CheckResponse {
		t.Helper()
		req := checkReq(tok, nil)
		for k, v := range headers {
			req.Attributes.Request.Http.Headers[k] = v
		}
		var resp *authv3.CheckResponse
		waitUntil(t, func() bool {
			resp, err = s.client.Check(context.Background(), req)
			return err == nil && resp.GetDeniedResponse().GetStatus().GetCode() != 503
		}, "an answer other than 503", s.logs)
		return resp
	}

	resp := check(map[string]string{"impersonate-user": "alice"})
	if headerValue(resp, "impersonate-user") != "alice" || headerValue(resp, "impersonate-extra-kube-iam-authz.io%2Foriginal-username") != "bob" ||
		headerValue(resp, "authorization") != "Bearer proxy-sa-token" || len(groupSlots(resp)) != 0 {
		t.Fatalf("allowed answer: %v", resp)
	}
	specs := api.specs()
	if len(specs) != 1 || specs[0].User != "bob" || strings.Join(specs[0].Groups, ",") != "devs,system:authenticated" ||
		specs[0].ResourceAttributes.Resource != "users" || specs[0].ResourceAttributes.Name != "alice" {
		t.Fatalf("reviews: %+v", specs)
	}

	resp = check(map[string]string{"impersonate-user": "carol"})
	if resp.GetDeniedResponse().GetStatus().GetCode() != 403 ||
		!strings.Contains(resp.GetDeniedResponse().GetBody(), `users \"carol\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope`) {
		t.Fatalf("refused answer: %v", resp)
	}

	other := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		Headers: map[string]string{"authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "impersonate-user": "x"},
	}}}}
	resp, err = s.client.Check(context.Background(), other)
	if err != nil || resp.GetOkResponse() == nil || len(resp.GetOkResponse().GetHeaders()) != 0 || len(resp.GetOkResponse().GetHeadersToRemove()) != 0 {
		t.Fatalf("pass-through answer: %v %v", resp, err)
	}

	// The API server gone: a new question is a 503 with Retry-After, never an allow.
	api.srv.Close()
	resp, err = s.client.Check(context.Background(), func() *authv3.CheckRequest {
		r := checkReq(tok, nil)
		r.Attributes.Request.Http.Headers["impersonate-user"] = "dave"
		return r
	}())
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 503 {
		t.Fatalf("reviews unavailable: %v %v", resp, err)
	}

	_, metrics := httpGet(t, "http://"+s.httpAddr+"/metrics")
	for _, want := range []string{
		`kube_iam_authz_sar_requests_total{result="allowed"} 1`, `kube_iam_authz_sar_requests_total{result="denied"} 1`,
		`kube_iam_authz_sar_requests_total{result="error"} 1`, "kube_iam_authz_sar_request_duration_seconds_count 3",
		`kube_iam_authz_checks_total{reason="impersonated",result="allowed"} 1`, `kube_iam_authz_checks_total{reason="passthrough",result="allowed"} 1`,
		`kube_iam_authz_checks_total{reason="sar_unavailable",result="denied"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(s.logs.String(), "proxy-sa-token") || strings.Contains(s.logs.String(), "k8s-aws-v1.") {
		t.Error("a token was logged")
	}
}
