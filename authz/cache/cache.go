// Package cache is the verification cache in front of authz/verify.
//
// kube-apiserver caches webhook token reviews itself
// (--authentication-token-webhook-cache-ttl, 2m by default), which is why
// aws-iam-authenticator has no cache of its own. A sidecar in front of the
// API server bypasses that cache, so without this package every request
// would cost an STS round trip. What it does, and why:
//
//   - Keys are HMAC-SHA256(random per-process key, cluster id, token); the
//     token itself is never stored (anchors A.10, C.5).
//   - A verified identity is served for at most MaxTTL and never past the
//     token's own expiry (X-Amz-Date + 15 min): the cache must not outlive
//     the credential. Past MaxTTL it is verified again; if that fails
//     transiently (STS down, slow, throttling: the Transient rows of the one
//     error table, authz/outcome), the
//     earlier verification is served until the token expires, so an STS
//     outage does not lock out users whose tokens were already verified;
//     STS is asked again for that token only every StaleRetry.
//   - Concurrent misses for one token share one upstream call
//     (singleflight), detached from the first caller's cancellation.
//   - Definitive rejections (the Rejected rows of authz/outcome: a malformed
//     token, a refusal by STS) are cached briefly; throttling and outages
//     never are. The cache reads this policy from the table itself, so it
//     cannot disagree with the status the client is answered with.
//   - Only identities are cached. Mapping to a Kubernetes user happens on
//     every request, so an aws-auth change applies immediately.
package cache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// Verifier is what the cache wraps: normally *verify.Verifier.
type Verifier interface {
	Verify(ctx context.Context, tok, clusterID string) (verify.Result, error)
}

// ErrVerifierPanicked is returned to every caller waiting on an upstream
// verification that panicked. The panic is contained (one bad token must
// not take the server down) and never cached. It is an internal error, not
// a verdict on the token.
var ErrVerifierPanicked = errors.New("cache: token verifier panicked")

// Cache is a Verifier that remembers verifications. It is safe for
// concurrent use.
type Cache struct {
	next Verifier
	opts Options
	// epoch anchors entry deadlines (see entry.deadline).
	epoch   time.Time
	keys    *keyer
	store   *store
	flights singleflight.Group
	metrics *Metrics
	// waiting counts callers currently blocked on an upstream verification
	// (registered with the flight group). Tests use it as a barrier.
	waiting atomic.Int64
}

