// Package ec2dns resolves EC2 instance IDs to private DNS names for the
// {{EC2PrivateDNSName}} template: a bounded TTL cache, one in-flight call
// per instance, concurrent misses batched into one DescribeInstances, and a
// rate limiter in front of EC2.
//
// aws-iam-authenticator caches forever without a bound, lets a lookup of a
// missing instance wedge later lookups for 5 s, and rate-limits only its STS
// AssumeRole client, not EC2 (reference §6.6; issue #292). This package
// bounds the cache, caches "not found" briefly, and limits EC2 itself.
package ec2dns

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

// API is the part of the EC2 client the resolver uses; *ec2.Client
// implements it.
type API interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// Options configures a Resolver. Zero values take the documented defaults.
type Options struct {
	// Client calls EC2. Required (see NewClient).
	Client API
	// Logger receives call failures. Defaults to a no-op logger.
	Logger *zap.Logger
	// Metrics, if set, records lookups and calls (see NewMetrics).
	Metrics *Metrics
	// Now drives cache expiry and times the EC2 calls. Defaults to time.Now.
	Now func() time.Time
	// TTL keeps a found name. An instance keeps its private DNS name for
	// its whole life and instance IDs are never reused, so this only bounds
	// staleness after termination. Defaults to 1h.
	TTL time.Duration
	// NegativeTTL keeps "no such instance". Short, because EC2 is
	// eventually consistent and a node that has just booted may not be
	// visible yet; long enough that a caller cycling made-up instance IDs
	// cannot turn each request into an EC2 call. Defaults to 10s.
	NegativeTTL time.Duration
	// MaxEntries bounds the cache (least recently used entries go first).
	// Defaults to 10,000.
	MaxEntries int
	// BatchWindow is how long a miss waits for others to share its call.
	// Defaults to 10ms.
	BatchWindow time.Duration
	// MaxBatch is the most instance IDs in one call; a full batch is sent
	// at once. Defaults to 100.
	MaxBatch int
	// RateLimit and Burst bound DescribeInstances calls. Default 10/s,
	// burst 10.
	RateLimit rate.Limit
	Burst     int
	// CallTimeout bounds one call, waiting for the rate limiter and SDK
	// retries included. Defaults to 5s.
	CallTimeout time.Duration
	// MaxPending bounds the instances being looked up at once; beyond it a
	// lookup fails fast with ErrUnavailable rather than queueing without
	// bound. Defaults to 1,000.
	MaxPending int
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("ec2dns: Options.Client is required"))
	}
	for name, d := range map[string]time.Duration{"TTL": o.TTL, "NegativeTTL": o.NegativeTTL, "BatchWindow": o.BatchWindow, "CallTimeout": o.CallTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("ec2dns: Options.%s is negative (%s)", name, d))
		}
	}
	for name, n := range map[string]int{"MaxEntries": o.MaxEntries, "MaxBatch": o.MaxBatch, "Burst": o.Burst, "MaxPending": o.MaxPending} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("ec2dns: Options.%s is negative (%d)", name, n))
		}
	}
	if o.MaxBatch > 1000 {
		// DescribeInstances accepts at most 1000 values per filter.
		errs = append(errs, fmt.Errorf("ec2dns: Options.MaxBatch %d is more than 1000", o.MaxBatch))
	}
	if o.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("ec2dns: Options.RateLimit is negative (%v)", o.RateLimit))
	}
	return errors.Join(errs...)
}

// instanceIDPattern: i- and 8 or 17 lower-case hex digits.
var instanceIDPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// maxPages bounds the pages read for one batch; ≤1000 instance IDs fit in
// far fewer.
const maxPages = 10

// Resolver implements mapping.DNSResolver.
type Resolver struct {
	client      API
	log         *zap.Logger
	metrics     *Metrics
	clock       func() time.Time
	ttl, negTTL time.Duration
	window      time.Duration
	maxBatch    int
	timeout     time.Duration
	maxPending  int
	limiter     *rate.Limiter

	mu       sync.Mutex
	cache    *lru
	inflight map[string]*call
	pending  []string
	armed    bool // a BatchWindow timer is running for pending
}

var _ mapping.DNSResolver = (*Resolver)(nil)

type call struct {
	done chan struct{}
	name string
	err  error
}

