package sar

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeReviewer counts calls and answers allowed for user "alice".
type fakeReviewer struct {
	calls   atomic.Int32
	err     error
	block   chan struct{}
	started chan struct{}
}

func (f *fakeReviewer) Review(ctx context.Context, s Subject, _ Attributes) (Decision, error) {
	f.calls.Add(1)
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return Decision{}, ctx.Err()
		}
	}
	if f.err != nil {
		return Decision{}, f.err
	}
	return Decision{Allowed: s.User == "alice", Reason: "fake"}, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

var (
	alice    = Subject{User: "alice", Groups: []string{"devs", "system:authenticated"}, UID: "u", Extra: map[string][]string{"arn": {"a"}}}
	mallory  = Subject{User: "mallory", Groups: []string{"devs"}}
	userBob  = Attributes{Verb: "impersonate", Version: "v1", Resource: "users", Name: "bob"}
	groupDev = Attributes{Verb: "impersonate", Version: "v1", Resource: "groups", Name: "devs"}
)

func newTestCache(t *testing.T, next Reviewer, o CacheOptions) (*Cached, *clock, *Metrics) {
	t.Helper()
	c := &clock{t: time.Unix(1e9, 0)}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	o.Now, o.Metrics = c.now, m
	cached, err := NewCached(next, o)
	if err != nil {
		t.Fatal(err)
	}
	return cached, c, m
}

func TestCachedAllowedAndDeniedExpire(t *testing.T) {
	f := &fakeReviewer{}
	c, clk, m := newTestCache(t, f, CacheOptions{AllowedTTL: 5 * time.Second, DeniedTTL: 2 * time.Second})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if d, err := c.Review(ctx, alice, userBob); err != nil || !d.Allowed {
			t.Fatalf("alice: %+v %v", d, err)
		}
		if d, err := c.Review(ctx, mallory, userBob); err != nil || d.Allowed {
			t.Fatalf("mallory: %+v %v", d, err)
		}
	}
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("calls = %d, want 2 (one per subject)", got)
	}
	clk.add(3 * time.Second) // past the denied TTL only
	_, _ = c.Review(ctx, alice, userBob)
	_, _ = c.Review(ctx, mallory, userBob)
	if got := f.calls.Load(); got != 3 {
		t.Fatalf("calls = %d, want 3 (the denial expired, the allow did not)", got)
	}
	clk.add(3 * time.Second)
	_, _ = c.Review(ctx, alice, userBob)
	if got := f.calls.Load(); got != 4 {
		t.Fatalf("calls = %d, want 4 (the allow expired)", got)
	}
	if hits := testutil.ToFloat64(m.hits); hits != 5 {
		t.Errorf("hits = %v, want 5", hits)
	}
	if misses := testutil.ToFloat64(m.misses); misses != 4 {
		t.Errorf("misses = %v, want 4", misses)
	}
}

// TestCachedKeyIsTheWholeQuestion: any difference in the subject or the
// attributes is a different review.
func TestCachedKeyIsTheWholeQuestion(t *testing.T) {
	variants := []struct {
		s Subject
		a Attributes
	}{
		{alice, userBob},
		{alice, groupDev},
		{Subject{User: "alice", Groups: []string{"devs"}, UID: "u", Extra: map[string][]string{"arn": {"a"}}}, userBob},
		{Subject{User: "alice", Groups: []string{"devs,system:authenticated"}, UID: "u", Extra: map[string][]string{"arn": {"a"}}}, userBob},
		{Subject{User: "alice", Groups: alice.Groups, UID: "v", Extra: alice.Extra}, userBob},
		{Subject{User: "alice", Groups: alice.Groups, UID: "u", Extra: map[string][]string{"arn": {"b"}}}, userBob},
		{Subject{User: "alice", Groups: alice.Groups, UID: "u", Extra: map[string][]string{"arn": {"a"}, "x": {"y"}}}, userBob},
		{alice, Attributes{Verb: "impersonate", Version: "v1", Resource: "serviceaccounts", Namespace: "ns", Name: "bob"}},
		{alice, Attributes{Verb: "impersonate", Group: "authentication.k8s.io", Version: "v1", Resource: "userextras", Subresource: "k", Name: "bob"}},
	}
	seen := map[string]int{}
	for i, v := range variants {
		k := key(v.s, v.a)
		if j, dup := seen[k]; dup {
			t.Errorf("variants %d and %d share a key", j, i)
		}
		seen[k] = i
	}
	// Map order does not change the key.
	a := Subject{User: "u", Extra: map[string][]string{"a": {"1"}, "b": {"2"}, "c": {"3"}}}
	for i := 0; i < 20; i++ {
		if key(a, userBob) != key(Subject{User: "u", Extra: map[string][]string{"c": {"3"}, "b": {"2"}, "a": {"1"}}}, userBob) {
			t.Fatal("key depends on map order")
		}
	}
}

