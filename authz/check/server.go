// Package check is the ext_authz Check service: it reads the request
// headers Envoy forwards, verifies the AWS bearer token, maps the identity
// and answers OK with impersonation headers, or Denied with a Kubernetes
// Status body.
package check

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// DefaultResponseCacheSize bounds the cache of built OK responses.
const DefaultResponseCacheSize = 4096

// Options configure a Server.
type Options struct {
	// Verifier verifies tokens (normally authz/cache around authz/verify).
	Verifier Verifier
	// Clusters are the clusters served; the first is the default, used when
	// a route sets no context_extensions.
	Clusters []Cluster
	// Upstream is the proxy's own credential. Nil means the client's
	// Authorization header is removed and the upstream authenticates the
	// proxy another way (mTLS).
	Upstream BearerSource
	// Logger receives one line per decision.
	Logger *zap.Logger
	// Registerer receives the Check metrics.
	Registerer prometheus.Registerer
	// Now is the clock for latency; time.Now if nil.
	Now func() time.Time
	// ResponseCacheSize bounds the OK-response cache; 0 means
	// DefaultResponseCacheSize, negative disables it.
	ResponseCacheSize int
	// LogCacheHits writes a decision line for every allowed Check answered from
	// the verification cache. By default they are summarised: one line per
	// identity per HitSummaryInterval (hitsummary.go), and each at debug.
	LogCacheHits bool
	// HitSummaryInterval is how often the cache-hit summary is written (run
	// RunCacheHitSummary); 0 means DefaultHitSummaryInterval.
	HitSummaryInterval time.Duration
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Verifier == nil {
		errs = append(errs, errors.New("check: Verifier is required"))
	}
	if len(o.Clusters) == 0 {
		errs = append(errs, errors.New("check: at least one cluster is required"))
	}
	if o.Logger == nil {
		errs = append(errs, errors.New("check: Logger is required"))
	}
	if o.Registerer == nil {
		errs = append(errs, errors.New("check: Registerer is required"))
	}
	if o.HitSummaryInterval < 0 {
		errs = append(errs, errors.New("check: HitSummaryInterval must not be negative"))
	}
	return errors.Join(errs...)
}

// Server implements envoy.service.auth.v3.Authorization.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	verifier  Verifier
	clusters  *clusters
	upstream  BearerSource
	log       *zap.Logger
	metrics   *metrics
	now       func() time.Time
	responses *responseCache
	// denied holds the prebuilt Denied response of each table row (429
	// rows are built per request for their Retry-After).
	denied map[*outcome]*authv3.CheckResponse

	// decisionBase|counter numbers decisions: unique within the process
	// and, thanks to the random base, unlikely to repeat across restarts.
	decisionBase uint64
	decisions    atomic.Uint64

	// hits counts cache-hit decisions between summary lines; nil when every
	// hit is logged (Options.LogCacheHits).
	hits        *hitSummary
	hitInterval time.Duration
}

// New builds a Server.
func New(o Options) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	cs, err := newClusters(o.Clusters)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("check: metrics: %w", err)
	}
	size := o.ResponseCacheSize
	if size == 0 {
		size = DefaultResponseCacheSize
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	s := &Server{
		verifier:     o.Verifier,
		clusters:     cs,
		upstream:     o.Upstream,
		log:          o.Logger,
		metrics:      m,
		now:          now,
		responses:    newResponseCache(size),
		denied:       map[*outcome]*authv3.CheckResponse{},
		decisionBase: binary.BigEndian.Uint64(seed[:]) &^ (1<<32 - 1),
	}
	for _, row := range outcomes {
		s.denied[row] = deniedResponse(row, row.statusBody(), unavailableRetryAfter(row))
	}
	if !o.LogCacheHits {
		s.hits = newHitSummary(now())
		s.hitInterval = o.HitSummaryInterval
		if s.hitInterval == 0 {
			s.hitInterval = DefaultHitSummaryInterval
		}
	}
	return s, nil
}

// Register adds the Authorization service to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(g, s) }

// Ready reports whether every cluster's mapping has been loaded.
func (s *Server) Ready() bool { return s.clusters.ready() }

// decision collects what one Check decided, for the log line and metrics.
type decision struct {
	id        string
	requestID string
	cluster   string
	// token is kept only so that the log line can carry its Fingerprint,
	// computed when (and only if) the line is written. It is never logged.
	token string
	// fingerprint, when set, is the token's Fingerprint as the verifier
	// computed it (verify.Result.Fingerprint, served from the cache).
	fingerprint string
	arn         string
	username    string
	groups      []string
	cacheHit    bool
	err         error
	outcome     *outcome
	latency     time.Duration
	// trace is handed to the verifier chain through the context.
	trace trace
}

// Check answers one ext_authz request. It never returns a gRPC error: every
// failure is a Denied response, so Envoy's failure_mode_allow can never
// turn our error into an allow (CVE-2023-27488, CVE-2024-23324).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, _ error) {
	start := s.now()
	d := &decision{id: s.nextDecisionID()}
	defer func() {
		if p := recover(); p != nil {
			// Only a runtime error's own text is logged: an arbitrary panic
			// value could hold request data.
			detail := fmt.Sprintf("panic of type %T", p)
			if re, ok := p.(runtime.Error); ok {
				detail = "panic: " + re.Error()
			}
			d.err = fmt.Errorf("%w: %s", ErrInternal, detail)
			d.outcome = outcomeInternal
			resp = withDecision(s.denied[outcomeInternal], d.id)
		}
		s.record(d, start)
	}()
	resp = withDecision(s.decide(ctx, req, d), d.id)
	return resp, nil
}

