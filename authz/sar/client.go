package sar

import (
	"context"
	"fmt"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authorizationv1client "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"

	"github.com/kube-iam-authz/kube-iam-authz/internal/kubeclient"
)

// Client defaults.
const (
	// DefaultTimeout bounds one SubjectAccessReview call. The Check waits
	// for up to one per requested attribute (singleflight and the cache
	// make most of them free), all within Envoy's 6 s ext_authz timeout.
	DefaultTimeout = 2 * time.Second
	// MaxTimeout: a longer wait is worse than a 503 the client retries.
	MaxTimeout = 5 * time.Second
	// defaultQPS/defaultBurst: client-go's own rate limiter; a cache miss
	// per requested attribute is rare, but a burst of new impersonations
	// must not starve.
	defaultQPS   = 50
	defaultBurst = 100
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// Kubeconfig is a kubeconfig file for the API server; empty means the
	// in-cluster config (the pod's service account).
	Kubeconfig string
	// TokenFile, with the in-cluster config, is the bearer token file to
	// use instead of the automounted service account token (serve passes
	// --upstream-token-file: the proxy asks as itself). It is re-read as
	// the kubelet rotates it.
	TokenFile string
	// Timeout bounds one call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Metrics, if set, counts calls by result and their latency.
	Metrics *Metrics
	// Now is the clock for latency; time.Now if nil.
	Now func() time.Time
}

// Validate reports every problem with the options.
func (o *ClientOptions) Validate() error {
	if o.Timeout < 0 || o.Timeout > MaxTimeout {
		return fmt.Errorf("sar: timeout %s must be in (0, %s]", o.Timeout, MaxTimeout)
	}
	return nil
}

// Client sends SubjectAccessReviews with client-go.
type Client struct {
	reviews authorizationv1client.SubjectAccessReviewInterface
	timeout time.Duration
	metrics *Metrics
	now     func() time.Time
}

// NewClient builds a Client from a kubeconfig or the in-cluster config. TLS
// verification cannot be turned off (a kubeconfig with
// insecure-skip-tls-verify is refused), and redirects are never followed:
// a SubjectAccessReview answer must come from the API server itself.
func NewClient(o ClientOptions) (*Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	cfg, err := kubeclient.Config(o.Kubeconfig, o.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("sar: API server config: %w", err)
	}
	return NewClientForConfig(cfg, o)
}

// NewClientForConfig builds a Client from a rest.Config.
func NewClientForConfig(cfg *rest.Config, o ClientOptions) (*Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	cfg.Timeout = timeout
	cfg.QPS, cfg.Burst = defaultQPS, defaultBurst
	// JSON both ways: what every API server and aggregator speaks.
	cfg.ContentType = "application/json"
	cfg.AcceptContentTypes = "application/json"
	cs, err := kubeclient.NewClientset(cfg)
	if err != nil {
		return nil, fmt.Errorf("sar: %w", err)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Client{reviews: cs.AuthorizationV1().SubjectAccessReviews(), timeout: timeout, metrics: o.Metrics, now: now}, nil
}

// Review creates one SubjectAccessReview. Any failure to get an answer
// wraps ErrUnavailable.
func (c *Client) Review(ctx context.Context, s Subject, a Attributes) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := c.now()
	d, err := c.review(ctx, s, a)
	if c.metrics != nil {
		c.metrics.latency.Observe(c.now().Sub(start).Seconds())
		switch {
		case err != nil:
			c.metrics.requests[resultError].Inc()
		case d.Allowed:
			c.metrics.requests[resultAllowed].Inc()
		default:
			c.metrics.requests[resultDenied].Inc()
		}
	}
	return d, err
}

func (c *Client) review(ctx context.Context, s Subject, a Attributes) (Decision, error) {
	extra := make(map[string]authorizationv1.ExtraValue, len(s.Extra))
	for k, v := range s.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	req := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace:   a.Namespace,
			Verb:        a.Verb,
			Group:       a.Group,
			Version:     a.Version,
			Resource:    a.Resource,
			Subresource: a.Subresource,
			Name:        a.Name,
		},
		User:   s.User,
		Groups: s.Groups,
		UID:    s.UID,
		Extra:  extra,
	}}
	resp, err := c.reviews.Create(ctx, req, metav1.CreateOptions{})
	if err != nil {
		return Decision{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	st := resp.Status
	if st.Allowed {
		return Decision{Allowed: true, Reason: st.Reason}, nil
	}
	// The impersonation filter words a denial as "<forbidden>: <err>:
	// <reason>" when the authorizer also reported an evaluation error.
	reason := st.Reason
	if st.EvaluationError != "" {
		reason = st.EvaluationError
		if st.Reason != "" {
			reason += ": " + st.Reason
		}
	}
	return Decision{Reason: reason}, nil
}
