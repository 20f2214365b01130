package check

// In-process end-to-end tests: a real gRPC server (over bufconn) with the
// production chain — token parser, STS client, verifier, verification cache,
// mapper — against the STS stand-in (integration/stsfake), which verifies
// the presigned SigV4 signatures like STS does.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/upstream"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

const (
	e2eCluster = "dev-cluster"
	e2eMapping = `mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/Dev
    username: "dev:{{SessionName}}"
    groups: [devs, viewers, "team:platform"]
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/bob
    username: bob
    groups: [ops]
  - userarn: arn:aws:iam::111122223333:root
    username: root-admin
mapAccounts:
  - "444455556666"
`
)

var (
	credBob    = stsfake.Credentials{AccessKeyID: "AKIABOBBOBBOBBOB0001", SecretAccessKey: "bob-secret"}
	credAlice  = stsfake.Credentials{AccessKeyID: "ASIAALICEALICEAL0002", SecretAccessKey: "alice-secret", SessionToken: "alice-session-token"}
	credCarol  = stsfake.Credentials{AccessKeyID: "AKIACAROLCAROLCA0003", SecretAccessKey: "carol-secret"}
	credRoot   = stsfake.Credentials{AccessKeyID: "AKIAROOTROOTROOT0004", SecretAccessKey: "root-secret"}
	credNobody = stsfake.Credentials{AccessKeyID: "AKIANOBODYNOBODY0005", SecretAccessKey: "nobody-secret"}

	pBob    = stsfake.IAMUser("111122223333", "bob", credBob)
	pAlice  = stsfake.AssumedRole("111122223333", "Dev", "alice", credAlice)
	pCarol  = stsfake.IAMUser("444455556666", "carol", credCarol)
	pRoot   = stsfake.Root("111122223333", credRoot)
	pNobody = stsfake.IAMUser("111122223333", "nobody", credNobody)
)

// fakeClock is shared by the parser, the cache, the rate limiter and the
// STS stand-in, so that token age and cache expiry move together.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// swapSource is a mapping snapshot source that tests can replace, the way
// the file-watching store swaps snapshots.
type swapSource struct {
	p atomic.Pointer[mapping.Snapshot]
}

func (s *swapSource) Current() *mapping.Snapshot { return s.p.Load() }

func (s *swapSource) load(t testing.TB, yaml string) {
	t.Helper()
	snap, err := mapping.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	s.p.Store(snap)
}

type e2eOptions struct {
	stsTimeout   time.Duration
	rateLimit    float64
	rateBurst    int
	cacheTTL     time.Duration
	upstreamFile bool
	// infoLogs logs at info instead of debug (what serve runs by default).
	infoLogs bool
	// logCacheHits and hitInterval are the Options of the same names.
	logCacheHits bool
	hitInterval  time.Duration
}

type e2e struct {
	fake     *stsfake.Server
	sts      *stsfake.Running
	clock    *fakeClock
	client   authv3.AuthorizationClient
	mappings *swapSource
	upstream string // token file path
	tokens   *upstream.TokenFile
	registry *prometheus.Registry
	logs     *bytes.Buffer
	srv      *Server
}

