package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

const (
	clusterA = "cluster-a"
	clusterB = "cluster-b"
)

func tokenN(i int) string { return fmt.Sprintf("k8s-aws-v1.token-%04d", i) }

type testCache struct {
	*Cache
	clock   *fakeClock
	fake    *fakeVerifier
	metrics *Metrics
}

func newTestCache(t *testing.T, o Options, answer func(*fakeClock) func(string, string) (verify.Result, error)) *testCache {
	t.Helper()
	clock := newFakeClock()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeVerifier{answer: answer(clock)}
	o.Now = clock.Now
	o.Metrics = m
	c, err := New(fake, o)
	if err != nil {
		t.Fatal(err)
	}
	return &testCache{Cache: c, clock: clock, fake: fake, metrics: m}
}

func expiringIn(ttl time.Duration) func(*fakeClock) func(string, string) (verify.Result, error) {
	return func(c *fakeClock) func(string, string) (verify.Result, error) { return answerExpiring(c.Now, ttl) }
}

func failingWith(err error) func(*fakeClock) func(string, string) (verify.Result, error) {
	return func(*fakeClock) func(string, string) (verify.Result, error) { return answerError(err) }
}

func TestCacheTTL(t *testing.T) {
	tests := map[string]struct {
		maxTTL   time.Duration
		answer   func(*fakeClock) func(string, string) (verify.Result, error)
		wantLife time.Duration // how long the result is served; 0: not cached
	}{
		"token expiry caps the TTL": {
			maxTTL: 2 * time.Minute, answer: expiringIn(30 * time.Second), wantLife: 30 * time.Second,
		},
		"MaxTTL caps the TTL": {
			maxTTL: 2 * time.Minute, answer: expiringIn(15 * time.Minute), wantLife: 2 * time.Minute,
		},
		"MaxTTL equal to the token's remaining life": {
			maxTTL: time.Minute, answer: expiringIn(time.Minute), wantLife: time.Minute,
		},
		"result already past expiry is not cached": {
			maxTTL: 2 * time.Minute, answer: expiringIn(-time.Second), wantLife: 0,
		},
		"result expiring right now is not cached": {
			maxTTL: 2 * time.Minute, answer: expiringIn(0), wantLife: 0,
		},
		"result without expiry is not cached": {
			maxTTL: 2 * time.Minute,
			answer: func(*fakeClock) func(string, string) (verify.Result, error) {
				return func(string, string) (verify.Result, error) { return verify.Result{Identity: testIdentity()}, nil }
			},
			wantLife: 0,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := newTestCache(t, Options{MaxTTL: tc.maxTTL}, tc.answer)
			ctx := t.Context()
			tok := tokenN(1)
			if _, err := c.Verify(ctx, tok, clusterA); err != nil {
				t.Fatal(err)
			}
			if tc.wantLife == 0 {
				if got := c.Len(); got != 0 {
					t.Errorf("Len() = %d after an expired result, want 0", got)
				}
				if _, err := c.Verify(ctx, tok, clusterA); err != nil {
					t.Fatal(err)
				}
				if got := c.fake.Calls(); got != 2 {
					t.Errorf("upstream calls = %d, want 2 (nothing cached)", got)
				}
				return
			}
			c.clock.Advance(tc.wantLife - time.Nanosecond)
			res, err := c.Verify(ctx, tok, clusterA)
			if err != nil {
				t.Fatal(err)
			}
			if res.Identity != testIdentity() {
				t.Errorf("cached identity = %+v, want %+v", res.Identity, testIdentity())
			}
			if got := c.fake.Calls(); got != 1 {
				t.Errorf("upstream calls 1ns before the end of life = %d, want 1", got)
			}
			c.clock.Advance(time.Nanosecond)
			if _, err := c.Verify(ctx, tok, clusterA); err != nil {
				t.Fatal(err)
			}
			if got := c.fake.Calls(); got != 2 {
				t.Errorf("upstream calls at the end of life = %d, want 2", got)
			}
		})
	}
}

func TestCacheRepeatedTokenCallsUpstreamOncePerLife(t *testing.T) {
	c := newTestCache(t, Options{MaxTTL: 2 * time.Minute}, expiringIn(15*time.Minute))
	ctx := t.Context()
	steps := []struct {
		advance   time.Duration
		wantCalls int
	}{
		{0, 1},
		{time.Second, 1},
		{30 * time.Second, 1},
		{88 * time.Second, 1},       // t = 1m59s
		{999 * time.Millisecond, 1}, // t = 2m - 1ms
		{time.Millisecond, 2},       // t = 2m: expired, refreshed until 4m
		{time.Minute, 2},
		{time.Minute, 3},
	}
	for i, s := range steps {
		c.clock.Advance(s.advance)
		if _, err := c.Verify(ctx, tokenN(7), clusterA); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := c.fake.Calls(); got != s.wantCalls {
			t.Errorf("step %d: upstream calls = %d, want %d", i, got, s.wantCalls)
		}
	}
	if got := testutil.ToFloat64(c.metrics.hits); got != 5 {
		t.Errorf("hits = %v, want 5", got)
	}
	if got := testutil.ToFloat64(c.metrics.misses); got != 3 {
		t.Errorf("misses = %v, want 3", got)
	}
}