// New wraps next with a cache configured by o.
func New(next Verifier, o Options) (*Cache, error) {
	if next == nil {
		return nil, errors.New("cache: nil verifier")
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if o.Metrics == nil {
		m, err := NewMetrics(nil)
		if err != nil {
			return nil, err
		}
		o.Metrics = m
	}
	keys, err := newKeyer()
	if err != nil {
		return nil, err
	}
	st, err := newStore(o.MaxEntries, o.Shards, o.Metrics)
	if err != nil {
		return nil, err
	}
	return &Cache{next: next, opts: o, epoch: o.Now(), keys: keys, store: st, metrics: o.Metrics}, nil
}

func (c *Cache) now() instant {
	t := c.opts.Now()
	return instant{wall: t, mono: t.Sub(c.epoch)}
}

// Len reports the number of entries held, including expired ones not yet
// dropped.
func (c *Cache) Len() int { return c.store.len() }

// Verify returns the cached verification of tok for clusterID, or asks the
// wrapped verifier (once, however many callers ask concurrently). A
// negative hit returns the same error the verifier returned.
func (c *Cache) Verify(ctx context.Context, tok, clusterID string) (verify.Result, error) {
	k := c.keys.digest(tok, clusterID)
	if e, ok := c.store.get(k, c.now()); ok {
		if e.err != nil {
			c.metrics.negativeHits.Inc()
			return verify.Result{}, e.err
		}
		c.metrics.hits.Inc()
		return e.res, nil
	}
	c.metrics.misses.Inc()
	return c.await(ctx, k, tok, clusterID)
}

// await joins (or starts) the upstream verification of k and waits for it
// or for ctx, whichever comes first. A caller that gives up leaves the
// flight running for the others; its result is still cached.
func (c *Cache) await(ctx context.Context, k digest, tok, clusterID string) (verify.Result, error) {
	if err := ctx.Err(); err != nil {
		return verify.Result{}, fmt.Errorf("cache: %w", err)
	}
	// led is written only if this caller's function is the one the flight
	// group runs; reading it after receiving the result is ordered by the
	// channel send that follows the function's return.
	led := false
	ch := c.flights.DoChan(string(k[:]), func() (any, error) {
		led = true
		return c.load(ctx, k, tok, clusterID)
	})
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	select {
	case r := <-ch:
		if !led {
			c.metrics.shared.Inc()
		}
		if r.Err != nil {
			return verify.Result{}, r.Err
		}
		res, _ := r.Val.(verify.Result)
		return res, nil
	case <-ctx.Done():
		return verify.Result{}, fmt.Errorf("cache: waiting for token verification: %w", ctx.Err())
	}
}

// load runs once per flight. Its context keeps the first caller's values
// (trace ids) but not its cancellation or deadline: otherwise the first
// client to hang up would fail every other caller waiting on the same
// token. FlightTimeout bounds the detached call instead.
func (c *Cache) load(parent context.Context, k digest, tok, clusterID string) (_ any, err error) {
	defer func() {
		if r := recover(); r != nil {
			// The panic value is not logged: it may quote the token.
			c.opts.Logger.Error("token verifier panicked",
				zap.String("token_fingerprint", token.Fingerprint(tok)),
				zap.String("panic_type", fmt.Sprintf("%T", r)),
				zap.Stack("stack"))
			err = ErrVerifierPanicked
		}
	}()
	// A caller that missed just before the previous flight for k stored its
	// result and left the group would start a second upstream call; look
	// again first.
	if e, ok := c.store.get(k, c.now()); ok {
		if e.err != nil {
			return nil, e.err
		}
		return e.res, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), c.opts.FlightTimeout)
	defer cancel()
	markUpstream(parent)
	res, err := c.next.Verify(ctx, tok, clusterID)
	now := c.now()
	if err != nil && outcome.Of(err).Verification() == outcome.Transient {
		// The upstream cannot say anything about the token right now. An
		// identity it verified earlier for this very token stands until
		// the token expires, as STS itself would honour it; a definitive
		// rejection (revoked or expired credentials) never takes this path.
		if e, ok := c.store.getStale(k, now); ok && e.err == nil {
			c.metrics.stale.Inc()
			// Serve it without asking the failing upstream again for a
			// while: otherwise every request for a busy token is one more
			// call to STS (and one more token of the STS rate limit).
			if retry := min(c.opts.StaleRetry, e.stale-now.mono); retry > 0 {
				c.store.put(k, entry{res: e.res, deadline: now.mono + retry, stale: e.stale}, now)
			}
			return e.res, nil
		}
	}
	if e, ok := c.entryFor(res, err, now); ok {
		c.store.put(k, e, now)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// entryFor decides whether and for how long a verifier answer is cached.
func (c *Cache) entryFor(res verify.Result, err error, now instant) (entry, bool) {
	if err != nil {
		if outcome.Of(err).Verification() != outcome.Rejected {
			return entry{}, false
		}
		d := now.mono + c.opts.NegativeTTL
		return entry{err: err, deadline: d, stale: d}, true
	}
	life := res.Expiry.Sub(now.wall)
	ttl := min(c.opts.MaxTTL, life)
	if ttl <= 0 {
		// Already expired (or a verifier that left Expiry zero): serving
		// it even once more would outlive the credential.
		return entry{}, false
	}
	return entry{res: res, deadline: now.mono + ttl, stale: now.mono + life}, true
}
