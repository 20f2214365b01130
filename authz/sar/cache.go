package sar

import (
	"context"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Cache defaults.
const (
	// DefaultTTL keeps an answer, allowed or denied, for a few seconds: a
	// kubectl command with --as makes several requests in a row, and a
	// RoleBinding change still takes effect within seconds. The API
	// server's own impersonation cache is of the same order.
	DefaultTTL = 5 * time.Second
	// MaxTTL bounds the TTLs: a revoked right must not linger.
	MaxTTL = time.Minute
	// DefaultMaxEntries bounds the cache.
	DefaultMaxEntries = 10000
)

// CacheOptions configure a Cached reviewer.
type CacheOptions struct {
	// AllowedTTL and DeniedTTL are how long answers are kept; 0 means
	// DefaultTTL. Errors are never cached.
	AllowedTTL, DeniedTTL time.Duration
	// MaxEntries bounds the cache (least recently used evicted); 0 means
	// DefaultMaxEntries.
	MaxEntries int
	// FlightTimeout bounds a review shared by concurrent callers (it runs
	// detached from the first caller's cancellation); 0 means
	// DefaultTimeout plus a second.
	FlightTimeout time.Duration
	// Metrics, if set, counts hits and misses.
	Metrics *Metrics
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Validate reports every problem with the options.
func (o *CacheOptions) Validate() error {
	var errs []error
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"allowed TTL", o.AllowedTTL}, {"denied TTL", o.DeniedTTL}} {
		if t.d < 0 || t.d > MaxTTL {
			errs = append(errs, fmt.Errorf("sar: %s %s must be in [0, %s]", t.name, t.d, MaxTTL))
		}
	}
	if o.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("sar: max entries %d must not be negative", o.MaxEntries))
	}
	if o.FlightTimeout < 0 {
		errs = append(errs, fmt.Errorf("sar: flight timeout %s must not be negative", o.FlightTimeout))
	}
	return errors.Join(errs...)
}

type cached struct {
	d       Decision
	expires time.Time
}

// Cached is a Reviewer that remembers answers briefly, keyed by the whole
// subject and attributes, and shares one in-flight review among concurrent
// identical questions.
type Cached struct {
	next         Reviewer
	entries      *lru.Cache[string, cached]
	group        singleflight.Group
	allowedTTL   time.Duration
	deniedTTL    time.Duration
	flightTimout time.Duration
	metrics      *Metrics
	now          func() time.Time
}

// NewCached wraps next.
func NewCached(next Reviewer, o CacheOptions) (*Cached, error) {
	if next == nil {
		return nil, errors.New("sar: nil reviewer")
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	size := o.MaxEntries
	if size == 0 {
		size = DefaultMaxEntries
	}
	entries, err := lru.New[string, cached](size)
	if err != nil {
		return nil, err
	}
	c := &Cached{
		next:         next,
		entries:      entries,
		allowedTTL:   o.AllowedTTL,
		deniedTTL:    o.DeniedTTL,
		flightTimout: o.FlightTimeout,
		metrics:      o.Metrics,
		now:          o.Now,
	}
	if c.allowedTTL == 0 {
		c.allowedTTL = DefaultTTL
	}
	if c.deniedTTL == 0 {
		c.deniedTTL = DefaultTTL
	}
	if c.flightTimout == 0 {
		c.flightTimout = DefaultTimeout + time.Second
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Review answers from the cache or asks next.
func (c *Cached) Review(ctx context.Context, s Subject, a Attributes) (Decision, error) {
	k := key(s, a)
	if e, ok := c.entries.Get(k); ok && c.now().Before(e.expires) {
		c.count(func(m *Metrics) { m.hits.Inc() })
		return e.d, nil
	}
	c.count(func(m *Metrics) { m.misses.Inc() })
	ch := c.group.DoChan(k, func() (any, error) {
		// Detached from the caller: a caller that gives up must not fail
		// the others sharing this review; the flight has its own bound.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.flightTimout)
		defer cancel()
		d, err := c.next.Review(fctx, s, a)
		if err != nil {
			return Decision{}, err
		}
		ttl := c.deniedTTL
		if d.Allowed {
			ttl = c.allowedTTL
		}
		c.entries.Add(k, cached{d: d, expires: c.now().Add(ttl)})
		return d, nil
	})
	select {
	case r := <-ch:
		if r.Shared {
			c.count(func(m *Metrics) { m.shared.Inc() })
		}
		if r.Err != nil {
			return Decision{}, r.Err
		}
		return r.Val.(Decision), nil
	case <-ctx.Done():
		return Decision{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

func (c *Cached) count(f func(*Metrics)) {
	if c.metrics != nil {
		f(c.metrics)
	}
}
