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

	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// DefaultResponseCacheSize bounds the cache of built OK responses.
const DefaultResponseCacheSize = 4096

// DefaultReviewTimeout bounds the SubjectAccessReviews of one Check: with
// the STS call (5 s at most) it must leave the answer inside most of
// Envoy's 6 s ext_authz timeout in the common case where the token was
// cached; Envoy's own timeout (a 503) stays the backstop.
const DefaultReviewTimeout = 3 * time.Second

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
	// AllowImpersonation accepts client Impersonate-* headers (kubectl
	// --as) on a request with a valid AWS token: each requested attribute
	// is authorized for the mapped caller with a SubjectAccessReview
	// (Reviewer), as the API server would. Off, any client Impersonate-*
	// header is refused (ErrImpersonationHeader).
	AllowImpersonation bool
	// Reviewer answers the SubjectAccessReviews; required with
	// AllowImpersonation.
	Reviewer AccessReviewer
	// ReviewTimeout bounds all the reviews of one Check together; 0 means
	// DefaultReviewTimeout. Past it the Check answers 503 (sar_unavailable).
	ReviewTimeout time.Duration
	// PassthroughNonAWSTokens forwards a request whose bearer token is not
	// a k8s-aws-v1 token untouched (no impersonation, no proxy credential,
	// the client's Impersonate-* lines left as they are), so the API server
	// authenticates and authorizes it itself. Off, such a token is a 401.
	// It needs a bearer upstream credential (Upstream or the cluster's own):
	// a cluster without one (mTLS to the API server) never passes a request
	// through, since the proxy's client certificate would authenticate it.
	PassthroughNonAWSTokens bool
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
	if o.ReviewTimeout < 0 {
		errs = append(errs, errors.New("check: ReviewTimeout must not be negative"))
	}
	if o.PassthroughNonAWSTokens {
		for _, c := range o.Clusters {
			if c.upstream(o.Upstream) == nil {
				errs = append(errs, fmt.Errorf("check: PassthroughNonAWSTokens needs a bearer upstream credential, and cluster %q has none (with mTLS to the API server, the proxy's certificate would authenticate passed-through requests)", c.Name))
			}
		}
	}
	if o.AllowImpersonation && o.Reviewer == nil {
		errs = append(errs, errors.New("check: AllowImpersonation needs a Reviewer (SubjectAccessReview client)"))
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
	// allowImpersonation, reviewer and passthrough: Options of the same names.
	allowImpersonation bool
	reviewer           AccessReviewer
	reviewTimeout      time.Duration
	passthrough        bool
	// passthroughOK is the (immutable) OK that changes nothing.
	passthroughOK *authv3.CheckResponse
	// denied holds the prebuilt Denied response of each table row (429
	// rows are built per request for their Retry-After).
	denied map[*outcome.Outcome]*authv3.CheckResponse

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
	if o.ReviewTimeout == 0 {
		o.ReviewTimeout = DefaultReviewTimeout
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	s := &Server{
		verifier:           o.Verifier,
		clusters:           cs,
		upstream:           o.Upstream,
		log:                o.Logger,
		metrics:            m,
		now:                now,
		responses:          newResponseCache(size),
		allowImpersonation: o.AllowImpersonation,
		reviewer:           o.Reviewer,
		reviewTimeout:      o.ReviewTimeout,
		passthrough:        o.PassthroughNonAWSTokens,
		passthroughOK:      passthroughResponse(),
		denied:             map[*outcome.Outcome]*authv3.CheckResponse{},
		decisionBase:       binary.BigEndian.Uint64(seed[:]) &^ (1<<32 - 1),
	}
	for _, row := range outcome.Denials() {
		s.denied[row] = deniedResponse(row, row.StatusBody(), unavailableRetryAfter(row))
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
	// clusterID is the id the token was verified for (for the log's hint
	// when STS refuses the signature).
	clusterID string
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
	// impersonated is the requested user of an allowed or refused nested
	// impersonation, impersonatedGroups its requested groups, reviews the
	// SubjectAccessReviews asked (cache hits included).
	impersonated       string
	impersonatedGroups []string
	reviews            int
	// passthrough: a non-AWS token forwarded untouched.
	passthrough bool
	err         error
	outcome     *outcome.Outcome
	latency     time.Duration
	// trace is handed to the verification cache through the context; the
	// cache marks it when it calls the upstream verifier.
	trace cache.Trace
}

// Check answers one ext_authz request. It never returns a gRPC error: every
// failure is a Denied response, so Envoy's failure_mode_allow can never
// turn our error into an allow (CVE-2023-27488, CVE-2024-23324).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, _ error) {
	start := s.now()
	// One allocation for everything the Check needs per request (the
	// decision, the trace context and the response envelope): on a cache
	// hit these were eight allocations, a third of the hit's CPU with GC.
	st := &checkState{}
	d := &st.d
	d.id = s.nextDecisionID()
	defer func() {
		if p := recover(); p != nil {
			// Only a runtime error's own text is logged: an arbitrary panic
			// value could hold request data.
			detail := fmt.Sprintf("panic of type %T", p)
			if re, ok := p.(runtime.Error); ok {
				detail = "panic: " + re.Error()
			}
			d.err = fmt.Errorf("%w: %s", outcome.ErrInternal, detail)
			d.outcome = outcome.Internal()
			resp = st.respond(s.denied[outcome.Internal()], d.id)
		}
		s.record(d, start)
	}()
	resp = st.respond(s.decide(st.ctx.With(ctx, &d.trace), req, d), d.id)
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
	d.cluster, d.clusterID = cl.Name, clusterID

	rh := readHeaders(httpReq)
	// Pass-through only where the proxy authenticates upstream with a bearer
	// token, which the client's own then replaces. Without one, Envoy
	// reaches the API server with a client certificate (mTLS), which the API
	// server checks BEFORE any bearer token: a passed-through request would
	// be the proxy, and its Impersonate-* lines the proxy's to choose.
	if s.passthrough && cl.upstream(s.upstream) != nil {
		if tok, ok := passthroughToken(rh); ok {
			d.token = tok
			d.passthrough = true
			d.outcome = outcome.Passthrough()
			return s.passthroughOK
		}
	}
	if rh.impersonation != "" && !s.allowImpersonation {
		return s.deny(d, fmt.Errorf("%w: %q", outcome.ErrImpersonationHeader, rh.impersonation))
	}
	tok, err := bearerToken(rh)
	if err != nil {
		return s.deny(d, err)
	}
	d.token = tok
	if !cl.ready() {
		return s.deny(d, outcome.ErrNotReady)
	}

	res, err := s.verifier.Verify(ctx, tok, clusterID)
	d.cacheHit = d.trace.Hit()
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
	if rh.impersonation != "" {
		return s.nested(ctx, d, rh, res.Identity, user, bearer)
	}
	key := responseKey{cluster: ci, id: res.Identity}
	if resp := s.responses.get(key, user, bearer); resp != nil {
		d.outcome = outcome.OK()
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
	d.outcome = outcome.OK()
	return resp
}

// nested answers a request that asks to impersonate someone else (after
// the caller's own token was verified and mapped, as the API server
// authenticates before it impersonates): parse the client's Impersonate-*
// lines, authorize each attribute for the mapped caller, and answer OK with
// the requested identity, the reserved extras naming the caller, and the
// proxy's credential.
func (s *Server) nested(ctx context.Context, d *decision, rh requestHeaders, id identity.Identity, user kubeuser.User, bearer string) *authv3.CheckResponse {
	if rh.impersonationConflict {
		return s.deny(d, fmt.Errorf("%w: Impersonate-* in both header representations", impersonate.ErrInvalidRequest))
	}
	req, err := impersonate.ParseRequested(rh.impersonationLines, rh.impersonationMerged)
	if err != nil {
		return s.deny(d, err)
	}
	d.impersonated, d.impersonatedGroups = req.User, req.Groups
	// The caller must be one the proxy could pass on by itself (the same
	// limits as without --as): a nested impersonation is never a way
	// around a refused mapping.
	if _, err := impersonation(id, user); err != nil {
		return s.deny(d, err)
	}
	hs, err := impersonate.NestedHeaders(id, user, req)
	if err != nil {
		return s.deny(d, err)
	}
	if err := s.authorizeImpersonation(ctx, impersonate.Caller(id, user), req, d); err != nil {
		return s.deny(d, err)
	}
	resp, err := nestedResponse(hs, bearer)
	if err != nil {
		return s.deny(d, err)
	}
	d.outcome = outcome.Impersonated()
	return resp
}

// deny classifies err and returns the matching Denied response.
func (s *Server) deny(d *decision, err error) *authv3.CheckResponse {
	d.err = err
	o := outcome.Of(err)
	d.outcome = o
	if o.HTTPCode() == 429 {
		return deniedResponse(o, o.StatusBody(), retryAfterSeconds(err))
	}
	var refused *ImpersonationDeniedError
	if errors.As(err, &refused) {
		return deniedResponse(o, refused.body, 0)
	}
	if resp, ok := s.denied[o]; ok {
		return resp
	}
	return s.denied[outcome.Internal()]
}

// unavailableRetryAfterSeconds is the Retry-After of every 503: STS, the
// mapping or this server is briefly unable to decide, and the request
// itself is fine. client-go (kubectl) retries a 503 only when it carries
// Retry-After (up to 10 times, waiting the given seconds), so a short STS
// blip or a restart is ridden out without the user seeing an error, while a
// longer outage still surfaces within seconds.
const unavailableRetryAfterSeconds = 1

func unavailableRetryAfter(o *outcome.Outcome) int {
	if o.HTTPCode() == http.StatusServiceUnavailable {
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
		o = outcome.Internal()
		d.outcome = o
	}
	s.metrics.checks[o].Inc()
	if o.HTTPCode() == http.StatusOK {
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
	if d.outcome.HTTPCode() == http.StatusOK {
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
	enc.AddString("reason", d.outcome.Label())
	enc.AddInt("code", d.outcome.HTTPCode())
	enc.AddDuration("latency", d.latency)
	enc.AddBool("cache_hit", d.cacheHit)
	if d.impersonated != "" {
		// The caller (arn, username, groups above) asked to act as this
		// user; reviews counts the SubjectAccessReviews asked for it.
		enc.AddString("impersonated_user", d.impersonated)
		_ = enc.AddArray("impersonated_groups", zapcore.ArrayMarshalerFunc(func(ae zapcore.ArrayEncoder) error {
			for _, g := range d.impersonatedGroups {
				ae.AppendString(g)
			}
			return nil
		}))
		enc.AddInt("sar_reviews", d.reviews)
	}
	if d.passthrough {
		enc.AddBool("passthrough", true)
	}
	if d.err != nil {
		enc.AddString("error", d.err.Error())
		if hint := sts.ClusterIDHint(d.err, "this server", d.clusterID); hint != "" {
			enc.AddString("hint", hint)
		}
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
