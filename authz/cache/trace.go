package cache

import (
	"context"
	"sync/atomic"
)

// Trace records, for one Verify, whether the cache went to the upstream
// verifier for it: authz/check logs cache_hit=false for such a Check and
// counts the others (a hit, a cached rejection, or a wait on another
// request's in-flight call) into its per-identity cache-hit summary. It
// travels in the context because a Cache is a plain Verifier; it is atomic
// because a shared (singleflight) upstream call may finish after the caller
// that started it has given up.
type Trace struct {
	upstream atomic.Bool
}

type traceKey struct{}

// WithTrace returns ctx carrying t for the Verify calls made with it.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// Hit reports whether the Verify that carried t was answered without a call
// of its own to the upstream verifier.
func (t *Trace) Hit() bool { return !t.upstream.Load() }

// markUpstream records on the trace in ctx, if any, that this caller's
// verification went to the upstream verifier. The flight's context keeps the
// leading caller's values, so only that caller's trace is marked.
func markUpstream(ctx context.Context) {
	if t, ok := ctx.Value(traceKey{}).(*Trace); ok {
		t.upstream.Store(true)
	}
}

// TraceContext is WithTrace without an allocation of its own, for a caller
// that already allocates per request and embeds it there (authz/check's
// per-Check state): on a cache hit the context.WithValue was one of a
// handful of allocations. The zero value is unusable; With fills it.
type TraceContext struct {
	context.Context
	t *Trace
}

// With makes c carry t over ctx and returns it as the context to pass to
// Verify. c must outlive every use of the returned context.
func (c *TraceContext) With(ctx context.Context, t *Trace) context.Context {
	c.Context, c.t = ctx, t
	return c
}

// Value answers the trace key itself and asks the parent for any other.
func (c *TraceContext) Value(key any) any {
	if _, ok := key.(traceKey); ok {
		return c.t
	}
	return c.Context.Value(key)
}
