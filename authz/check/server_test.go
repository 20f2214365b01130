package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

const (
	tokAlice = "k8s-aws-v1.YWxpY2U"
	tokBob   = "k8s-aws-v1.Ym9i"
	tokCarol = "k8s-aws-v1.Y2Fyb2w"
	proxySA  = "proxy-sa-token"
)

var (
	alice = identity.Identity{
		ARN:          "arn:aws:sts::111122223333:assumed-role/Dev/alice",
		CanonicalARN: "arn:aws:iam::111122223333:role/Dev",
		AccountID:    "111122223333",
		UserID:       "AROAEXAMPLE:alice",
		PrincipalID:  "AROAEXAMPLE",
		SessionName:  "alice",
		AccessKeyID:  "ASIAEXAMPLE",
		Kind:         identity.KindAssumedRole,
	}
	bob = identity.Identity{
		ARN:          "arn:aws:iam::111122223333:user/bob",
		CanonicalARN: "arn:aws:iam::111122223333:user/bob",
		AccountID:    "111122223333",
		UserID:       "AIDAEXAMPLE",
		PrincipalID:  "AIDAEXAMPLE",
		AccessKeyID:  "AKIAEXAMPLE",
		Kind:         identity.KindUser,
	}
	carol = identity.Identity{
		ARN:          "arn:aws:iam::111122223333:user/carol",
		CanonicalARN: "arn:aws:iam::111122223333:user/carol",
		AccountID:    "111122223333",
		UserID:       "AIDACAROL",
		PrincipalID:  "AIDACAROL",
		AccessKeyID:  "AKIACAROL",
		Kind:         identity.KindUser,
	}
	aliceHeaders = []hdr{
		{"impersonate-user", "dev:alice", setH},
		{"impersonate-uid", "aws-iam-authenticator:111122223333:AROAEXAMPLE", setH},
		{"impersonate-extra-arn", "arn:aws:sts::111122223333:assumed-role/Dev/alice", setH},
		{"impersonate-extra-canonicalarn", "arn:aws:iam::111122223333:role/Dev", setH},
		{"impersonate-extra-sessionname", "alice", setH},
		{"impersonate-extra-accesskeyid", "ASIAEXAMPLE", setH},
		{"impersonate-extra-principalid", "AROAEXAMPLE", setH},
	}
	bobHeaders = []hdr{
		{"impersonate-user", "bob", setH},
		{"impersonate-uid", "aws-iam-authenticator:111122223333:AIDAEXAMPLE", setH},
		{"impersonate-extra-arn", "arn:aws:iam::111122223333:user/bob", setH},
		{"impersonate-extra-canonicalarn", "arn:aws:iam::111122223333:user/bob", setH},
		{"impersonate-extra-accesskeyid", "AKIAEXAMPLE", setH},
		{"impersonate-extra-principalid", "AIDAEXAMPLE", setH},
	}
	aliceGroups = []string{"devs", "viewers", "team:platform"}
	proxyAuth   = hdr{"authorization", "Bearer " + proxySA, setH}
)

func withAuth(hs []hdr, extra ...hdr) []hdr {
	out := append([]hdr(nil), hs...)
	return append(out, extra...)
}

type fixture struct {
	server   *Server
	verifier *fakeVerifier
	mapper   *fakeMapper
	bearer   *fakeBearer
	registry *prometheus.Registry
	logs     *bytes.Buffer
	reviewer *fakeReviewer
}

type fixtureOptions struct {
	noUpstream  bool
	verifierErr error
	mapperErr   error
	panicWith   any
	notReady    bool
	extra       []Cluster
	// allowImpersonation, reviewer, passthrough: the Options of the same
	// names (a nil reviewer with allowImpersonation gets one allowing all).
	allowImpersonation bool
	reviewer           *fakeReviewer
	passthrough        bool
	// mapped adds users to the mapper, by canonical ARN.
	mapped map[string]kubeuser.User
	// noValidate builds the Server past Options.Validate, to test the
	// run-time guard behind a check New performs.
	noValidate bool
}