func TestCacheConcurrentMissesShareOneCall(t *testing.T) {
	const callers = 100
	c := newTestCache(t, Options{}, expiringIn(15*time.Minute))
	c.fake.gate = make(chan struct{})

	var wg sync.WaitGroup
	results := make([]verify.Result, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = c.Verify(context.Background(), tokenN(1), clusterA) })
	}
	// The upstream call is blocked on the gate, so the flight cannot end:
	// once every caller is registered on it, all of them are sharing it.
	waitFor(t, "all callers waiting on the flight", func() bool {
		return c.waiting.Load() == callers && c.fake.Calls() > 0
	})
	if got := c.fake.Calls(); got != 1 {
		t.Fatalf("upstream calls while %d callers wait = %d, want 1", callers, got)
	}
	close(c.fake.gate)
	wg.Wait()

	for i := range callers {
		if errs[i] != nil || results[i].Identity != testIdentity() {
			t.Errorf("caller %d: got (%+v, %v), want the verified identity", i, results[i].Identity, errs[i])
		}
	}
	if got := c.fake.Calls(); got != 1 {
		t.Errorf("upstream calls = %d, want 1", got)
	}
	if got := testutil.ToFloat64(c.metrics.shared); got != callers-1 {
		t.Errorf("singleflight shared = %v, want %d", got, callers-1)
	}
	if got := testutil.ToFloat64(c.metrics.misses); got != callers {
		t.Errorf("misses = %v, want %d", got, callers)
	}
}

func TestCacheWaiterCancellationDoesNotFailOthers(t *testing.T) {
	c := newTestCache(t, Options{}, expiringIn(15*time.Minute))
	c.fake.gate = make(chan struct{})

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.Verify(leaderCtx, tokenN(1), clusterA)
		leaderErr <- err
	}()
	// The first caller's function is the one running upstream.
	waitFor(t, "the leader's upstream call", func() bool { return c.fake.Calls() == 1 })

	const others = 2
	var wg sync.WaitGroup
	errs := make([]error, others)
	for i := range others {
		wg.Go(func() { _, errs[i] = c.Verify(context.Background(), tokenN(1), clusterA) })
	}
	waitFor(t, "all callers waiting", func() bool { return c.waiting.Load() == others+1 })

	cancelLeader()
	// The upstream call is still blocked, so the leader can only return
	// here because it honours its own context.
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: err = %v, want context.Canceled", err)
	}
	close(c.fake.gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("other caller %d: err = %v, want nil", i, err)
		}
	}
	c.fake.mu.Lock()
	upstreamErrs, hadDeadline := c.fake.ctxErrs, c.fake.ctxHasDeadline
	c.fake.mu.Unlock()
	if len(upstreamErrs) != 1 || upstreamErrs[0] != nil {
		t.Errorf("upstream context errors = %v, want one call with a live context", upstreamErrs)
	}
	if len(hadDeadline) != 1 || !hadDeadline[0] {
		t.Errorf("upstream context deadlines = %v, want the flight timeout", hadDeadline)
	}
	// The abandoned leader's result was still cached.
	if _, err := c.Verify(context.Background(), tokenN(1), clusterA); err != nil {
		t.Fatal(err)
	}
	if got := c.fake.Calls(); got != 1 {
		t.Errorf("upstream calls = %d, want 1", got)
	}
}

func TestCacheFlightTimeoutBoundsDetachedCall(t *testing.T) {
	c := newTestCache(t, Options{FlightTimeout: 20 * time.Millisecond}, expiringIn(15*time.Minute))
	c.fake.gate = make(chan struct{}) // never opened: only the flight timeout ends the call
	_, err := c.Verify(context.Background(), tokenN(1), clusterA)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded from the flight timeout", err)
	}
	if got := c.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0: a timeout is not cached", got)
	}
}

