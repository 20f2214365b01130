package cache

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// TestTraceMarksOnlyTheCallerThatWentUpstream: the trace a Check hands in
// says "hit" unless this very call asked the upstream verifier: a fresh
// entry, a cached rejection and a wait on another caller's flight are hits;
// the caller that led the flight is not.
func TestTraceMarksOnlyTheCallerThatWentUpstream(t *testing.T) {
	c := newTestCache(t, Options{}, expiringIn(15*time.Minute))
	verifyTraced := func(tok string) bool {
		var tr Trace
		if _, err := c.Verify(tracedCtx(t, &tr), tok, clusterA); err != nil {
			t.Fatal(err)
		}
		return tr.Hit()
	}
	if verifyTraced(tokenN(1)) {
		t.Error("first verification: Hit() = true, want false (it went upstream)")
	}
	if !verifyTraced(tokenN(1)) {
		t.Error("second verification: Hit() = false, want true (served from the cache)")
	}

	rejecting := newTestCache(t, Options{}, failingWith(&token.FormatError{Rule: "prefix"}))
	for i, want := range []bool{false, true} {
		var tr Trace
		if _, err := rejecting.Verify(tracedCtx(t, &tr), tokenN(2), clusterA); err == nil {
			t.Fatal("rejection: err = nil")
		}
		if tr.Hit() != want {
			t.Errorf("rejection, call %d: Hit() = %v, want %v", i, tr.Hit(), want)
		}
	}
}

func TestTraceWaiterOnAFlightIsAHit(t *testing.T) {
	clock := newFakeClock()
	fake := &fakeVerifier{gate: make(chan struct{}), answer: answerExpiring(clock.Now, 15*time.Minute)}
	c, err := New(fake, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	const callers = 4
	traces := make([]Trace, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if _, err := c.Verify(tracedCtx(t, &traces[i]), tokenN(1), clusterA); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, "all callers waiting", func() bool { return c.waiting.Load() == callers })
	close(fake.gate)
	wg.Wait()
	upstream := 0
	for i := range traces {
		if !traces[i].Hit() {
			upstream++
		}
	}
	if upstream != 1 || fake.Calls() != 1 {
		t.Errorf("%d traces marked upstream for %d upstream calls, want 1 and 1", upstream, fake.Calls())
	}
}

func tracedCtx(t *testing.T, tr *Trace) context.Context { return WithTrace(t.Context(), tr) }

// TestTraceContextIsWithTrace: the allocation-free TraceContext carries the
// trace like WithTrace (marked upstream on a miss, a hit after), and is
// otherwise its parent: other values, cancellation and its error.
func TestTraceContextIsWithTrace(t *testing.T) {
	c := newTestCache(t, Options{}, expiringIn(15*time.Minute))
	type otherKey struct{}
	parent, cancel := context.WithCancel(context.WithValue(t.Context(), otherKey{}, "v"))
	var tc TraceContext
	for i, want := range []bool{false, true} {
		var tr Trace
		ctx := tc.With(parent, &tr)
		if _, err := c.Verify(ctx, tokenN(1), clusterA); err != nil {
			t.Fatal(err)
		}
		if tr.Hit() != want {
			t.Errorf("call %d: Hit() = %v, want %v", i, tr.Hit(), want)
		}
		if got := ctx.Value(otherKey{}); got != "v" {
			t.Errorf("call %d: parent value = %v, want v", i, got)
		}
	}
	ctx := tc.With(parent, new(Trace))
	cancel()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the parent did not close Done")
	}
	if ctx.Err() != context.Canceled {
		t.Errorf("Err() = %v, want context.Canceled", ctx.Err())
	}
}
