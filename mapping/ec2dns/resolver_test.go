package ec2dns

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

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

const (
	node1 = "i-0c6f21bf1f24f9708"
	node2 = "i-0123abcd"
	ghost = "i-0fffffffffffffff0"
)

var nodes = map[string]string{node1: "ip-172-31-27-14.eu-west-1.compute.internal", node2: "ip-10-0-0-1.eu-west-1.compute.internal"}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	ec2     *fakeEC2
	r       *Resolver
	clock   *fakeClock
	metrics *Metrics
}

func newFixture(t *testing.T, instances map[string]string, tweak func(*Options)) *fixture {
	t.Helper()
	fake, srv := newFakeEC2(t, instances)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	opts := Options{Client: fake.client(srv), Metrics: m, Now: clock.Now, BatchWindow: time.Millisecond}
	if tweak != nil {
		tweak(&opts)
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ec2: fake, r: r, clock: clock, metrics: m}
}

func (f *fixture) lookups(result string) float64 {
	return testutil.ToFloat64(f.metrics.lookups.WithLabelValues(result))
}

func TestPrivateDNSName(t *testing.T) {
	tests := map[string]struct {
		id         string
		failWith   string
		wantName   string
		wantErr    error
		wantCalls  int
		wantResult string
	}{
		"found":                  {id: node1, wantName: nodes[node1], wantCalls: 1, wantResult: resultFound},
		"short instance id":      {id: node2, wantName: nodes[node2], wantCalls: 1, wantResult: resultFound},
		"no such instance":       {id: ghost, wantErr: kubeuser.ErrForbidden, wantCalls: 1, wantResult: resultNotFound},
		"not an instance id":     {id: "i-aaaaa", wantErr: kubeuser.ErrForbidden, wantResult: resultInvalid},
		"upper-case instance id": {id: "i-0C6F21BF1F24F9708", wantErr: kubeuser.ErrForbidden, wantResult: resultInvalid},
		"session name":           {id: "alice@example.com", wantErr: kubeuser.ErrForbidden, wantResult: resultInvalid},
		"EC2 unavailable":        {id: node1, failWith: "Unavailable", wantErr: kubeuser.ErrUnavailable, wantCalls: 1, wantResult: resultError},
		"EC2 throttling":         {id: node1, failWith: "RequestLimitExceeded", wantErr: kubeuser.ErrUnavailable, wantCalls: 1, wantResult: resultError},
		"access denied is a 503": {id: node1, failWith: "UnauthorizedOperation", wantErr: kubeuser.ErrUnavailable, wantCalls: 1, wantResult: resultError},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nodes, nil)
			f.ec2.failWith = tc.failWith
			got, err := f.r.PrivateDNSName(context.Background(), tc.id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("PrivateDNSName(%q) error = %v, want %v", tc.id, err, tc.wantErr)
				}
			} else if err != nil || got != tc.wantName {
				t.Fatalf("PrivateDNSName(%q) = %q, %v; want %q", tc.id, got, err, tc.wantName)
			}
			if calls := f.ec2.calls(); len(calls) != tc.wantCalls {
				t.Errorf("EC2 calls = %v, want %d", calls, tc.wantCalls)
			}
			if got := f.lookups(tc.wantResult); got != 1 {
				t.Errorf("lookups{result=%q} = %v, want 1", tc.wantResult, got)
			}
		})
	}
}

func TestCaching(t *testing.T) {
	f := newFixture(t, nodes, func(o *Options) { o.TTL = time.Hour; o.NegativeTTL = 10 * time.Second })
	ctx := context.Background()
	steps := []struct {
		advance   time.Duration
		id        string
		wantErr   error
		wantCalls int // cumulative
	}{
		{id: node1, wantCalls: 1},
		{id: node1, wantCalls: 1},                                 // hit
		{id: ghost, wantErr: kubeuser.ErrForbidden, wantCalls: 2}, // miss, cached negatively
		{id: ghost, wantErr: kubeuser.ErrForbidden, wantCalls: 2}, // negative hit
		{advance: 11 * time.Second, id: ghost, wantErr: kubeuser.ErrForbidden, wantCalls: 3},
		{advance: 59 * time.Minute, id: node1, wantCalls: 3}, // still fresh
		{advance: 2 * time.Minute, id: node1, wantCalls: 4},  // expired
	}
	for i, s := range steps {
		f.clock.Advance(s.advance)
		_, err := f.r.PrivateDNSName(ctx, s.id)
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("step %d: error = %v, want %v", i, err, s.wantErr)
		}
		if got := len(f.ec2.calls()); got != s.wantCalls {
			t.Fatalf("step %d: %d EC2 calls, want %d", i, got, s.wantCalls)
		}
	}
	if f.lookups(resultHit) != 2 || f.lookups(resultNegativeHit) != 1 {
		t.Errorf("hits = %v, negative hits = %v; want 2, 1", f.lookups(resultHit), f.lookups(resultNegativeHit))
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	f := newFixture(t, nodes, nil)
	f.ec2.failWith = "Unavailable"
	if _, err := f.r.PrivateDNSName(context.Background(), node1); !errors.Is(err, kubeuser.ErrUnavailable) {
		t.Fatalf("error = %v, want ErrUnavailable", err)
	}
	f.ec2.failWith = ""
	if got, err := f.r.PrivateDNSName(context.Background(), node1); err != nil || got != nodes[node1] {
		t.Fatalf("after recovery = %q, %v", got, err)
	}
	if len(f.ec2.calls()) != 2 {
		t.Errorf("EC2 calls = %d, want 2", len(f.ec2.calls()))
	}
}

