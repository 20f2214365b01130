package cache

import (
	"errors"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

var errBoom = errors.New("boom")

func positive(deadline time.Duration, expiry time.Time) entry {
	return entry{res: verify.Result{Identity: testIdentity(), Expiry: expiry}, deadline: deadline}
}

func TestStoreShardCapacitiesAddUp(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct{ maxEntries, shards int }{
		"even split":    {maxEntries: 4096, shards: 16},
		"uneven split":  {maxEntries: 100_003, shards: 16},
		"one per shard": {maxEntries: 256, shards: 256},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := newStore(tc.maxEntries, tc.shards, m)
			if err != nil {
				t.Fatal(err)
			}
			total, lo, hi := 0, tc.maxEntries, 0
			for i := range s.shards {
				total += s.shards[i].size
				lo, hi = min(lo, s.shards[i].size), max(hi, s.shards[i].size)
			}
			if total != tc.maxEntries {
				t.Errorf("shard capacities sum to %d, want %d", total, tc.maxEntries)
			}
			if hi-lo > 1 {
				t.Errorf("shard capacities range over [%d, %d], want a spread of at most 1", lo, hi)
			}
		})
	}
}

func TestEntryLive(t *testing.T) {
	wall := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := instant{wall: wall, mono: time.Hour}
	tests := map[string]struct {
		e    entry
		want bool
	}{
		"positive before deadline and expiry": {e: positive(now.mono+time.Minute, wall.Add(time.Hour)), want: true},
		"positive at its deadline":            {e: positive(now.mono, wall.Add(time.Hour)), want: false},
		// The wall clock stepped past the token's expiry while the
		// monotonic deadline (now+MaxTTL) is still ahead.
		"positive past the token's expiry despite a later deadline": {e: positive(now.mono+time.Minute, wall), want: false},
		"negative before deadline":                                  {e: entry{err: errBoom, deadline: now.mono + time.Second}, want: true},
		"negative at deadline":                                      {e: entry{err: errBoom, deadline: now.mono}, want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.e.live(now); got != tc.want {
				t.Errorf("live() = %v, want %v", got, tc.want)
			}
		})
	}
}
