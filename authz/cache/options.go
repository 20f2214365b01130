package cache

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Defaults. MaxTTL matches kube-apiserver's
// --authentication-token-webhook-cache-ttl default, the cache a sidecar in
// front of the API server bypasses and therefore has to replace.
const (
	DefaultMaxEntries    = 100_000
	DefaultMaxTTL        = 2 * time.Minute
	DefaultNegativeTTL   = 10 * time.Second
	DefaultFlightTimeout = 10 * time.Second
	// DefaultStaleRetry is how long an identity served stale (upstream failing
	// transiently) is served before the upstream is asked again.
	DefaultStaleRetry = 5 * time.Second

	// tokenLifetime is how long STS honours a presigned GetCallerIdentity
	// URL (X-Amz-Date + 15 min). A MaxTTL above it could never take effect,
	// so it is rejected as a misconfiguration rather than silently ignored.
	tokenLifetime = 15 * time.Minute
	// maxEntriesLimit keeps a typo (an extra zero or three) from turning
	// the bound into no bound at all.
	maxEntriesLimit = 10_000_000
	// maxFlightTimeout bounds how long a detached upstream call may run.
	maxFlightTimeout = time.Minute
	maxShards        = 256
	// shardThreshold: below this many entries one LRU is exact and lock
	// contention is not a concern; above it the cache is split (see Shards).
	shardThreshold = 4096
	defaultShards  = 16
)

// Limits Validate enforces, for callers that check their own flags against
// them and name the flag in the error.
const (
	MaxTTLLimit     = tokenLifetime
	MaxEntriesLimit = maxEntriesLimit
)

// Options configures a Cache. The zero value is usable: every zero field
// takes its default.
type Options struct {
	// MaxEntries bounds the number of cached verifications (positive and
	// negative together). Default DefaultMaxEntries.
	MaxEntries int
	// MaxTTL bounds how long a successful verification is served. The
	// token's own expiry (verify.Result.Expiry) bounds it further. Default
	// DefaultMaxTTL; at most 15 minutes.
	MaxTTL time.Duration
	// NegativeTTL is how long a definitive rejection (a row of
	// authz/outcome marked Rejected) is served. Default DefaultNegativeTTL; at most MaxTTL.
	NegativeTTL time.Duration
	// FlightTimeout bounds the upstream call shared by concurrent misses.
	// That call is detached from the first caller's cancellation (so one
	// impatient client cannot fail everyone waiting on the same token), so
	// it needs a bound of its own. Default DefaultFlightTimeout; at most 1m.
	FlightTimeout time.Duration
	// Shards splits the LRU into independently locked parts, a power of two
	// in [1, 256] and at most MaxEntries. Eviction is then LRU per shard,
	// which approximates global LRU because keys are uniform HMAC digests.
	// Default: 1 below 4096 entries, 16 otherwise. The locked part of a
	// hit is ~50 ns against ~1.1 µs of HMAC outside the lock
	// (BenchmarkStoreGetParallel, BenchmarkDigest), so on the 2 cores a
	// sidecar usually gets 1 and 16 shards measure the same; 16 is
	// insurance for many-core hosts and costs 1 KiB.
	Shards int
	// Now is the clock; time.Now if nil. Tests pass a fake.
	Now func() time.Time
	// Metrics defaults to a set registered nowhere.
	Metrics *Metrics
	// Logger defaults to zap.NewNop(). It only hears about verifier panics.
	Logger *zap.Logger
	// StaleRetry: when re-verifying a token past MaxTTL fails transiently (a
	// row of authz/outcome marked Transient: an outage, a timeout,
	// throttling), the identity verified earlier for the same token is
	// served instead, until the token's expiry. StaleRetry is how long,
	// after such a failure,
	// the earlier identity is served before the upstream is asked again for
	// that token. Without it every request for a popular token would send
	// one more call to an STS that is already failing (and use up the STS
	// rate limit that new tokens need). Default DefaultStaleRetry; at most
	// MaxTTL.
	StaleRetry time.Duration
}

// withDefaults returns o with every zero field replaced by its default.
func (o Options) withDefaults() Options {
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxTTL == 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.FlightTimeout == 0 {
		o.FlightTimeout = DefaultFlightTimeout
	}
	if o.StaleRetry == 0 {
		o.StaleRetry = DefaultStaleRetry
		if o.MaxTTL > 0 {
			o.StaleRetry = min(DefaultStaleRetry, o.MaxTTL)
		}
	}
	if o.Shards == 0 {
		o.Shards = 1
		if o.MaxEntries >= shardThreshold {
			o.Shards = defaultShards
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Validate reports every problem with o (after defaults are applied), not
// just the first.
func (o Options) Validate() error {
	d := o.withDefaults()
	var errs []error
	if d.MaxEntries < 1 || d.MaxEntries > maxEntriesLimit {
		errs = append(errs, fmt.Errorf("MaxEntries %d: must be in [1, %d]", o.MaxEntries, maxEntriesLimit))
	}
	if d.MaxTTL < 0 || d.MaxTTL > tokenLifetime {
		errs = append(errs, fmt.Errorf("MaxTTL %s: must be in (0, %s]: tokens never live longer", o.MaxTTL, tokenLifetime))
	}
	if d.NegativeTTL < 0 {
		errs = append(errs, fmt.Errorf("NegativeTTL %s: must be positive", o.NegativeTTL))
	} else if d.MaxTTL > 0 && d.NegativeTTL > d.MaxTTL {
		errs = append(errs, fmt.Errorf("NegativeTTL %s: must not exceed MaxTTL %s", d.NegativeTTL, d.MaxTTL))
	}
	if d.StaleRetry < 0 || (d.MaxTTL > 0 && d.StaleRetry > d.MaxTTL) {
		errs = append(errs, fmt.Errorf("StaleRetry %s: must be in (0, MaxTTL %s]", d.StaleRetry, d.MaxTTL))
	}
	if d.FlightTimeout < 0 || d.FlightTimeout > maxFlightTimeout {
		errs = append(errs, fmt.Errorf("FlightTimeout %s: must be in (0, %s]", o.FlightTimeout, maxFlightTimeout))
	}
	switch {
	case d.Shards < 1 || d.Shards > maxShards || d.Shards&(d.Shards-1) != 0:
		errs = append(errs, fmt.Errorf("shard count (Shards) %d: must be a power of two in [1, %d]", o.Shards, maxShards))
	case d.MaxEntries >= 1 && d.Shards > d.MaxEntries:
		errs = append(errs, fmt.Errorf("shard count (Shards) %d: must not exceed MaxEntries %d", d.Shards, d.MaxEntries))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("cache options: %w", errors.Join(errs...))
}
