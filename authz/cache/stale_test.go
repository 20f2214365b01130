package cache

import (
	"context"
	"errors"

	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// switchable answers with a fixed identity until fail is set, then with
// fail's error.
type switchable struct {
	mu    sync.Mutex
	clock *fakeClock
	life  time.Duration
	err   error
}

func (s *switchable) set(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *switchable) answer(string, string) (verify.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return verify.Result{}, s.err
	}
	return verify.Result{Identity: testIdentity(), Expiry: s.clock.Now().Add(s.life), STSRegion: "us-east-1"}, nil
}

// TestStaleOnTransientFailure: past MaxTTL a verified token is re-verified;
// when STS is down, slow or throttling, the earlier identity is served until
// the token expires, and never after. A definitive rejection is returned,
// never papered over, and neither is an error the table does not call transient.
func TestStaleOnTransientFailure(t *testing.T) {
	unavailable := &sts.Error{Class: sts.ErrUnavailable, Reason: "network", Err: errors.New("connection refused")}
	throttled := &sts.ThrottledError{RetryAfter: time.Second, Status: 400, Code: "Throttling"}
	rejected := &sts.Error{Class: sts.ErrUnauthenticated, Reason: "rejected", Status: 403, Code: "ExpiredToken"}
	tests := map[string]struct {
		failWith  error
		after     time.Duration // since the first verification (MaxTTL 2m, token life 10m)
		wantErr   error         // nil: the identity is served
		wantStale float64
		wantCalls int
	}{
		"outage after MaxTTL serves the earlier identity":     {failWith: unavailable, after: 3 * time.Minute, wantStale: 1, wantCalls: 2},
		"throttling after MaxTTL serves the earlier identity": {failWith: throttled, after: 9 * time.Minute, wantStale: 1, wantCalls: 2},
		"outage after the token expired is an error":          {failWith: unavailable, after: 10*time.Minute + time.Second, wantErr: sts.ErrUnavailable, wantCalls: 2},
		"definitive rejection is returned":                    {failWith: rejected, after: 3 * time.Minute, wantErr: sts.ErrUnauthenticated, wantCalls: 2},
		"an unclassified error is returned":                   {failWith: errBoom, after: 3 * time.Minute, wantErr: errBoom, wantCalls: 2},
		"fresh entries need no upstream":                      {failWith: unavailable, after: time.Minute, wantCalls: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var sw *switchable
			c := newTestCache(t, Options{MaxTTL: 2 * time.Minute},
				func(clock *fakeClock) func(string, string) (verify.Result, error) {
					sw = &switchable{clock: clock, life: 10 * time.Minute}
					return sw.answer
				})
			ctx := context.Background()
			if _, err := c.Verify(ctx, tokenN(1), clusterA); err != nil {
				t.Fatal(err)
			}
			sw.set(tc.failWith)
			c.clock.Advance(tc.after)
			res, err := c.Verify(ctx, tokenN(1), clusterA)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Verify = %v, want the earlier identity", err)
			case tc.wantErr == nil && res.Identity != testIdentity():
				t.Fatalf("Verify = %+v, want the earlier identity", res.Identity)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
			}
			if got := testutil.ToFloat64(c.metrics.stale); got != tc.wantStale {
				t.Errorf("stale served %v times, want %v", got, tc.wantStale)
			}
			if got := c.fake.Calls(); got != tc.wantCalls {
				t.Errorf("upstream calls = %d, want %d", got, tc.wantCalls)
			}
			// Another token was never verified: an outage is an error for it.
			if tc.wantErr == nil && tc.wantCalls > 1 {
				if _, err := c.Verify(ctx, tokenN(2), clusterA); !errors.Is(err, tc.failWith) {
					t.Errorf("new token during the failure: %v, want %v", err, tc.failWith)
				}
			}
		})
	}
}

// TestStaleEntryRecovers: once the upstream answers again, the stale entry
// is replaced by a fresh verification.
func TestStaleEntryRecovers(t *testing.T) {
	var sw *switchable
	c := newTestCache(t, Options{MaxTTL: time.Minute},
		func(clock *fakeClock) func(string, string) (verify.Result, error) {
			sw = &switchable{clock: clock, life: 15 * time.Minute}
			return sw.answer
		})
	ctx := context.Background()
	for i, step := range []struct {
		fail      error
		advance   time.Duration
		wantCalls int
	}{
		{nil, 0, 1},
		{&sts.Error{Class: sts.ErrUnavailable, Reason: "timeout"}, 2 * time.Minute, 2}, // stale
		{nil, time.Second, 2},      // upstream back, but within StaleRetry: not asked yet
		{nil, 5 * time.Second, 3},  // asked again, verified
		{nil, 30 * time.Second, 3}, // fresh hit
	} {
		sw.set(step.fail)
		c.clock.Advance(step.advance)
		if _, err := c.Verify(ctx, tokenN(1), clusterA); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := c.fake.Calls(); got != step.wantCalls {
			t.Fatalf("step %d: upstream calls = %d, want %d", i, got, step.wantCalls)
		}
	}
}

// TestStaleRetryBacksOff: while STS keeps failing, a stale identity is not
// re-verified on every request (which would hammer a failing STS and use up
// the rate limit new tokens need) but once per StaleRetry.
func TestStaleRetryBacksOff(t *testing.T) {
	var sw *switchable
	c := newTestCache(t, Options{MaxTTL: time.Minute, StaleRetry: 5 * time.Second},
		func(clock *fakeClock) func(string, string) (verify.Result, error) {
			sw = &switchable{clock: clock, life: 15 * time.Minute}
			return sw.answer
		})
	ctx := context.Background()
	if _, err := c.Verify(ctx, tokenN(1), clusterA); err != nil {
		t.Fatal(err)
	}
	sw.set(&sts.Error{Class: sts.ErrUnavailable, Reason: "network"})
	c.clock.Advance(2 * time.Minute)
	for i, step := range []struct {
		advance   time.Duration
		wantCalls int
	}{
		{0, 2},                       // past MaxTTL: asked, failed, served stale
		{time.Second, 2},             // within StaleRetry: not asked again
		{3 * time.Second, 2},         // still within
		{1500 * time.Millisecond, 3}, // 5.5s later: asked again
		{0, 3},
	} {
		c.clock.Advance(step.advance)
		for j := 0; j < 10; j++ {
			if _, err := c.Verify(ctx, tokenN(1), clusterA); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		if got := c.fake.Calls(); got != step.wantCalls {
			t.Fatalf("step %d: upstream calls = %d, want %d", i, got, step.wantCalls)
		}
	}
}