func newFixture(t *testing.T, fo fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{
		verifier: &fakeVerifier{
			results: map[string]verify.Result{
				tokAlice: {Identity: alice, Expiry: time.Unix(2e9, 0), STSRegion: "global"},
				tokBob:   {Identity: bob, Expiry: time.Unix(2e9, 0), STSRegion: "eu-west-1"},
				tokCarol: {Identity: carol, Expiry: time.Unix(2e9, 0), STSRegion: "global"},
			},
			err:       fo.verifierErr,
			panicWith: fo.panicWith,
		},
		mapper: &fakeMapper{
			users: map[string]kubeuser.User{
				alice.CanonicalARN: {Username: "dev:alice", Groups: aliceGroups},
				bob.CanonicalARN:   {Username: "bob"},
			},
			err: fo.mapperErr,
		},
		bearer: &fakeBearer{tok: proxySA},

		registry: prometheus.NewRegistry(),
		logs:     &bytes.Buffer{},
	}
	for arn, u := range fo.mapped {
		f.mapper.set(arn, u)
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(zapcore.AddSync(f.logs)), zap.DebugLevel)
	opts := Options{
		Verifier:   f.verifier,
		Clusters:   append([]Cluster{{Name: "default", ID: "dev-cluster", Mapper: f.mapper, Ready: func() bool { return !fo.notReady }}}, fo.extra...),
		Upstream:   f.bearer,
		Logger:     zap.New(core),
		Registerer: f.registry,
	}
	if fo.noUpstream {
		opts.Upstream = nil
	}
	opts.AllowImpersonation, opts.PassthroughNonAWSTokens = fo.allowImpersonation, fo.passthrough
	if fo.reviewer != nil {
		opts.Reviewer = fo.reviewer
		f.reviewer = fo.reviewer
	} else if fo.allowImpersonation {
		f.reviewer = &fakeReviewer{allowAll: true}
		opts.Reviewer = f.reviewer
	}
	if fo.noValidate && fo.passthrough {
		// New refuses pass-through without a bearer upstream; build with it
		// off and turn it on, to prove the per-request guard too.
		opts.PassthroughNonAWSTokens = false
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if fo.noValidate && fo.passthrough {
		s.passthrough = true
	}
	f.server = s
	return f
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func TestCheck(t *testing.T) {
	throttled := denials["throttled"]
	tests := map[string]struct {
		fixture        fixtureOptions
		req            *authv3.CheckRequest
		want           *authv3.CheckResponse
		wantLabel      string
		wantVerify     int
		wantClusterIDs []string
	}{
		// Allowed.
		"assumed role with several groups": {
			req:  request(bearer(tokAlice), nil),
			want: wantOK(withAuth(aliceHeaders, proxyAuth), aliceGroups), wantLabel: "ok", wantVerify: 1, wantClusterIDs: []string{"dev-cluster"},
		},
		"iam user without groups": {
			req:  request(bearer(tokBob), nil),
			want: wantOK(withAuth(bobHeaders, proxyAuth), nil), wantLabel: "ok", wantVerify: 1,
		},
		"lower-case bearer scheme": {
			req:  request(map[string]string{"authorization": "bearer " + tokBob}, nil),
			want: wantOK(withAuth(bobHeaders, proxyAuth), nil), wantLabel: "ok", wantVerify: 1,
		},
		"no upstream token removes authorization": {
			fixture: fixtureOptions{noUpstream: true},
			req:     request(bearer(tokBob), nil),
			want:    wantOK(bobHeaders, nil, "authorization"), wantLabel: "ok", wantVerify: 1,
		},
		"raw header map": {
			req:  rawRequest("authorization", "Bearer "+tokBob, ":path", "/api"),
			want: wantOK(withAuth(bobHeaders, proxyAuth), nil), wantLabel: "ok", wantVerify: 1,
		},
		"other headers are ignored": {
			req:  request(map[string]string{"authorization": "Bearer " + tokBob, "x-impersonate-user": "x", "user-agent": "kubectl"}, nil),
			want: wantOK(withAuth(bobHeaders, proxyAuth), nil), wantLabel: "ok", wantVerify: 1,
		},

		// 401: the Authorization header.
		"no authorization":            {req: request(map[string]string{"user-agent": "kubectl"}, nil), want: wantDenied(t, "no_token"), wantLabel: "no_token"},
		"no headers at all":           {req: &authv3.CheckRequest{}, want: wantDenied(t, "no_token"), wantLabel: "no_token"},
		"empty authorization":         {req: request(map[string]string{"authorization": ""}, nil), want: wantDenied(t, "no_token"), wantLabel: "no_token"},
		"basic scheme":                {req: request(map[string]string{"authorization": "Basic YWxpY2U6cHc="}, nil), want: wantDenied(t, "not_bearer"), wantLabel: "not_bearer"},
		"bare token without scheme":   {req: request(map[string]string{"authorization": tokAlice}, nil), want: wantDenied(t, "not_bearer"), wantLabel: "not_bearer"},
		"bearer with tab":             {req: request(map[string]string{"authorization": "Bearer\t" + tokAlice}, nil), want: wantDenied(t, "not_bearer"), wantLabel: "not_bearer"},
		"comma-joined values":         {req: request(map[string]string{"authorization": "Bearer " + tokAlice + ",Bearer " + tokBob}, nil), want: wantDenied(t, "multiple_authorization"), wantLabel: "multiple_authorization"},
		"comma-joined with space":     {req: request(map[string]string{"authorization": "Bearer " + tokAlice + ", Bearer other"}, nil), want: wantDenied(t, "multiple_authorization"), wantLabel: "multiple_authorization"},
		"two raw authorization lines": {req: rawRequest("authorization", "Bearer "+tokAlice, "authorization", "Bearer "+tokBob), want: wantDenied(t, "multiple_authorization"), wantLabel: "multiple_authorization"},
		"two raw lines, odd case":     {req: rawRequest("Authorization", "Bearer "+tokAlice, "AUTHORIZATION", "Bearer "+tokAlice), want: wantDenied(t, "multiple_authorization"), wantLabel: "multiple_authorization"},
		"empty token":                 {req: request(map[string]string{"authorization": "Bearer "}, nil), want: wantDenied(t, "empty_token"), wantLabel: "empty_token"},
		"scheme only":                 {req: request(map[string]string{"authorization": "Bearer"}, nil), want: wantDenied(t, "empty_token"), wantLabel: "empty_token"},
		"double space":                {req: request(map[string]string{"authorization": "Bearer  " + tokAlice}, nil), want: wantDenied(t, "malformed_authorization"), wantLabel: "malformed_authorization"},
		"trailing field":              {req: request(map[string]string{"authorization": "Bearer " + tokAlice + " extra"}, nil), want: wantDenied(t, "malformed_authorization"), wantLabel: "malformed_authorization"},
		"service account jwt":         {req: request(bearer("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), nil), want: wantDenied(t, "not_aws_token"), wantLabel: "not_aws_token"},
		"prefix in wrong case":        {req: request(bearer("K8S-AWS-V1.YWxpY2U"), nil), want: wantDenied(t, "not_aws_token"), wantLabel: "not_aws_token"},

		// 403: smuggled impersonation, before any verification.
		"impersonate-user":                 {req: request(map[string]string{"authorization": "Bearer " + tokAlice, "impersonate-user": "admin"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"impersonate-group":                {req: request(map[string]string{"authorization": "Bearer " + tokAlice, "impersonate-group": "system:masters"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"impersonate-uid":                  {req: request(map[string]string{"authorization": "Bearer " + tokAlice, "impersonate-uid": "x"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"impersonate-extra":                {req: request(map[string]string{"authorization": "Bearer " + tokAlice, "impersonate-extra-scopes": "x"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"impersonate-extra encoded key":    {req: request(map[string]string{"authorization": "Bearer " + tokAlice, "impersonate-extra-example.com%2fproject": "x"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"unknown future impersonate-":      {req: request(map[string]string{"authorization": "Bearer " + tokAlice, "impersonate-something-new": "x"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"odd casing":                       {req: request(map[string]string{"authorization": "Bearer " + tokAlice, "iMpErSoNaTe-uSeR": "admin"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"upper case":                       {req: request(map[string]string{"authorization": "Bearer " + tokAlice, "IMPERSONATE-GROUP": "system:masters"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"empty value":                      {req: request(map[string]string{"authorization": "Bearer " + tokAlice, "impersonate-user": ""}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"impersonation without a token":    {req: request(map[string]string{"impersonate-user": "admin"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},
		"raw header map impersonate-group": {req: rawRequest("authorization", "Bearer "+tokAlice, "Impersonate-Group", "system:masters"), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header"},

		// Verification failures.
		"malformed token": {
			fixture: fixtureOptions{verifierErr: &token.FormatError{Rule: "base64", Detail: "bad"}},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "malformed_token"), wantLabel: "malformed_token", wantVerify: 1,
		},
		"sts rejected": {
			fixture: fixtureOptions{verifierErr: fmt.Errorf("verify: %w: SignatureDoesNotMatch", sts.ErrUnauthenticated)},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "sts_rejected"), wantLabel: "sts_rejected", wantVerify: 1,
		},
		"sts throttled": {
			fixture: fixtureOptions{verifierErr: fmt.Errorf("verify: %w", sts.ErrThrottled)},
			req:     request(bearer(tokAlice), nil), want: throttled.response(), wantLabel: "throttled", wantVerify: 1,
		},
		"sts throttled with a hint": {
			fixture: fixtureOptions{verifierErr: &sts.ThrottledError{RetryAfter: 2500 * time.Millisecond, Status: 400, Code: "Throttling"}},
			req:     request(bearer(tokAlice), nil), want: throttled.withRetryAfter("3").response(), wantLabel: "throttled", wantVerify: 1,
		},
		"own STS rate limit": {
			fixture: fixtureOptions{verifierErr: fmt.Errorf("verify: %w", &sts.ThrottledError{RetryAfter: 40 * time.Millisecond, Local: true})},
			req:     request(bearer(tokAlice), nil), want: throttled.withRetryAfter("1").response(), wantLabel: "throttled", wantVerify: 1,
		},
		"sts unavailable": {
			fixture: fixtureOptions{verifierErr: fmt.Errorf("verify: %w: connection refused", sts.ErrUnavailable)},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "sts_unavailable"), wantLabel: "sts_unavailable", wantVerify: 1,
		},
		"deadline": {
			fixture: fixtureOptions{verifierErr: fmt.Errorf("verify: %w", context.DeadlineExceeded)},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "timeout"), wantLabel: "timeout", wantVerify: 1,
		},
		"unsupported identity": {
			fixture: fixtureOptions{verifierErr: fmt.Errorf("verify: %w", identity.ErrInvalidARN)},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "unsupported_identity"), wantLabel: "unsupported_identity", wantVerify: 1,
		},
		"unknown verifier error fails closed": {
			fixture: fixtureOptions{verifierErr: errors.New("something new")},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "internal"), wantLabel: "internal", wantVerify: 1,
		},
		"verifier panic fails closed": {
			fixture: fixtureOptions{panicWith: "boom " + tokAlice},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "internal"), wantLabel: "internal", wantVerify: 1,
		},

		// Mapping failures.
		"unmapped": {
			req: request(bearer(tokCarol), nil), want: wantDenied(t, "unmapped"), wantLabel: "unmapped", wantVerify: 1,
		},
		"mapper says unmapped": {
			fixture: fixtureOptions{mapperErr: fmt.Errorf("map: %w", kubeuser.ErrUnmapped)},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "unmapped"), wantLabel: "unmapped", wantVerify: 1,
		},
		"mapper refuses": {
			fixture: fixtureOptions{mapperErr: fmt.Errorf("map: %w: reserved prefix", kubeuser.ErrForbidden)},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "mapping_refused"), wantLabel: "mapping_refused", wantVerify: 1,
		},
		"mapping unavailable (EC2 lookup failed)": {
			fixture: fixtureOptions{mapperErr: fmt.Errorf("map: %w: ec2", kubeuser.ErrUnavailable)},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "mapping_unavailable"), wantLabel: "mapping_unavailable", wantVerify: 1,
		},
		"not ready": {
			fixture: fixtureOptions{notReady: true},
			req:     request(bearer(tokAlice), nil), want: wantDenied(t, "not_ready"), wantLabel: "not_ready",
		},
		"not ready still refuses impersonation": {
			fixture: fixtureOptions{notReady: true},
			req:     request(map[string]string{"impersonate-user": "x"}, nil), want: wantDenied(t, "impersonation_header"), wantLabel: "impersonation_header",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tc.fixture)
			got, err := f.server.Check(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Check returned a gRPC error %v; every failure must be a Denied response", err)
			}
			assertResponse(t, got, tc.want)
			if f.verifier.calls != tc.wantVerify {
				t.Errorf("verifier calls = %d, want %d", f.verifier.calls, tc.wantVerify)
			}
			if tc.wantClusterIDs != nil && strings.Join(f.verifier.clusterIDs, ",") != strings.Join(tc.wantClusterIDs, ",") {
				t.Errorf("cluster ids = %v, want %v", f.verifier.clusterIDs, tc.wantClusterIDs)
			}
			result := "denied"
			if tc.wantLabel == "ok" {
				result = "allowed"
			}
			if got := testutil.ToFloat64(mustCounter(t, f.registry, result, tc.wantLabel)); got != 1 {
				t.Errorf("checks_total{result=%q,reason=%q} = %v, want 1", result, tc.wantLabel, got)
			}
			assertOneDecisionLine(t, f.logs.String(), decisionID(t, got), result, tc.wantLabel)
		})
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, result, reason string) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "kube_iam_authz_checks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["result"] == result && labels["reason"] == reason {
				return constCounter(m.GetCounter().GetValue())
			}
		}
	}
	t.Fatalf("no checks_total{result=%q,reason=%q}", result, reason)
	return nil
}

func constCounter(v float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "c", Help: "c"}, func() float64 { return v })
}

// assertOneDecisionLine: exactly one log line per decision, with the
// result and reason, and never a token or anything from it.
func assertOneDecisionLine(t *testing.T, logs, id, result, reason string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("want exactly one log line, got %d:\n%s", len(lines), logs)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatalf("log line is not JSON: %v", err)
	}
	if line["msg"] != "decision" || line["result"] != result || line["reason"] != reason {
		t.Errorf("log line msg/result/reason = %v/%v/%v, want decision/%s/%s", line["msg"], line["result"], line["reason"], result, reason)
	}
	if line["decision"] != id {
		t.Errorf("log decision = %v, response decision_id = %s", line["decision"], id)
	}
	for _, field := range []string{"decision", "token", "arn", "username", "groups", "latency", "cache_hit", "cluster"} {
		if _, ok := line[field]; !ok {
			t.Errorf("log line has no %q field: %s", field, lines[0])
		}
	}
	for _, secret := range []string{"k8s-aws-v1.", "YWxpY2U", "Ym9i", "Y2Fyb2w", proxySA, "X-Amz-Signature", "X-Amz-Security-Token"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log line contains %q: %s", secret, logs)
		}
	}
}