func TestCacheCallerContextAlreadyDone(t *testing.T) {
	c := newTestCache(t, Options{}, expiringIn(15*time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Verify(ctx, tokenN(1), clusterA); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if got := c.fake.Calls(); got != 0 {
		t.Errorf("upstream calls = %d, want 0 for a caller that already gave up", got)
	}
}

func TestCacheNegativeTTL(t *testing.T) {
	tests := map[string]struct {
		err error
	}{
		"local format rejection":    {err: &token.FormatError{Rule: "prefix", Detail: "missing k8s-aws-v1."}},
		"STS refused the signature": {err: fmt.Errorf("%w: SignatureDoesNotMatch", sts.ErrUnauthenticated)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := newTestCache(t, Options{NegativeTTL: 10 * time.Second}, failingWith(tc.err))
			ctx := t.Context()
			if _, err := c.Verify(ctx, tokenN(1), clusterA); !errors.Is(err, tc.err) {
				t.Fatalf("first call: err = %v, want %v", err, tc.err)
			}
			c.clock.Advance(10*time.Second - time.Nanosecond)
			res, err := c.Verify(ctx, tokenN(1), clusterA)
			if !errors.Is(err, tc.err) || res != (verify.Result{}) {
				t.Errorf("within NegativeTTL: got (%+v, %v), want (zero, %v)", res, err, tc.err)
			}
			if got := c.fake.Calls(); got != 1 {
				t.Errorf("upstream calls within NegativeTTL = %d, want 1", got)
			}
			if got := testutil.ToFloat64(c.metrics.negativeHits); got != 1 {
				t.Errorf("negative hits = %v, want 1", got)
			}
			c.clock.Advance(time.Nanosecond)
			if _, err := c.Verify(ctx, tokenN(1), clusterA); !errors.Is(err, tc.err) {
				t.Errorf("after NegativeTTL: err = %v, want %v", err, tc.err)
			}
			if got := c.fake.Calls(); got != 2 {
				t.Errorf("upstream calls after NegativeTTL = %d, want 2", got)
			}
		})
	}
}

func TestCacheDoesNotCacheTransientErrors(t *testing.T) {
	tests := map[string]struct {
		err error
	}{
		"STS throttled":         {err: fmt.Errorf("%w: Throttling", sts.ErrThrottled)},
		"STS unavailable (5xx)": {err: fmt.Errorf("%w: 503", sts.ErrUnavailable)},
		"timeout":               {err: fmt.Errorf("%w: %w", sts.ErrUnavailable, context.DeadlineExceeded)},
		"flight deadline":       {err: fmt.Errorf("cache: %w", context.DeadlineExceeded)},
		"client went away":      {err: context.Canceled},
		"unclassified error":    {err: errors.New("boom")},
		"unsupported identity":  {err: fmt.Errorf("%w: arn:aws:iam::1:unknown/x", identity.ErrInvalidARN)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := newTestCache(t, Options{}, failingWith(tc.err))
			for i := range 3 {
				if _, err := c.Verify(t.Context(), tokenN(1), clusterA); !errors.Is(err, tc.err) {
					t.Fatalf("call %d: err = %v, want %v", i, err, tc.err)
				}
			}
			if got := c.fake.Calls(); got != 3 {
				t.Errorf("upstream calls = %d, want 3 (never cached)", got)
			}
			if got := c.Len(); got != 0 {
				t.Errorf("Len() = %d, want 0", got)
			}
		})
	}
}

func TestCacheIsolatesClusters(t *testing.T) {
	c := newTestCache(t, Options{}, expiringIn(15*time.Minute))
	ctx := t.Context()
	steps := []struct {
		cluster   string
		wantCalls int
	}{
		{clusterA, 1},
		{clusterB, 2}, // same token, other cluster: a miss, never A's verdict
		{clusterA, 2},
		{clusterB, 2},
		{"", 3},
	}
	for i, s := range steps {
		if _, err := c.Verify(ctx, tokenN(1), s.cluster); err != nil {
			t.Fatal(err)
		}
		if got := c.fake.Calls(); got != s.wantCalls {
			t.Errorf("step %d (cluster %q): upstream calls = %d, want %d", i, s.cluster, got, s.wantCalls)
		}
	}
}