// New validates opts and builds a Resolver.
func New(opts Options) (*Resolver, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	r := &Resolver{
		client:     opts.Client,
		log:        opts.Logger,
		metrics:    opts.Metrics,
		clock:      opts.Now,
		ttl:        or(opts.TTL, time.Hour),
		negTTL:     or(opts.NegativeTTL, 10*time.Second),
		window:     or(opts.BatchWindow, 10*time.Millisecond),
		maxBatch:   or(opts.MaxBatch, 100),
		timeout:    or(opts.CallTimeout, 5*time.Second),
		maxPending: or(opts.MaxPending, 1000),
		limiter:    rate.NewLimiter(or(opts.RateLimit, 10), or(opts.Burst, 10)),
		cache:      newLRU(or(opts.MaxEntries, 10000)),
		inflight:   map[string]*call{},
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	if r.clock == nil {
		r.clock = time.Now
	}
	return r, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// PrivateDNSName returns the private DNS name of a running or stopped EC2
// instance. Errors wrap kubeuser.ErrForbidden for an ID that is malformed or
// names no instance (a node name for a missing instance must not map), and
// kubeuser.ErrUnavailable when EC2 could not be asked.
func (r *Resolver) PrivateDNSName(ctx context.Context, instanceID string) (string, error) {
	if !instanceIDPattern.MatchString(instanceID) {
		r.metrics.lookup(resultInvalid)
		return "", fmt.Errorf("%w: %q is not an EC2 instance ID", kubeuser.ErrForbidden, instanceID)
	}
	r.mu.Lock()
	if e, ok := r.cache.get(instanceID, r.clock()); ok {
		r.mu.Unlock()
		if e.name == "" {
			r.metrics.lookup(resultNegativeHit)
			return "", notFound(instanceID)
		}
		r.metrics.lookup(resultHit)
		return e.name, nil
	}
	c, ok := r.inflight[instanceID]
	if !ok {
		if len(r.inflight) >= r.maxPending {
			r.mu.Unlock()
			r.metrics.lookup(resultShed)
			return "", fmt.Errorf("%w: more than %d EC2 instance lookups in flight", kubeuser.ErrUnavailable, r.maxPending)
		}
		c = &call{done: make(chan struct{})}
		r.inflight[instanceID] = c
		r.enqueue(instanceID)
	}
	r.mu.Unlock()
	select {
	case <-c.done:
		return c.name, c.err
	case <-ctx.Done():
		// The call goes on for the other waiters and fills the cache.
		return "", fmt.Errorf("%w: waiting for EC2: %w", kubeuser.ErrUnavailable, ctx.Err())
	}
}

func notFound(id string) error {
	return fmt.Errorf("%w: no EC2 instance %s", kubeuser.ErrForbidden, id)
}

// enqueue adds a miss to the next batch; r.mu is held.
func (r *Resolver) enqueue(id string) {
	r.pending = append(r.pending, id)
	if len(r.pending) >= r.maxBatch {
		batch := r.pending
		r.pending = nil
		go r.flush(batch)
		return
	}
	if !r.armed {
		r.armed = true
		time.AfterFunc(r.window, r.flushPending)
	}
}

func (r *Resolver) flushPending() {
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.armed = false
	r.mu.Unlock()
	if len(batch) > 0 {
		r.flush(batch)
	}
}

// flush makes one DescribeInstances call for ids and answers their waiters.
// Its context is its own, bounded by CallTimeout: it serves several
// requests, none of which may cancel it for the others.
func (r *Resolver) flush(ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	start := r.clock()
	names, err := r.describe(ctx, ids)
	r.metrics.call(callResult(err), len(ids), r.clock().Sub(start))
	if err != nil {
		r.log.Warn("EC2 DescribeInstances failed", zap.Int("instances", len(ids)), zap.Error(err))
	}
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		c := r.inflight[id]
		delete(r.inflight, id)
		switch name := names[id]; {
		case err != nil:
			// Not cached: the next request asks again.
			c.err = fmt.Errorf("%w: EC2 DescribeInstances: %w", kubeuser.ErrUnavailable, err)
			r.metrics.lookup(resultError)
		case name != "":
			c.name = name
			r.cache.put(id, entry{name: name, expires: now.Add(r.ttl)})
			r.metrics.lookup(resultFound)
		default:
			// Absent, or present without a private DNS name (terminated).
			c.err = notFound(id)
			r.cache.put(id, entry{expires: now.Add(r.negTTL)})
			r.metrics.lookup(resultNotFound)
		}
		close(c.done)
	}
	r.metrics.cacheSize(r.cache.len())
}

// errRateLimited: the limiter could not grant a call within CallTimeout.
var errRateLimited = errors.New("rate limit: no EC2 call allowed before the deadline")

// describe asks EC2 for ids through the instance-id filter rather than the
// InstanceIds parameter: with InstanceIds a single unknown ID fails the
// whole call (InvalidInstanceID.NotFound), so one caller's made-up instance
// ID would fail the real nodes batched with it; a filter simply leaves
// unknown IDs out.
func (r *Resolver) describe(ctx context.Context, ids []string) (map[string]string, error) {
	in := &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("instance-id"), Values: ids}},
	}
	names := make(map[string]string, len(ids))
	pages := ec2.NewDescribeInstancesPaginator(r.client, in)
	for n := 0; pages.HasMorePages() && n < maxPages; n++ {
		if err := r.limiter.Wait(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w", errRateLimited, err)
		}
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, res := range out.Reservations {
			for _, inst := range res.Instances {
				names[aws.ToString(inst.InstanceId)] = aws.ToString(inst.PrivateDnsName)
			}
		}
	}
	return names, nil
}