func newE2E(t *testing.T, o e2eOptions) *e2e {
	t.Helper()
	clock := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	fake, err := stsfake.New(stsfake.Options{Principals: []stsfake.Principal{pBob, pAlice, pCarol, pRoot, pNobody}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	run, err := fake.Start(stsfake.ServeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close() })

	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	level := zap.DebugLevel
	if o.infoLogs {
		level = zap.InfoLevel
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(zapcore.AddSync(logs)), level))

	parser, err := token.NewParser(token.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	stsMetrics, err := sts.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if o.stsTimeout == 0 {
		o.stsTimeout = 2 * time.Second
	}
	client, err := sts.New(sts.Options{Endpoint: run.URL, Timeout: o.stsTimeout, RateLimit: o.rateLimit, RateBurst: o.rateBurst, Metrics: stsMetrics, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cacheMetrics, err := cache.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if o.cacheTTL == 0 {
		o.cacheTTL = cache.DefaultMaxTTL
	}
	c, err := cache.New(verify.New(parser, client), cache.Options{
		MaxTTL: o.cacheTTL, Now: clock.Now, Metrics: cacheMetrics, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &swapSource{}
	src.load(t, e2eMapping)
	mapper, err := mapping.NewMapper(mapping.MapperOptions{Snapshots: src})
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{fake: fake, sts: run, clock: clock, mappings: src, registry: reg, logs: logs}
	var bearerSource BearerSource
	if o.upstreamFile {
		e.upstream = filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(e.upstream, []byte(proxySA+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tm, err := upstream.NewMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens, err = upstream.NewTokenFile(upstream.Options{Path: e.upstream, Logger: log, Metrics: tm})
		if err != nil {
			t.Fatal(err)
		}
		bearerSource = e.tokens
	}
	srv, err := New(Options{
		Verifier:   c,
		Clusters:   []Cluster{{Name: "default", ID: e2eCluster, Mapper: mapper, Ready: func() bool { return src.Current() != nil }}},
		Upstream:   bearerSource,
		Logger:     log,
		Registerer: reg,
		Now:        clock.Now,

		LogCacheHits:       o.logCacheHits,
		HitSummaryInterval: o.hitInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.client = authv3.NewAuthorizationClient(conn)
	t.Cleanup(func() { assertNoSecretsLogged(t, logs.String()) })
	return e
}

// sign makes a token the way aws eks get-token does, at the shared clock.
func (e *e2e) sign(t testing.TB, c stsfake.Credentials, host, clusterID string) string {
	t.Helper()
	tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: c, Host: host, ClusterID: clusterID, SignedAt: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *e2e) check(t testing.TB, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	resp, err := e.client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check returned a gRPC error: %v", err)
	}
	return resp
}

func (e *e2e) stsCalls() int64 { return e.fake.Stats().Total }

// principalID is the STS UserId without the session, as the uid uses it.
func principalID(p stsfake.Principal) string {
	id, _, _ := strings.Cut(p.UserID, ":")
	if strings.Contains(p.ARN, ":federated-user/") {
		return p.UserID
	}
	return id
}

// wantHeaders spells out the header sets for a principal mapped to a user.
func wantHeaders(p stsfake.Principal, canonical, session, username string) []hdr {
	hs := []hdr{
		{"impersonate-user", username, setH},
		{"impersonate-uid", "aws-iam-authenticator:" + p.Account + ":" + principalID(p), setH},
		{"impersonate-extra-arn", p.ARN, setH},
		{"impersonate-extra-canonicalarn", canonical, setH},
	}
	if session != "" {
		hs = append(hs, hdr{"impersonate-extra-sessionname", session, setH})
	}
	return append(hs,
		hdr{"impersonate-extra-accesskeyid", p.AccessKeyID, setH},
		hdr{"impersonate-extra-principalid", principalID(p), setH},
	)
}

func TestE2EAllowed(t *testing.T) {
	e := newE2E(t, e2eOptions{upstreamFile: true})
	tests := map[string]struct {
		cred       stsfake.Credentials
		host       string
		want       *authv3.CheckResponse
		wantRegion string
	}{
		"iam user, global endpoint": {
			cred: credBob, host: "sts.amazonaws.com",
			want: wantOK(withAuth(wantHeaders(pBob, pBob.ARN, "", "bob"), proxyAuth), []string{"ops"}),
		},
		"assumed role, regional endpoint, templated username, several groups": {
			cred: credAlice, host: "sts.eu-west-1.amazonaws.com",
			want: wantOK(withAuth(wantHeaders(pAlice, "arn:aws:iam::111122223333:role/Dev", "alice", "dev:alice"), proxyAuth),
				[]string{"devs", "viewers", "team:platform"}),
		},
		"assumed role, global endpoint": {
			cred: credAlice, host: "sts.amazonaws.com",
			want: wantOK(withAuth(wantHeaders(pAlice, "arn:aws:iam::111122223333:role/Dev", "alice", "dev:alice"), proxyAuth),
				[]string{"devs", "viewers", "team:platform"}),
		},
		"account mapping: canonical ARN as username, no groups": {
			cred: credCarol, host: "sts.us-west-2.amazonaws.com",
			want: wantOK(withAuth(wantHeaders(pCarol, pCarol.ARN, "", pCarol.ARN), proxyAuth), nil),
		},
		"root": {
			cred: credRoot, host: "sts.amazonaws.com",
			want: wantOK(withAuth(wantHeaders(pRoot, pRoot.ARN, "", "root-admin"), proxyAuth), nil),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := e.stsCalls()
			tok := e.sign(t, tc.cred, tc.host, e2eCluster)
			assertResponse(t, e.check(t, request(bearer(tok), nil)), tc.want)
			// Raw header map, as the reviewed Envoy config sends it.
			assertResponse(t, e.check(t, rawRequest("authorization", "Bearer "+tok, ":path", "/api")), tc.want)
			if got := e.stsCalls() - before; got != 1 {
				t.Errorf("STS calls = %d, want 1 (the second Check is a cache hit)", got)
			}
			ids := e.fake.ClusterIDs()
			if len(ids) == 0 || ids[len(ids)-1] != e2eCluster {
				t.Errorf("STS saw x-k8s-aws-id %v, want the server's own %q", ids, e2eCluster)
			}
		})
	}
}

func TestE2EDenied(t *testing.T) {
	e := newE2E(t, e2eOptions{upstreamFile: true})
	good := e.sign(t, credBob, "sts.amazonaws.com", e2eCluster)
	withHeader := func(k, v string) map[string]string { return map[string]string{"authorization": "Bearer " + good, k: v} }
	type tcase struct {
		req       *authv3.CheckRequest
		wantLabel string
		wantSTS   int64
	}
	tests := map[string]tcase{
		"no authorization":              {req: request(map[string]string{":path": "/api"}, nil), wantLabel: "no_token"},
		"basic scheme":                  {req: request(map[string]string{"authorization": "Basic Ym9iOnB3"}, nil), wantLabel: "not_bearer"},
		"two authorization lines":       {req: rawRequest("authorization", "Bearer "+good, "authorization", "Bearer "+good), wantLabel: "multiple_authorization"},
		"comma-joined (CVE-2021-32777)": {req: rawRequest("authorization", "Bearer "+good+",Bearer "+good), wantLabel: "multiple_authorization"},
		"empty token":                   {req: request(map[string]string{"authorization": "Bearer "}, nil), wantLabel: "empty_token"},
		"not a k8s-aws-v1 token":        {req: request(bearer("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), nil), wantLabel: "not_aws_token"},
		"malformed payload":             {req: request(bearer("k8s-aws-v1.!!!"), nil), wantLabel: "malformed_token"},
		"token for another cluster":     {req: request(bearer(e.sign(t, credBob, "sts.amazonaws.com", "prod-cluster")), nil), wantLabel: "sts_rejected", wantSTS: 1},
		"unknown access key":            {req: request(bearer(e.sign(t, stsfake.Credentials{AccessKeyID: "AKIAUNKNOWNUNKNOWN06", SecretAccessKey: "x"}, "sts.amazonaws.com", e2eCluster)), nil), wantLabel: "sts_rejected", wantSTS: 1},
		"wrong secret":                  {req: request(bearer(e.sign(t, stsfake.Credentials{AccessKeyID: credBob.AccessKeyID, SecretAccessKey: "guess"}, "sts.amazonaws.com", e2eCluster)), nil), wantLabel: "sts_rejected", wantSTS: 1},
		"unmapped identity":             {req: request(bearer(e.sign(t, credNobody, "sts.amazonaws.com", e2eCluster)), nil), wantLabel: "unmapped", wantSTS: 1},
		"unknown cluster route":         {req: request(bearer(good), map[string]string{"cluster_id": "prod"}), wantLabel: "unknown_cluster"},
	}
	for _, h := range []string{
		"impersonate-user", "impersonate-group", "impersonate-uid", "impersonate-extra-scopes",
		"impersonate-extra-example.com%2fproject", "impersonate-something-new", "IMPERSONATE-USER", "Impersonate-Group", "iMpErSoNaTe-uId",
	} {
		tests["smuggled "+h] = tcase{req: request(withHeader(h, "system:masters"), nil), wantLabel: "impersonation_header"}
		tests["smuggled raw "+h] = tcase{req: rawRequest("authorization", "Bearer "+good, h, ""), wantLabel: "impersonation_header"}
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := e.stsCalls()
			assertResponse(t, e.check(t, tc.req), wantDenied(t, tc.wantLabel))
			if got := e.stsCalls() - before; got != tc.wantSTS {
				t.Errorf("STS calls = %d, want %d", got, tc.wantSTS)
			}
		})
	}
}

func TestE2ESTSTrouble(t *testing.T) {
	tests := map[string]struct {
		opts      e2eOptions
		setup     func(e *e2e)
		wantLabel string
		retry     string
	}{
		"throttled": {
			setup:     func(e *e2e) { _ = e.fake.SetFault(stsfake.Fault{Kind: stsfake.FaultThrottle}) },
			wantLabel: "throttled", retry: "1",
		},
		"server error": {
			setup:     func(e *e2e) { _ = e.fake.SetFault(stsfake.Fault{Kind: stsfake.FaultServerError, Status: 503}) },
			wantLabel: "sts_unavailable",
		},
		"connection closed": {
			setup:     func(e *e2e) { _ = e.fake.SetFault(stsfake.Fault{Kind: stsfake.FaultCloseConn}) },
			wantLabel: "sts_unavailable",
		},
		"html answer": {
			setup:     func(e *e2e) { _ = e.fake.SetFault(stsfake.Fault{Kind: stsfake.FaultHTML}) },
			wantLabel: "sts_unavailable",
		},
		"redirect is not followed": {
			setup: func(e *e2e) {
				_ = e.fake.SetFault(stsfake.Fault{Kind: stsfake.FaultRedirect, Location: "http://127.0.0.1:1/"})
			},
			wantLabel: "sts_unavailable",
		},
		"inconsistent identity": {
			setup:     func(e *e2e) { _ = e.fake.SetFault(stsfake.Fault{Kind: stsfake.FaultAccountMismatch}) },
			wantLabel: "sts_unavailable",
		},
		"down": {
			setup:     func(e *e2e) { e.sts.Close() },
			wantLabel: "sts_unavailable",
		},
		"slow": {
			opts:      e2eOptions{stsTimeout: 100 * time.Millisecond},
			setup:     func(e *e2e) { _ = e.fake.SetLatency(time.Second) },
			wantLabel: "sts_unavailable",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newE2E(t, tc.opts)
			tok := e.sign(t, credBob, "sts.amazonaws.com", e2eCluster)
			tc.setup(e)
			want := denials[tc.wantLabel]
			if tc.retry != "" {
				want = want.withRetryAfter(tc.retry)
			}
			assertResponse(t, e.check(t, request(bearer(tok), nil)), want.response())
			if name == "down" {
				return
			}
			// Transient failures are never cached: once STS is back, the
			// same token is admitted.
			e.fake.ClearFault()
			_ = e.fake.SetLatency(0)
			got := e.check(t, request(bearer(tok), nil))
			if got.GetOkResponse() == nil {
				t.Errorf("after STS recovered: %v", got)
			}
		})
	}
}

func TestE2EOwnRateLimit(t *testing.T) {
	e := newE2E(t, e2eOptions{rateLimit: 0.5, rateBurst: 1})
	first := e.sign(t, credBob, "sts.amazonaws.com", e2eCluster)
	if got := e.check(t, request(bearer(first), nil)); got.GetOkResponse() == nil {
		t.Fatalf("first token: %v", got)
	}
	second := e.sign(t, credAlice, "sts.amazonaws.com", e2eCluster)
	assertResponse(t, e.check(t, request(bearer(second), nil)), denials["throttled"].withRetryAfter("2").response())
	// A cached token is not limited: it costs no STS call.
	if got := e.check(t, request(bearer(first), nil)); got.GetOkResponse() == nil {
		t.Errorf("cached token refused: %v", got)
	}
	if got := e.stsCalls(); got != 1 {
		t.Errorf("STS calls = %d, want 1 (the limiter refused before sending)", got)
	}
	e.clock.Add(2 * time.Second)
	if got := e.check(t, request(bearer(second), nil)); got.GetOkResponse() == nil {
		t.Errorf("after the bucket refilled: %v", got)
	}
}

func TestE2ESingleflightAndExpiry(t *testing.T) {
	e := newE2E(t, e2eOptions{cacheTTL: 15 * time.Minute})
	_ = e.fake.SetLatency(50 * time.Millisecond)
	tok := e.sign(t, credAlice, "sts.amazonaws.com", e2eCluster)
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.client.Check(context.Background(), request(bearer(tok), nil))
			if err == nil && resp.GetOkResponse() != nil {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 100 {
		t.Errorf("%d of 100 concurrent Checks allowed", allowed.Load())
	}
	if got := e.stsCalls(); got != 1 {
		t.Fatalf("100 concurrent identical new tokens made %d STS calls, want 1", got)
	}
	for _, step := range []time.Duration{time.Minute, 8 * time.Minute, 5*time.Minute + 59*time.Second} {
		e.clock.Add(step)
		if got := e.check(t, request(bearer(tok), nil)); got.GetOkResponse() == nil {
			t.Fatalf("cached token refused before expiry: %v", got)
		}
	}
	if got := e.stsCalls(); got != 1 {
		t.Errorf("repeated token made %d STS calls before expiry, want 1 in total", got)
	}
	// X-Amz-Date + 15 min: the cache entry ends with the token, and the
	// parser refuses the expired token without asking STS.
	e.clock.Add(2 * time.Second)
	assertResponse(t, e.check(t, request(bearer(tok), nil)), wantDenied(t, "malformed_token"))
	if got := e.stsCalls(); got != 1 {
		t.Errorf("expired token made %d STS calls in total, want 1", got)
	}
}

func TestE2EMappingChangeTakesEffectAtOnce(t *testing.T) {
	e := newE2E(t, e2eOptions{upstreamFile: true})
	tok := e.sign(t, credBob, "sts.amazonaws.com", e2eCluster)
	bobAs := func(user string, groups ...string) *authv3.CheckResponse {
		return wantOK(withAuth(wantHeaders(pBob, pBob.ARN, "", user), proxyAuth), groups)
	}
	assertResponse(t, e.check(t, request(bearer(tok), nil)), bobAs("bob", "ops"))
	e.mappings.load(t, strings.Replace(e2eMapping, "groups: [ops]", "groups: [ops, admins]", 1))
	assertResponse(t, e.check(t, request(bearer(tok), nil)), bobAs("bob", "ops", "admins"))
	e.mappings.load(t, "mapUsers: []\n")
	assertResponse(t, e.check(t, request(bearer(tok), nil)), wantDenied(t, "unmapped"))
	if got := e.stsCalls(); got != 1 {
		t.Errorf("STS calls = %d, want 1: mapping changes must not re-verify", got)
	}
}

func TestE2EUpstreamTokenRotation(t *testing.T) {
	e := newE2E(t, e2eOptions{upstreamFile: true})
	tok := e.sign(t, credBob, "sts.amazonaws.com", e2eCluster)
	withToken := func(sa string) *authv3.CheckResponse {
		return wantOK(withAuth(wantHeaders(pBob, pBob.ARN, "", "bob"), hdr{"authorization", "Bearer " + sa, setH}), []string{"ops"})
	}
	assertResponse(t, e.check(t, request(bearer(tok), nil)), withToken(proxySA))
	if err := os.WriteFile(e.upstream, []byte("rotated-sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.tokens.Reload(); err != nil {
		t.Fatal(err)
	}
	assertResponse(t, e.check(t, request(bearer(tok), nil)), withToken("rotated-sa-token"))
	// A broken rewrite keeps the last good token.
	if err := os.WriteFile(e.upstream, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.tokens.Reload(); !errors.Is(err, upstream.ErrInvalidToken) {
		t.Fatalf("Reload of an empty file = %v", err)
	}
	assertResponse(t, e.check(t, request(bearer(tok), nil)), withToken("rotated-sa-token"))
}

func TestE2ENoUpstreamTokenRemovesAuthorization(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	tok := e.sign(t, credBob, "sts.amazonaws.com", e2eCluster)
	assertResponse(t, e.check(t, request(bearer(tok), nil)), wantOK(wantHeaders(pBob, pBob.ARN, "", "bob"), []string{"ops"}, "authorization"))
}

func TestE2ELogsCacheHits(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	tok := e.sign(t, credBob, "sts.amazonaws.com", e2eCluster)
	e.check(t, request(bearer(tok), nil))
	e.check(t, request(bearer(tok), nil))
	lines := strings.Split(strings.TrimSpace(e.logs.String()), "\n")
	var hits []string
	for _, l := range lines {
		if strings.Contains(l, `"msg":"decision"`) {
			if strings.Contains(l, `"cache_hit":true`) {
				hits = append(hits, "hit")
			} else {
				hits = append(hits, "miss")
			}
		}
	}
	if strings.Join(hits, ",") != "miss,hit" {
		t.Errorf("decision cache_hit sequence = %v, want miss,hit\n%s", hits, e.logs.String())
	}
}

// assertNoSecretsLogged: no token, signature or session token in any log
// line, whatever the outcome (anchors C.4).
func assertNoSecretsLogged(t *testing.T, logs string) {
	t.Helper()
	for _, secret := range []string{"k8s-aws-v1.", "X-Amz-Signature", "X-Amz-Security-Token", "alice-session-token", proxySA, "rotated-sa-token", "-secret"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}
