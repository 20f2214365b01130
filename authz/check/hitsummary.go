package check

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
)

// Cache-hit decision logging. Every miss, denial and error gets its own decision
// line (info, warn for 5xx). An allowed Check answered from the verification cache
// does not: at 1,000 requests per second that would be 1,000 lines per second
// saying the same thing. Instead each identity's cache hits are counted and written
// as one "cache hits" line per identity per interval. Options.LogCacheHits restores
// one line per hit at info; at debug level every hit is also logged at debug.
const (
	// DefaultHitSummaryInterval is how often the cache-hit summary is written.
	DefaultHitSummaryInterval = time.Minute
	// maxHitIdentities bounds the identities itemised per interval; the hits of
	// further identities are counted in one "other" total (a flood of distinct
	// identities cannot grow the summary without bound).
	maxHitIdentities = 10000
)

// hitKey is who was let in from the cache: the strings come from the decision
// (the verifier's and mapper's own), so a lookup allocates nothing.
type hitKey struct {
	cluster, arn, username string
}

// hitCount is one identity's cache hits in the current interval.
type hitCount struct {
	n uint64
	// first and last are decision ids, to find the requests in Envoy's access
	// log (decision_id) within the interval.
	first, last string
}

// hitSummary counts cache-hit decisions between flushes.
type hitSummary struct {
	mu     sync.Mutex
	counts map[hitKey]*hitCount
	other  uint64 // hits of identities past maxHitIdentities
	since  time.Time
}

func newHitSummary(now time.Time) *hitSummary {
	return &hitSummary{counts: map[hitKey]*hitCount{}, since: now}
}

// add counts one cache-hit decision. The hot path: one lock, one map lookup, and
// an allocation only for an identity's first hit in an interval.
func (h *hitSummary) add(d *decision) {
	k := hitKey{cluster: d.cluster, arn: d.arn, username: d.username}
	h.mu.Lock()
	if c, ok := h.counts[k]; ok {
		c.n++
		c.last = d.id
	} else if len(h.counts) < maxHitIdentities {
		h.counts[k] = &hitCount{n: 1, first: d.id, last: d.id}
	} else {
		h.other++
	}
	h.mu.Unlock()
}

// take returns the interval's counts and starts a new interval at now.
func (h *hitSummary) take(now time.Time) (map[hitKey]*hitCount, uint64, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	counts, other, since := h.counts, h.other, h.since
	h.counts, h.other, h.since = make(map[hitKey]*hitCount, len(counts)), 0, now
	return counts, other, since
}

// FlushCacheHits writes the cache-hit summary of the interval so far: one info line
// per identity with its count, and one line for the hits of identities past the
// per-interval bound. serve calls it on shutdown; RunCacheHitSummary calls it on
// every tick.
func (s *Server) FlushCacheHits() {
	if s.hits == nil {
		return
	}
	now := s.now()
	counts, other, since := s.hits.take(now)
	interval := now.Sub(since)
	for k, c := range counts {
		s.log.Info("cache hits",
			zap.String("cluster", k.cluster), zap.String("arn", k.arn), zap.String("username", k.username),
			zap.Uint64("count", c.n), zap.Duration("interval", interval),
			zap.String("first_decision", c.first), zap.String("last_decision", c.last))
	}
	if other > 0 {
		s.log.Info("cache hits of identities not itemised",
			zap.Uint64("count", other), zap.Int("itemised", maxHitIdentities), zap.Duration("interval", interval))
	}
}

// RunCacheHitSummary writes the cache-hit summary every interval (Options
// HitSummaryInterval) until ctx ends. It is a serve background task.
func (s *Server) RunCacheHitSummary(ctx context.Context) error {
	if s.hits == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(s.hitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.FlushCacheHits()
		}
	}
}

// logDecision writes a decision's log line, or counts it in the cache-hit summary.
func (s *Server) logDecision(d *decision, o *outcome.Outcome) {
	level := zapcore.InfoLevel
	if o.HTTPCode() >= 500 {
		level = zapcore.WarnLevel
	}
	if o == outcome.OK() && d.cacheHit && s.hits != nil {
		s.hits.add(d)
		level = zapcore.DebugLevel
	}
	if ce := s.log.Check(level, "decision"); ce != nil {
		// One inline object instead of a dozen fields: zap encodes it in
		// place, so the hot path allocates no field slice.
		ce.Write(zap.Inline(d))
	}
}