func TestCacheIsBounded(t *testing.T) {
	instances := map[string]string{}
	for i := 0; i < 5; i++ {
		instances[fmt.Sprintf("i-0000000%d", i)] = fmt.Sprintf("ip-%d", i)
	}
	f := newFixture(t, instances, func(o *Options) { o.MaxEntries = 3 })
	for i := 0; i < 5; i++ {
		if _, err := f.r.PrivateDNSName(context.Background(), fmt.Sprintf("i-0000000%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(f.metrics.cacheLen); got != 3 {
		t.Errorf("cache entries = %v, want 3", got)
	}
	// The oldest was evicted and costs a call; the newest is cached.
	steps := []struct {
		id        string
		wantCalls int
	}{{"i-00000004", 5}, {"i-00000000", 6}}
	for _, s := range steps {
		if _, err := f.r.PrivateDNSName(context.Background(), s.id); err != nil {
			t.Fatal(err)
		}
		if got := len(f.ec2.calls()); got != s.wantCalls {
			t.Errorf("after %s: %d calls, want %d", s.id, got, s.wantCalls)
		}
	}
}

// TestSingleflight: concurrent lookups of one instance share one call.
func TestSingleflight(t *testing.T) {
	f := newFixture(t, nodes, nil)
	f.ec2.gate = make(chan struct{})
	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := f.r.PrivateDNSName(context.Background(), node1); err != nil || got != nodes[node1] {
				errs <- fmt.Errorf("= %q, %v", got, err)
			}
		}()
	}
	<-f.ec2.arrived // the one call is blocked in the fake
	time.Sleep(20 * time.Millisecond)
	close(f.ec2.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if calls := f.ec2.calls(); len(calls) != 1 {
		t.Errorf("EC2 calls = %v, want 1", calls)
	}
}

// TestBatching: distinct concurrent misses share DescribeInstances calls of
// at most MaxBatch IDs. The window is long so that only full batches can be
// sent: the count of calls does not depend on goroutine scheduling.
func TestBatching(t *testing.T) {
	instances := map[string]string{}
	var ids []string
	for i := 0; i < 150; i++ {
		id := fmt.Sprintf("i-%08x", i)
		ids = append(ids, id)
		if i%3 != 0 {
			instances[id] = "ip-" + id
		}
	}
	f := newFixture(t, instances, func(o *Options) { o.MaxBatch = 75; o.BatchWindow = time.Hour })
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := f.r.PrivateDNSName(context.Background(), id)
			switch {
			case i%3 == 0 && !errors.Is(err, kubeuser.ErrForbidden):
				errs <- fmt.Errorf("%s (absent) = %q, %v; want ErrForbidden", id, got, err)
			case i%3 != 0 && (err != nil || got != "ip-"+id):
				errs <- fmt.Errorf("%s = %q, %v", id, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	calls := f.ec2.calls()
	total := 0
	for _, c := range calls {
		if len(c) > 75 {
			t.Errorf("a call asked for %d instances, more than MaxBatch", len(c))
		}
		total += len(c)
	}
	if len(calls) != 2 || total != 150 {
		t.Errorf("calls = %d asking for %d instances, want 2 full batches of 75", len(calls), total)
	}
	if got := testutil.CollectAndCount(f.metrics.batch); got != 1 {
		t.Errorf("batch histogram series = %d", got)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, nodes, func(o *Options) { o.RateLimit = 0.1; o.Burst = 1; o.CallTimeout = 200 * time.Millisecond })
	if _, err := f.r.PrivateDNSName(context.Background(), node1); err != nil {
		t.Fatalf("first lookup: %v", err)
	}
	// The next token is 10 s away, past the call deadline: fail fast.
	_, err := f.r.PrivateDNSName(context.Background(), node2)
	if !errors.Is(err, kubeuser.ErrUnavailable) || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("second lookup error = %v, want ErrUnavailable from the rate limiter", err)
	}
	if got := len(f.ec2.calls()); got != 1 {
		t.Errorf("EC2 calls = %d, want 1", got)
	}
	if got := testutil.ToFloat64(f.metrics.calls.WithLabelValues(callRateLimited)); got != 1 {
		t.Errorf("calls{result=rate_limited} = %v, want 1", got)
	}
}

func TestShedsWhenTooManyPending(t *testing.T) {
	f := newFixture(t, nodes, func(o *Options) { o.MaxPending = 1 })
	f.ec2.gate = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := f.r.PrivateDNSName(context.Background(), node1)
		done <- err
	}()
	<-f.ec2.arrived
	if _, err := f.r.PrivateDNSName(context.Background(), node2); !errors.Is(err, kubeuser.ErrUnavailable) {
		t.Errorf("lookup beyond MaxPending = %v, want ErrUnavailable", err)
	}
	close(f.ec2.gate)
	if err := <-done; err != nil {
		t.Errorf("first lookup = %v", err)
	}
	if f.lookups(resultShed) != 1 {
		t.Errorf("shed = %v, want 1", f.lookups(resultShed))
	}
}

func TestCallerCancellation(t *testing.T) {
	f := newFixture(t, nodes, nil)
	f.ec2.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.r.PrivateDNSName(ctx, node1)
		done <- err
	}()
	<-f.ec2.arrived
	cancel()
	if err := <-done; !errors.Is(err, kubeuser.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled lookup = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
	close(f.ec2.gate)
	// The shared call still completed and filled the cache.
	deadline := time.Now().Add(5 * time.Second)
	for f.lookups(resultFound) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := f.r.PrivateDNSName(context.Background(), node1); err != nil {
		t.Fatal(err)
	}
	if got := len(f.ec2.calls()); got != 1 {
		t.Errorf("EC2 calls = %d, want 1", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	err := Options{TTL: -1, MaxBatch: 1001, Burst: -1, RateLimit: -1}.Validate()
	for _, want := range []string{"Client is required", "TTL is negative", "MaxBatch 1001 is more than 1000", "Burst is negative", "RateLimit is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to report %q", err, want)
		}
	}
}

func TestNewClientBaseEndpoint(t *testing.T) {
	fake, srv := newFakeEC2(t, nodes)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	client, err := NewClient(context.Background(), ClientOptions{Region: "eu-west-1", BaseEndpoint: srv.URL, RetryMaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.PrivateDNSName(context.Background(), node1); err != nil || got != nodes[node1] {
		t.Fatalf("PrivateDNSName = %q, %v", got, err)
	}
	if len(fake.calls()) != 1 {
		t.Errorf("the stand-in saw %d calls, want 1", len(fake.calls()))
	}
}

// TestMapperWithResolver runs the reference's node vector through the
// mapping package with the real resolver and the EC2 stand-in.
func TestMapperWithResolver(t *testing.T) {
	f := newFixture(t, nodes, nil)
	snap, err := mapping.Parse([]byte("mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/TestNodeRole\n    username: system:node:{{EC2PrivateDNSName}}\n    groups: [system:nodes, system:bootstrappers]\n"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.NewMapper(mapping.MapperOptions{Snapshots: mapping.StaticSource{Snapshot: snap}, EC2: f.r})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		session  string
		wantUser string
		wantErr  error
	}{
		"node":             {session: node1, wantUser: "system:node:" + nodes[node1]},
		"missing instance": {session: ghost, wantErr: kubeuser.ErrForbidden},
		"not an instance":  {session: "i-aaaaa", wantErr: kubeuser.ErrForbidden},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id, err := identity.FromSTS("arn:aws:sts::111122223333:assumed-role/TestNodeRole/"+tc.session, "111122223333", "AROAEXAMPLE:"+tc.session, "ASIAEXAMPLE")
			if err != nil {
				t.Fatal(err)
			}
			u, err := m.Map(context.Background(), id)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && u.Username != tc.wantUser) {
				t.Errorf("Map() = %+v, %v; want %q, %v", u, err, tc.wantUser, tc.wantErr)
			}
		})
	}
}
