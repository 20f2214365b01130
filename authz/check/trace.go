package check

import (
	"context"
	"sync/atomic"

	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// trace records, for one Check, whether the verification went upstream
// (past the verification cache). It travels in the context because the
// cache is a plain Verifier and keeps context values when it detaches the
// upstream call; it is atomic because a shared (singleflight) upstream call
// may finish after the Check that started it has given up.
type trace struct {
	upstream atomic.Bool
}

type traceKey struct{}

// traceContext is context.WithValue(ctx, traceKey{}, trace) without its own
// allocation: it lives in the Check's checkState. The verifier (and the
// cache's detached upstream call) see an ordinary context.
type traceContext struct {
	context.Context
	trace *trace
}

func (c *traceContext) Value(key any) any {
	if _, ok := key.(traceKey); ok {
		return c.trace
	}
	return c.Context.Value(key)
}

// ObserveUpstream wraps the verifier that sits BELOW the verification cache
// (cache.New(check.ObserveUpstream(verifier), ...)). A Check whose
// verification reached it logs cache_hit=false; one answered by the cache
// (including a cached rejection, or a wait on another request's in-flight
// call) logs cache_hit=true.
func ObserveUpstream(next Verifier) Verifier { return upstreamObserver{next: next} }

type upstreamObserver struct{ next Verifier }

func (o upstreamObserver) Verify(ctx context.Context, tok, clusterID string) (verify.Result, error) {
	if t, ok := ctx.Value(traceKey{}).(*trace); ok {
		t.upstream.Store(true)
	}
	return o.next.Verify(ctx, tok, clusterID)
}
