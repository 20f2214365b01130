package check

import (
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sar"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

const benchMapping = `mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/Other
    username: other
  - rolearn: arn:aws:iam::111122223333:role/Dev
    username: "dev:{{SessionName}}"
    groups: [devs, viewers, "team:platform"]
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/bob
    username: bob
`

// benchServer is the production chain for a cache hit: real cache, real
// mapper on a parsed snapshot, a JSON zap logger writing to io.Discard
// (the encoding cost is measured), and a request shaped like Envoy's with
// encode_raw_headers (a dozen headers, a 1.5 KB token).
func benchServer(b testing.TB, logging bool) (*Server, *authv3.CheckRequest) {
	return benchServerWith(b, logging, false, false)
}

// benchServerLogging is benchServer with Options.LogCacheHits set as given.
func benchServerLogging(b testing.TB, logging, logCacheHits bool) (*Server, *authv3.CheckRequest) {
	return benchServerWith(b, logging, logCacheHits, false)
}

// benchServerWith: nested adds kubectl --as bob --as-group devs to the
// request, authorized by the production SubjectAccessReview cache (sar.Cached)
// in front of a fake reviewer: a review cache hit per attribute.
func benchServerWith(b testing.TB, logging, logCacheHits, nested bool) (*Server, *authv3.CheckRequest) {
	b.Helper()
	tok := "k8s-aws-v1." + strings.Repeat("aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8", 42)
	fv := &fakeVerifier{results: map[string]verify.Result{
		// verify.Verifier returns the token's fingerprint with the result,
		// and the cache serves it on a hit.
		tok: {Identity: alice, Expiry: time.Now().Add(time.Hour), STSRegion: "global", Fingerprint: token.Fingerprint(tok)},
	}}
	c, err := cache.New(fv, cache.Options{MaxTTL: 15 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	snap, err := mapping.Parse([]byte(benchMapping))
	if err != nil {
		b.Fatal(err)
	}
	mapper, err := mapping.NewMapper(mapping.MapperOptions{Snapshots: mapping.StaticSource{Snapshot: snap}})
	if err != nil {
		b.Fatal(err)
	}
	log := zap.NewNop()
	if logging {
		log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
	}
	opts := Options{
		Verifier:     c,
		Clusters:     []Cluster{{Name: "default", ID: "dev-cluster", Mapper: mapper}},
		Upstream:     &fakeBearer{tok: proxySA},
		Logger:       log,
		Registerer:   prometheus.NewRegistry(),
		LogCacheHits: logCacheHits,
	}
	lines := []string{
		":authority", "kube.example.com:8443", ":path", "/api/v1/namespaces/default/pods?limit=500", ":method", "GET",
		":scheme", "https", "user-agent", "kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef", "accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
		"authorization", "Bearer " + tok, "x-forwarded-proto", "https", "x-request-id", "0f6e1c9a-8d1f-4a51-9b0e-8f1f0b6c1d2e",
		"x-forwarded-for", "10.0.0.7", "accept-encoding", "gzip", "kubectl-command", "kubectl get",
	}
	if nested {
		reviewer, err := sar.NewCached(&fakeReviewer{allowAll: true}, sar.CacheOptions{AllowedTTL: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		opts.AllowImpersonation, opts.Reviewer = true, reviewer
		lines = append(lines, "impersonate-user", "bob", "impersonate-group", "devs")
	}
	s, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	req := rawRequest(lines...)
	resp, err := s.Check(context.Background(), req)
	if err != nil || resp.GetOkResponse() == nil {
		b.Fatalf("warm-up Check: %v %v", err, resp)
	}
	return s, req
}

// BenchmarkCheckCacheHit is one Check answered from the verification cache:
// header scan, token fingerprint, HMAC cache lookup, mapping, response
// reuse, metrics and the decision log: log=json counts the hit in the
// cache-hit summary (serve's default), log=json-every-hit encodes one JSON
// line per hit (--log-cache-hits), log=off logs nothing.
func BenchmarkCheckCacheHit(b *testing.B) {
	b.Run("log=json", func(b *testing.B) { benchCheckCacheHit(b, true, false) })
	b.Run("log=json-every-hit", func(b *testing.B) { benchCheckCacheHit(b, true, true) })
	b.Run("log=off", func(b *testing.B) { benchCheckCacheHit(b, false, false) })
}

func benchCheckCacheHit(b *testing.B, logging, logCacheHits bool) {
	s, req := benchServerLogging(b, logging, logCacheHits)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		resp, _ := s.Check(ctx, req)
		if resp.GetOkResponse() == nil {
			b.Fatal("not OK")
		}
	}
	reportCPU(b, cpu)
}

// processCPU is the process's user+system CPU time. On a shared machine
// wall time per op swings with other load; CPU time per op (GC included)
// is the steadier figure, so benchmarks report both.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	if end := processCPU(); end > 0 && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkCheckNestedCacheHit is a kubectl --as bob --as-group devs Check
// with the token and both SubjectAccessReview answers cached: what
// --allow-impersonation adds to a cache hit (parsing the client's lines, two
// review-cache lookups keyed by the whole subject, building the response).
func BenchmarkCheckNestedCacheHit(b *testing.B) {
	s, req := benchServerWith(b, true, false, true)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		resp, _ := s.Check(ctx, req)
		if resp.GetOkResponse() == nil {
			b.Fatal("not OK")
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkCheckCacheHitParallel measures contention on shared state.
func BenchmarkCheckCacheHitParallel(b *testing.B) {
	s, req := benchServer(b, true)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	defer reportCPU(b, cpu)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, _ := s.Check(ctx, req)
			if resp.GetOkResponse() == nil {
				b.Error("not OK")
				return
			}
		}
	})
}
