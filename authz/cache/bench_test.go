package cache

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// Benchmarks use tokens of the size `aws eks get-token` produces with
// temporary credentials (the session token makes them ~1.4 KiB), since the
// HMAC over the token is most of a hit's cost.
const benchTokenLen = 1400

func benchToken(i int) string {
	suffix := fmt.Sprintf(".%08d", i)
	return "k8s-aws-v1." + strings.Repeat("a", benchTokenLen-len("k8s-aws-v1.")-len(suffix)) + suffix
}

// benchResult is a realistic verified identity whose strings are freshly
// allocated, as they are when decoded from an STS answer.
func benchResult(i int, expiry time.Time) verify.Result {
	acct := fmt.Sprintf("%012d", 100000000000+i%1000)
	session := fmt.Sprintf("alice.%06d@example.com", i)
	principal := fmt.Sprintf("AROA%017d", i)
	return verify.Result{
		Identity: identity.Identity{
			ARN:          "arn:aws:sts::" + acct + ":assumed-role/eks-platform-developers/" + session,
			CanonicalARN: "arn:aws:iam::" + acct + ":role/eks-platform-developers",
			AccountID:    acct,
			UserID:       principal + ":" + session,
			PrincipalID:  principal,
			SessionName:  session,
			AccessKeyID:  fmt.Sprintf("ASIA%016d", i),
			Kind:         identity.KindAssumedRole,
		},
		Expiry:    expiry,
		STSRegion: "us-east-1",
	}
}

// benchVerifier answers instantly with a fresh identity per call, or with
// one fixed result when static is set (to count only the cache's own
// allocations).
type benchVerifier struct {
	now    func() time.Time
	n      int
	static *verify.Result
}

func (v *benchVerifier) Verify(context.Context, string, string) (verify.Result, error) {
	if v.static != nil {
		return *v.static, nil
	}
	v.n++
	return benchResult(v.n, v.now().Add(15*time.Minute)), nil
}

func newBenchCache(b *testing.B, o Options) *Cache {
	b.Helper()
	clock := newFakeClock()
	o.Now = clock.Now
	c, err := New(&benchVerifier{now: clock.Now}, o)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkCacheHit(b *testing.B) {
	c := newBenchCache(b, Options{})
	tok := benchToken(0)
	ctx := context.Background()
	if _, err := c.Verify(ctx, tok, clusterA); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if _, err := c.Verify(ctx, tok, clusterA); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkCacheHitParallel measures hits from many goroutines over 4096
// distinct cached tokens, with one LRU lock and with 16, at GOMAXPROCS
// goroutines and at 8x that (a gRPC server runs one goroutine per stream).
func BenchmarkCacheHitParallel(b *testing.B) {
	const tokens = 4096
	toks := make([]string, tokens)
	for i := range toks {
		toks[i] = benchToken(i)
	}
	for _, shards := range []int{1, 16} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("shards=%d/goroutines=%dxGOMAXPROCS", shards, par), func(b *testing.B) {
				c := newBenchCache(b, Options{Shards: shards})
				ctx := context.Background()
				for _, tok := range toks {
					if _, err := c.Verify(ctx, tok, clusterA); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.SetParallelism(par)
				b.ResetTimer()
				cpu := processCPU()
				b.RunParallel(func(pb *testing.PB) {
					i := int(time.Now().UnixNano()) // spread goroutines' starting points
					for pb.Next() {
						i++
						if _, err := c.Verify(ctx, toks[i&(tokens-1)], clusterA); err != nil {
							b.Error(err)
							return
						}
					}
				})
				reportCPU(b, cpu)
			})
		}
	}
}

// BenchmarkCacheMiss measures the cache's own overhead on a miss (key,
// singleflight, detached context and timer, insertion, eviction) with an
// upstream that answers at once with a fixed result.
// Cluster ids cycle through more values than the cache holds, so every
// lookup misses.
func BenchmarkCacheMiss(b *testing.B) {
	const distinct = 1 << 16
	clusters := make([]string, distinct)
	for i := range clusters {
		clusters[i] = fmt.Sprintf("cluster-%05d", i)
	}
	clock := newFakeClock()
	static := benchResult(0, clock.Now().Add(15*time.Minute))
	c, err := New(&benchVerifier{static: &static}, Options{MaxEntries: 4096, Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	tok := benchToken(0)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	cpu := processCPU()
	for b.Loop() {
		i++
		if _, err := c.Verify(ctx, tok, clusters[i&(distinct-1)]); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkCacheHeap reports the live heap a cache holds at 0, 10k and
// 100k entries of realistic identities (heap-MiB and B/entry), measured
// with runtime.ReadMemStats after a GC. The target is 100k entries within
// 64 MiB. ns/op is a hit at that size.
func BenchmarkCacheHeap(b *testing.B) {
	for _, n := range []int{0, 10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			before := liveHeap()
			// Room to spare: a sharded LRU filled to exactly MaxEntries evicts a
			// little early in its fuller shards.
			c := newBenchCache(b, Options{MaxEntries: max(2*n, DefaultMaxEntries)})
			ctx := context.Background()
			for i := range n {
				if _, err := c.Verify(ctx, benchToken(i), clusterA); err != nil {
					b.Fatal(err)
				}
			}
			after := liveHeap()
			if got := c.Len(); got != n {
				b.Fatalf("Len() = %d, want %d", got, n)
			}
			tok := benchToken(n / 2)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Verify(ctx, tok, clusterA); err != nil {
					b.Fatal(err)
				}
			}
			// Reported after the loop: b.Loop's first call resets metrics.
			held := float64(after) - float64(before)
			b.ReportMetric(held/(1<<20), "heap-MiB")
			if n > 0 {
				b.ReportMetric(held/float64(n), "B/entry")
			}
			runtime.KeepAlive(c)
		})
	}
}

// reportCPU adds cpu-ns/op: process CPU time since start over b.N.
func reportCPU(b *testing.B, start time.Duration) {
	if cpu := processCPU() - start; cpu > 0 && b.N > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	}
}

func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkDigest is the HMAC-SHA256 of a realistic token: most of a hit.
func BenchmarkDigest(b *testing.B) {
	k, err := newKeyer()
	if err != nil {
		b.Fatal(err)
	}
	tok := benchToken(0)
	b.ReportAllocs()
	b.SetBytes(int64(len(tok)))
	cpu := processCPU()
	for b.Loop() {
		k.digest(tok, clusterA)
	}
	reportCPU(b, cpu)
}

// BenchmarkStoreGetParallel isolates the locked part of a hit (map lookup,
// recency update, entry copy) to show what sharding buys: the digest is
// computed outside any lock.
func BenchmarkStoreGetParallel(b *testing.B) {
	const keys = 4096
	k, err := newKeyer()
	if err != nil {
		b.Fatal(err)
	}
	digests := make([]digest, keys)
	for i := range digests {
		digests[i] = k.digest(benchToken(i), clusterA)
	}
	m, err := NewMetrics(nil)
	if err != nil {
		b.Fatal(err)
	}
	now := instant{wall: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	for _, shards := range []int{1, 16} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			s, err := newStore(DefaultMaxEntries, shards, m)
			if err != nil {
				b.Fatal(err)
			}
			for i, d := range digests {
				s.put(d, entry{res: benchResult(i, now.wall.Add(time.Hour)), deadline: time.Hour}, now)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				i := int(time.Now().UnixNano())
				for pb.Next() {
					i++
					if _, ok := s.get(digests[i&(keys-1)], now); !ok {
						b.Error("miss")
						return
					}
				}
			})
			reportCPU(b, cpu)
		})
	}
}
