package cache

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// entry is one cached verification: a verified identity, or a definitive
// rejection. Only the verifier's Result is kept, never the mapped user:
// mapping is applied on every request so that an aws-auth change takes
// effect at once instead of after the TTL (anchors C.5).
type entry struct {
	res verify.Result
	// err, when non-nil, makes this a negative entry.
	err error
	// deadline is when the entry stops being served, as an offset from the
	// cache's epoch: now+MaxTTL capped at the token's expiry for positives,
	// now+NegativeTTL for negatives. An offset rather than a time.Time
	// keeps the monotonic reading (so a wall-clock step cannot stretch a
	// TTL) in 8 bytes instead of 24; over 100k entries that and the
	// allocator's size classes save about 3 MiB.
	deadline time.Duration
	// stale is how long a positive entry may still be served when the
	// upstream verifier fails transiently (STS down, slow or throttling):
	// until the token's own expiry, as an offset from the cache's epoch.
	// For negative entries it equals deadline.
	stale time.Duration
}

// instant is a moment as the cache compares it: wall time for the token's
// expiry, which STS judges by its wall clock, and the offset from the
// cache's epoch (monotonic when the clock has a monotonic reading) for TTLs.
type instant struct {
	wall time.Time
	mono time.Duration
}

// live reports whether e may still be served at now. A positive entry is
// also checked against the token's expiry directly, so that a wall clock
// stepping past X-Amz-Date+15min retires it even though the monotonic
// deadline has not passed.
func (e *entry) live(now instant) bool {
	if now.mono >= e.deadline {
		return false
	}
	return e.err != nil || now.wall.Before(e.res.Expiry)
}

// usable reports whether e may be kept: fresh, or a positive entry past
// MaxTTL that can still stand in for the upstream while it fails
// transiently, because the credential it vouches for has not expired.
func (e *entry) usable(now instant) bool {
	if e.err != nil {
		return e.live(now)
	}
	return now.mono < e.stale && now.wall.Before(e.res.Expiry)
}

// store is a size-bounded LRU of entries split into shards, each with its
// own mutex. Every lookup reorders its shard's recency list, so even hits
// need the lock exclusively; sharding by digest spreads that lock over
// Shards mutexes. The per-shard list is hashicorp/golang-lru's simplelru:
// a map plus an intrusive doubly linked list, O(1) per operation.
type store struct {
	shards  []shard
	metrics *Metrics
}

type shard struct {
	mu  sync.Mutex
	lru *simplelru.LRU[digest, entry]
	// size is this shard's capacity, kept to recognise "full".
	size int
	// Pad to a 64-byte cache line so that shards adjacent in the slice do
	// not bounce one line between cores (false sharing) and undo the point
	// of separate locks.
	_ [64 - 8 - 8 - 8]byte
}

func newStore(maxEntries, shards int, m *Metrics) (*store, error) {
	s := &store{shards: make([]shard, shards), metrics: m}
	// Shard capacities add up to exactly maxEntries.
	base, extra := maxEntries/shards, maxEntries%shards
	for i := range s.shards {
		size := base
		if i < extra {
			size++
		}
		lru, err := simplelru.NewLRU[digest, entry](size, nil)
		if err != nil {
			return nil, fmt.Errorf("cache: shard %d: %w", i, err)
		}
		s.shards[i].lru = lru
		s.shards[i].size = size
	}
	return s, nil
}

func (s *store) shard(k *digest) *shard { return &s.shards[k.shard(len(s.shards))] }

// get returns the live entry for k and marks it most recently used. An
// entry past its use (see usable) is dropped; one past MaxTTL but still
// usable is kept for getStale and reported as absent.
func (s *store) get(k digest, now instant) (entry, bool) {
	return s.lookup(k, now, false)
}

// getStale returns the usable entry for k, fresh or not.
func (s *store) getStale(k digest, now instant) (entry, bool) {
	return s.lookup(k, now, true)
}

// lookup serves a live entry, or with stale any usable one. A flag rather
// than a method value: calling through a func value made e escape, one
// 224-byte allocation per cache hit.
func (s *store) lookup(k digest, now instant, stale bool) (entry, bool) {
	sh := s.shard(&k)
	sh.mu.Lock()
	e, ok := sh.lru.Get(k)
	if ok && !e.usable(now) {
		sh.lru.Remove(k)
		sh.mu.Unlock()
		s.metrics.entries.Dec()
		return entry{}, false
	}
	sh.mu.Unlock()
	if !ok || (!stale && !e.live(now)) {
		return entry{}, false
	}
	return e, true
}

// put stores e under k. When the shard is full it first drops unusable
// entries from the cold end (they would be refused on lookup anyway), and
// only then evicts the least recently used usable entry.
func (s *store) put(k digest, e entry, now instant) {
	sh := s.shard(&k)
	sh.mu.Lock()
	before := sh.lru.Len()
	if !sh.lru.Contains(k) {
		for sh.lru.Len() >= sh.size {
			_, old, ok := sh.lru.GetOldest()
			if !ok || old.usable(now) {
				break
			}
			sh.lru.RemoveOldest()
		}
	}
	evicted := sh.lru.Add(k, e)
	after := sh.lru.Len()
	sh.mu.Unlock()
	if evicted {
		s.metrics.evictions.Inc()
	}
	if after != before {
		s.metrics.entries.Add(float64(after - before))
	}
}

func (s *store) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.lru.Len()
		sh.mu.Unlock()
	}
	return n
}