func TestCacheLRUEviction(t *testing.T) {
	c := newTestCache(t, Options{MaxEntries: 3, Shards: 1}, expiringIn(15*time.Minute))
	steps := []struct {
		tok           int
		wantCalls     int
		wantEvictions float64
	}{
		{1, 1, 0},
		{2, 2, 0},
		{3, 3, 0},
		{1, 3, 0}, // hit: 1 becomes most recent; 2 is now the least
		{4, 4, 1}, // full: evicts 2
		{1, 4, 1},
		{3, 4, 1},
		{4, 4, 1},
		{2, 5, 2}, // evicted earlier: a miss, evicting 1 (least recent)
		{1, 6, 3},
	}
	for i, s := range steps {
		if _, err := c.Verify(t.Context(), tokenN(s.tok), clusterA); err != nil {
			t.Fatal(err)
		}
		if got := c.fake.Calls(); got != s.wantCalls {
			t.Errorf("step %d (token %d): upstream calls = %d, want %d", i, s.tok, got, s.wantCalls)
		}
		if got := testutil.ToFloat64(c.metrics.evictions); got != s.wantEvictions {
			t.Errorf("step %d (token %d): evictions = %v, want %v", i, s.tok, got, s.wantEvictions)
		}
		if got, want := c.Len(), min(i+1, 3); got != want {
			t.Errorf("step %d: Len() = %d, want %d", i, got, want)
		}
	}
	if got := testutil.ToFloat64(c.metrics.entries); got != 3 {
		t.Errorf("entries gauge = %v, want 3", got)
	}
}

func TestCacheDropsExpiredEntriesBeforeEvicting(t *testing.T) {
	clock := newFakeClock()
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	lifetimes := map[string]time.Duration{tokenN(1): 10 * time.Second, tokenN(2): 15 * time.Minute, tokenN(3): 15 * time.Minute}
	fake := &fakeVerifier{answer: func(tok, _ string) (verify.Result, error) {
		return verify.Result{Identity: testIdentity(), Expiry: clock.Now().Add(lifetimes[tok])}, nil
	}}
	c, err := New(fake, Options{MaxEntries: 2, Shards: 1, Now: clock.Now, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{tokenN(1), tokenN(2)} {
		if _, err := c.Verify(t.Context(), tok, clusterA); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(11 * time.Second) // token 1's entry has expired
	for _, tok := range []string{tokenN(3), tokenN(2)} {
		if _, err := c.Verify(t.Context(), tok, clusterA); err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.Calls(); got != 3 {
		t.Errorf("upstream calls = %d, want 3: token 2 must survive, token 1's expired entry made room", got)
	}
	if got := testutil.ToFloat64(m.evictions); got != 0 {
		t.Errorf("evictions = %v, want 0: dropping an expired entry is not an eviction", got)
	}
	if got := testutil.ToFloat64(m.entries); got != 2 {
		t.Errorf("entries gauge = %v, want 2", got)
	}
}

func TestCacheContainsVerifierPanic(t *testing.T) {
	const callers = 3
	core, logs := observer.New(zap.DebugLevel)
	clock := newFakeClock()
	var mu sync.Mutex
	panics := true
	fake := &fakeVerifier{gate: make(chan struct{}), answer: func(tok, _ string) (verify.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if panics {
			panics = false
			panic("verifier bug while handling " + tok)
		}
		return answerExpiring(clock.Now, 15*time.Minute)(tok, "")
	}}
	c, err := New(fake, Options{Now: clock.Now, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { _, errs[i] = c.Verify(context.Background(), tokenN(1), clusterA) })
	}
	waitFor(t, "all callers waiting", func() bool { return c.waiting.Load() == callers })
	close(fake.gate)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrVerifierPanicked) {
			t.Errorf("caller %d: err = %v, want ErrVerifierPanicked", i, err)
		}
	}
	// Not cached, even with a predicate that would cache any error.
	if _, err := c.Verify(context.Background(), tokenN(1), clusterA); err != nil {
		t.Errorf("after the panic: err = %v, want a fresh, successful call", err)
	}
	if got := fake.Calls(); got != 2 {
		t.Errorf("upstream calls = %d, want 2", got)
	}
	entries := logs.FilterMessage("token verifier panicked").All()
	if len(entries) != 1 {
		t.Fatalf("panic log entries = %d, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	if got, want := fields["token_fingerprint"], token.Fingerprint(tokenN(1)); got != want {
		t.Errorf("token_fingerprint = %v, want %v", got, want)
	}
	for k, v := range fields {
		if strings.Contains(fmt.Sprint(v), tokenN(1)) {
			t.Errorf("log field %q contains the token", k)
		}
	}
}

func TestCacheMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, want := range []string{
		"kube_iam_authz_cache_requests_total",
		"kube_iam_authz_cache_evictions_total",
		"kube_iam_authz_cache_entries",
		"kube_iam_authz_cache_singleflight_shared_total",
	} {
		if !got[want] {
			t.Errorf("metric %s not registered (got %v)", want, got)
		}
	}
	n, err := testutil.GatherAndCount(reg, "kube_iam_authz_cache_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("requests_total series = %d, want 4 (hit, miss, negative_hit, stale exported from the start)", n)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice on one registry: err = nil, want the duplicate registration error")
	}
}

func TestNewRejectsNilVerifier(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New(nil): err = nil, want an error")
	}
}