func TestCachedErrorsAreNotCached(t *testing.T) {
	f := &fakeReviewer{err: ErrUnavailable}
	c, _, _ := newTestCache(t, f, CacheOptions{})
	for i := 0; i < 2; i++ {
		if _, err := c.Review(context.Background(), alice, userBob); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	}
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("calls = %d, want 2", got)
	}
}

func TestCachedSingleflight(t *testing.T) {
	f := &fakeReviewer{block: make(chan struct{}), started: make(chan struct{}, 10)}
	c, _, m := newTestCache(t, f, CacheOptions{})
	var wg sync.WaitGroup
	results := make(chan Decision, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := c.Review(context.Background(), alice, userBob)
			if err != nil {
				t.Error(err)
			}
			results <- d
		}()
	}
	<-f.started
	// Wait until all five are inside (four joined the one flight).
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(m.misses) < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(f.block)
	wg.Wait()
	close(results)
	for d := range results {
		if !d.Allowed {
			t.Error("a joined caller got a denial")
		}
	}
	if got := f.calls.Load(); got != 1 {
		t.Errorf("calls = %d, want 1", got)
	}
}

// TestCachedCallerGivesUp: a caller whose context ends gets
// ErrUnavailable (never an allow) and the flight goes on for others.
func TestCachedCallerGivesUp(t *testing.T) {
	f := &fakeReviewer{block: make(chan struct{}), started: make(chan struct{}, 1)}
	c, _, _ := newTestCache(t, f, CacheOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Review(ctx, alice, userBob)
		done <- err
	}()
	<-f.started
	cancel()
	if err := <-done; !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrUnavailable and Canceled", err)
	}
	close(f.block)
	// The detached flight completes and its answer is cached.
	deadline := time.Now().Add(5 * time.Second)
	for c.entries.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if d, err := c.Review(context.Background(), alice, userBob); err != nil || !d.Allowed || f.calls.Load() != 1 {
		t.Fatalf("after the flight: %+v %v, calls %d", d, err, f.calls.Load())
	}
}

func TestCachedBounded(t *testing.T) {
	f := &fakeReviewer{}
	c, _, _ := newTestCache(t, f, CacheOptions{MaxEntries: 2})
	for _, n := range []string{"a", "b", "c", "d"} {
		_, _ = c.Review(context.Background(), alice, Attributes{Verb: "impersonate", Resource: "users", Name: n})
	}
	if c.entries.Len() != 2 {
		t.Errorf("entries = %d, want 2", c.entries.Len())
	}
}

func TestCacheOptionsValidate(t *testing.T) {
	for name, o := range map[string]CacheOptions{
		"negative TTL":   {AllowedTTL: -1},
		"TTL too long":   {DeniedTTL: 2 * MaxTTL},
		"negative size":  {MaxEntries: -1},
		"negative timer": {FlightTimeout: -1},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := NewCached(nil, CacheOptions{}); err == nil {
		t.Error("nil reviewer accepted")
	}
}