// nextDecisionID returns 16 hex digits: a random per-process prefix and a
// counter. Envoy's access log joins it through dynamic metadata.
func (s *Server) nextDecisionID() string {
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], s.decisionBase|(s.decisions.Add(1)&(1<<32-1)))
	var out [16]byte
	hex.Encode(out[:], raw[:])
	return string(out[:])
}

func (s *Server) decide(ctx context.Context, req *authv3.CheckRequest, d *decision) *authv3.CheckResponse {
	attrs := req.GetAttributes()
	httpReq := attrs.GetRequest().GetHttp()
	d.requestID = httpReq.GetId()

	clusterID, ci, err := s.clusters.resolve(attrs.GetContextExtensions())
	if err != nil {
		return s.deny(d, err)
	}
	cl := s.clusters.list[ci]
	d.cluster = cl.Name

	rh := readHeaders(httpReq)
	if rh.impersonation != "" {
		return s.deny(d, fmt.Errorf("%w: %q", ErrImpersonationHeader, rh.impersonation))
	}
	tok, err := bearerToken(rh)
	if err != nil {
		return s.deny(d, err)
	}
	d.token = tok
	if !cl.ready() {
		return s.deny(d, ErrNotReady)
	}

	res, err := s.verifier.Verify(context.WithValue(ctx, traceKey{}, &d.trace), tok, clusterID)
	d.cacheHit = !d.trace.upstream.Load()
	// The verifier computed the fingerprint once, when it verified the
	// token; a cache hit serves it with the result instead of rehashing
	// the 1.5 KB token for every log line (a fifth of a cache-hit Check).
	d.fingerprint = res.Fingerprint
	if err != nil {
		return s.deny(d, err)
	}
	d.arn = res.Identity.ARN
	user, err := cl.Mapper.Map(ctx, res.Identity)
	if err != nil {
		return s.deny(d, err)
	}
	d.username, d.groups = user.Username, user.Groups

	var bearer string
	if src := cl.upstream(s.upstream); src != nil {
		bearer = src.BearerToken()
	}
	key := responseKey{cluster: ci, id: res.Identity}
	if resp := s.responses.get(key, user, bearer); resp != nil {
		d.outcome = outcomeOK
		return resp
	}
	dec, err := impersonation(res.Identity, user)
	if err != nil {
		return s.deny(d, err)
	}
	resp, err := okResponse(dec.Headers, bearer)
	if err != nil {
		return s.deny(d, err)
	}
	s.responses.put(key, user, bearer, resp)
	d.outcome = outcomeOK
	return resp
}

// deny classifies err and returns the matching Denied response.
func (s *Server) deny(d *decision, err error) *authv3.CheckResponse {
	d.err = err
	o := classify(err)
	d.outcome = o
	if o.httpCode == 429 {
		return deniedResponse(o, o.statusBody(), retryAfterSeconds(err))
	}
	if resp, ok := s.denied[o]; ok {
		return resp
	}
	return s.denied[outcomeInternal]
}

// unavailableRetryAfterSeconds is the Retry-After of every 503: STS, the
// mapping or this server is briefly unable to decide, and the request
// itself is fine. client-go (kubectl) retries a 503 only when it carries
// Retry-After (up to 10 times, waiting the given seconds), so a short STS
// blip or a restart is ridden out without the user seeing an error, while a
// longer outage still surfaces within seconds.
const unavailableRetryAfterSeconds = 1

func unavailableRetryAfter(o *outcome) int {
	if o.httpCode == http.StatusServiceUnavailable {
		return unavailableRetryAfterSeconds
	}
	return 0
}

// retryAfterSeconds is the Retry-After for a throttled verification: what
// the error carries, rounded up to whole seconds, and at least 1.
func retryAfterSeconds(err error) int {
	d := retryAfter(err)
	if d <= 0 {
		return 1
	}
	return int((d + time.Second - 1) / time.Second)
}

// record writes the decision's log line and metrics.
func (s *Server) record(d *decision, start time.Time) {
	d.latency = s.now().Sub(start)
	o := d.outcome
	if o == nil {
		o = outcomeInternal
		d.outcome = o
	}
	s.metrics.checks[o].Inc()
	if o == outcomeOK {
		s.metrics.allowed.Observe(d.latency.Seconds())
	} else {
		s.metrics.denied.Observe(d.latency.Seconds())
	}
	s.logDecision(d, o)
}

// MarshalLogObject writes the decision's log fields. It never writes the
// token, only its fingerprint.
func (d *decision) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	result := resultDenied
	if d.outcome == outcomeOK {
		result = resultAllowed
	}
	enc.AddString("decision", d.id)
	enc.AddString("request_id", d.requestID)
	enc.AddString("cluster", d.cluster)
	fingerprint := d.fingerprint
	if fingerprint == "" && d.token != "" {
		fingerprint = token.Fingerprint(d.token)
	}
	enc.AddString("token", fingerprint)
	enc.AddString("arn", d.arn)
	enc.AddString("username", d.username)
	_ = enc.AddArray("groups", (*decisionGroups)(d))
	enc.AddString("result", result)
	enc.AddString("reason", d.outcome.label)
	enc.AddInt("code", d.outcome.httpCode)
	enc.AddDuration("latency", d.latency)
	enc.AddBool("cache_hit", d.cacheHit)
	if d.err != nil {
		enc.AddString("error", d.err.Error())
	}
	return nil
}

// decisionGroups marshals a decision's groups; a pointer conversion, so
// passing it to zap allocates nothing.
type decisionGroups decision

func (g *decisionGroups) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, group := range g.groups {
		enc.AppendString(group)
	}
	return nil
}
