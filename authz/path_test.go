package authz_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/kube-iam-authz/kube-iam-authz/authz"
	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

const (
	account   = "111122223333"
	clusterID = "prod"
	proxySA   = "proxy-service-account-token"
	awsAuth   = `mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/Dev
    username: "dev:{{SessionName}}"
    groups: [devs]
`
)

type staticBearer string

type fakeVerifier struct{}

func (fakeVerifier) Verify(context.Context, string, string) (verify.Result, error) {
	return verify.Result{}, nil
}

func (b staticBearer) BearerToken() string { return string(b) }

// newPath assembles the path exactly as serve does, against the STS
// stand-in (which checks SigV4 and the signed x-k8s-aws-id as STS does).
func newPath(t *testing.T, principals ...stsfake.Principal) (*check.Server, *stsfake.Server) {
	t.Helper()
	fake, err := stsfake.New(stsfake.Options{Principals: principals})
	if err != nil {
		t.Fatal(err)
	}
	run, err := fake.Start(stsfake.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Close() })
	snap, err := mapping.Parse([]byte(awsAuth))
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := mapping.NewMapper(mapping.MapperOptions{Snapshots: mapping.StaticSource{Snapshot: snap}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := authz.New(authz.Options{
		STS:   sts.Options{Endpoint: run.URL, Timeout: 2 * time.Second},
		Cache: cache.Options{MaxTTL: time.Minute},
		Check: check.Options{
			Clusters:   []check.Cluster{{Name: "default", ID: clusterID, Mapper: mapper, Ready: func() bool { return true }}},
			Upstream:   staticBearer(proxySA),
			Logger:     zap.NewNop(),
			Registerer: prometheus.NewRegistry(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, fake
}

func sign(t *testing.T, c stsfake.Credentials, cluster string) string {
	t.Helper()
	tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: c, ClusterID: cluster, SignedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// withCredentialTwin adds a lower-case x-amz-credential naming another key
// to a valid token: the CVE-2022-2385 shape.
func withCredentialTwin(t *testing.T, tok string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, token.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	return token.Prefix + base64.RawURLEncoding.EncodeToString(append(raw, "&x-amz-credential=AKIAEVE/20260101/us-east-1/sts/aws4_request"...))
}

func checkRequest(tok string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{"authorization": "Bearer " + tok}},
	}}}
}

// TestPathAssembled: every step New connects takes part. A mapped caller is
// answered OK with the impersonation headers and the proxy's credential; the
// same token again is served by the cache (no second STS call); a token
// signed for another cluster is refused by STS (our x-k8s-aws-id); a
// CVE-2022-2385 token is refused by the local parse before any STS call; an
// identity without a mapping is refused after STS.
func TestPathAssembled(t *testing.T) {
	alice := stsfake.Credentials{AccessKeyID: "ASIAALICEALICEAL0001", SecretAccessKey: "alice-secret", SessionToken: "alice-session"}
	bob := stsfake.Credentials{AccessKeyID: "AKIABOBBOBBOBBOB0002", SecretAccessKey: "bob-secret"}
	srv, fake := newPath(t, stsfake.AssumedRole(account, "Dev", "alice", alice), stsfake.IAMUser(account, "bob", bob))
	aliceToken := sign(t, alice, clusterID)

	tests := []struct {
		name         string
		token        string
		wantCode     int32 // HTTP status; 200 is OK
		wantUser     string
		wantSTSCalls int64 // total so far
	}{
		{name: "mapped role session", token: aliceToken, wantCode: 200, wantUser: "dev:alice", wantSTSCalls: 1},
		{name: "same token: from the cache", token: aliceToken, wantCode: 200, wantUser: "dev:alice", wantSTSCalls: 1},
		{name: "signed for another cluster", token: sign(t, alice, "staging"), wantCode: 401, wantSTSCalls: 2},
		{name: "CVE-2022-2385 credential twin", token: withCredentialTwin(t, sign(t, alice, clusterID)), wantCode: 401, wantSTSCalls: 2},
		{name: "verified but unmapped", token: sign(t, bob, clusterID), wantCode: 403, wantSTSCalls: 3},
	}
	for _, tc := range tests {
		resp, err := srv.Check(context.Background(), checkRequest(tc.token))
		if err != nil {
			t.Fatalf("%s: Check: %v", tc.name, err)
		}
		code := int32(200)
		if d := resp.GetDeniedResponse(); d != nil {
			code = int32(d.GetStatus().GetCode())
		}
		if code != tc.wantCode {
			t.Errorf("%s: status %d, want %d (%v)", tc.name, code, tc.wantCode, resp.GetStatus())
		}
		if tc.wantCode == 200 {
			got := map[string]string{}
			for _, h := range resp.GetOkResponse().GetHeaders() {
				got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			if got["impersonate-user"] != tc.wantUser || got["authorization"] != "Bearer "+proxySA {
				t.Errorf("%s: impersonate-user %q, authorization %q; want %q and the proxy's credential", tc.name, got["impersonate-user"], got["authorization"], tc.wantUser)
			}
		}
		if got := fake.Stats().Total; got != tc.wantSTSCalls {
			t.Errorf("%s: STS calls so far %d, want %d", tc.name, got, tc.wantSTSCalls)
		}
	}
}

// TestOptionsRefuseWhatNewSets: the verifier, metrics and cache logger are
// the path's own; a caller that sets them would silently bypass a step.
func TestOptionsRefuseWhatNewSets(t *testing.T) {
	base := func() authz.Options {
		return authz.Options{Check: check.Options{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()}}
	}
	tests := map[string]struct {
		edit    func(*authz.Options)
		wantErr string
	}{
		"a verifier of its own": {edit: func(o *authz.Options) { o.Check.Verifier = fakeVerifier{} }, wantErr: "Check.Verifier"},
		"cache metrics":         {edit: func(o *authz.Options) { o.Cache.Metrics = &cache.Metrics{} }, wantErr: "Cache.Metrics"},
		"no registerer":         {edit: func(o *authz.Options) { o.Check.Registerer = nil }, wantErr: "Check.Registerer"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := base()
			tc.edit(&o)
			if _, err := authz.New(o); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New() error = %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
}
