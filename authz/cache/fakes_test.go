package cache

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// fakeClock is a settable clock. Its times carry no monotonic reading, like
// the wall-clock Expiry the verifier derives from X-Amz-Date.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeVerifier counts calls and answers from answer. When gate is non-nil,
// each call blocks until gate is closed (or its context ends).
type fakeVerifier struct {
	answer func(tok, clusterID string) (verify.Result, error)
	gate   chan struct{}

	mu             sync.Mutex
	calls          int
	ctxErrs        []error // ctx.Err() seen by each call as it returned
	ctxHasDeadline []bool
}

func (f *fakeVerifier) Verify(ctx context.Context, tok, clusterID string) (verify.Result, error) {
	_, hasDeadline := ctx.Deadline()
	f.mu.Lock()
	f.calls++
	f.ctxHasDeadline = append(f.ctxHasDeadline, hasDeadline)
	f.mu.Unlock()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	f.ctxErrs = append(f.ctxErrs, ctx.Err())
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return verify.Result{}, err
	}
	return f.answer(tok, clusterID)
}

func (f *fakeVerifier) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// answerExpiring returns a fixed identity expiring at clock.Now()+ttl as
// seen when the verifier is called.
func answerExpiring(now func() time.Time, ttl time.Duration) func(string, string) (verify.Result, error) {
	return func(string, string) (verify.Result, error) {
		return verify.Result{Identity: testIdentity(), Expiry: now().Add(ttl), STSRegion: "us-east-1"}, nil
	}
}

func answerError(err error) func(string, string) (verify.Result, error) {
	return func(string, string) (verify.Result, error) { return verify.Result{}, err }
}

func testIdentity() identity.Identity {
	return identity.Identity{
		ARN:          "arn:aws:sts::111122223333:assumed-role/Dev/alice",
		CanonicalARN: "arn:aws:iam::111122223333:role/Dev",
		AccountID:    "111122223333",
		UserID:       "AROAEXAMPLEEXAMPLE01:alice",
		PrincipalID:  "AROAEXAMPLEEXAMPLE01",
		SessionName:  "alice",
		AccessKeyID:  "ASIAEXAMPLEEXAMPLE01",
		Kind:         identity.KindAssumedRole,
	}
}

// waitFor polls cond until it holds. It is a condition wait, not a sleep
// standing in for synchronisation: it returns as soon as cond is true and
// fails the test if that takes implausibly long (a deadlock).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}
