// Package sts makes the one outbound call of token verification: a GET of
// the token's presigned GetCallerIdentity URL, with our own cluster id.
package sts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"golang.org/x/time/rate"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// Caller is STS's answer: who signed the presigned URL. Nothing here has
// been checked for consistency yet (identity.FromSTS does that).
type Caller struct {
	ARN, Account, UserID string
}

// Client calls STS GetCallerIdentity with presigned URLs. It is safe for
// concurrent use.
type Client struct {
	http     *http.Client
	endpoint *url.URL
	timeout  time.Duration
	maxBody  int64
	limiter  *rate.Limiter
	metrics  *Metrics
	now      func() time.Time
}

// New validates o and builds a Client.
func New(o Options) (*Client, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("sts client options: %w", err)
	}
	c := &Client{
		timeout: o.Timeout,
		maxBody: o.MaxBodyBytes,
		metrics: o.Metrics,
		now:     o.Now,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxBodyBytes
	}
	if c.now == nil {
		c.now = time.Now
	}
	if o.Endpoint != "" {
		c.endpoint, _ = parseEndpoint(o.Endpoint) // validated above
	}
	if o.RateLimit > 0 {
		burst := o.RateBurst
		if burst == 0 {
			burst = max(1, int(o.RateLimit+0.999999))
		}
		c.limiter = rate.NewLimiter(rate.Limit(o.RateLimit), burst)
	}
	roots, err := rootCAs(o.CAFile)
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{
		// Like the reference, honour HTTPS_PROXY/NO_PROXY: clusters behind an
		// egress proxy reach STS only through it. Requests to loopback
		// never go through a proxy.
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   c.timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    c.timeout,
		ResponseHeaderTimeout:  c.timeout,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    32,
		IdleConnTimeout:        90 * time.Second,
		// A compressed answer would be inflated behind our byte cap's back.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	c.http = &http.Client{
		Transport: transport,
		Timeout:   c.timeout,
		// Never follow: a redirect would send the presigned URL (a bearer
		// credential) to a host nobody allow-listed, and the reference
		// returns the 3xx unfollowed too (§2.1 V21).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

func rootCAs(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("sts client: CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("sts client: CA file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// GetCallerIdentity sends the presigned URL to STS once (no retries) with
// x-k8s-aws-id set to clusterID (ours, never the client's: that is what
// binds a token to this cluster) and returns who signed it.
//
// Errors wrap exactly one of ErrUnauthenticated (STS refused the
// signature, key or session: the client's fault, may be cached
// negatively), ErrThrottled (as *ThrottledError) or ErrUnavailable
// (anything else: never the client's fault, never cached).
func (c *Client) GetCallerIdentity(ctx context.Context, p *token.Presigned, clusterID string) (Caller, error) {
	region := "unknown"
	if p != nil && p.RegionLabel != "" {
		region = p.RegionLabel
	}
	if p == nil || p.URL == nil || p.Host == "" || clusterID == "" {
		// A programming or configuration error: an empty cluster id would
		// accept tokens signed for no cluster at all.
		err := &Error{Class: ErrUnavailable, Reason: "request", Err: errors.New("presigned URL, host and cluster id are required")}
		c.metrics.observe(resultUnavailable, region, 0, false)
		return Caller{}, err
	}
	if c.limiter != nil {
		now := c.now()
		// Reserve-and-cancel instead of Allow so that the refusal can say
		// when a token will be free again (the client's Retry-After).
		r := c.limiter.ReserveN(now, 1)
		if !r.OK() {
			c.metrics.observe(resultRateLimited, region, 0, false)
			return Caller{}, &ThrottledError{RetryAfter: defaultRetryAfter, Local: true}
		}
		if delay := r.DelayFrom(now); delay > 0 {
			r.CancelAt(now)
			c.metrics.observe(resultRateLimited, region, 0, false)
			return Caller{}, &ThrottledError{RetryAfter: delay, Local: true}
		}
	}

	start := c.now()
	caller, err := c.call(ctx, p, clusterID)
	c.metrics.observe(resultOf(err), region, c.now().Sub(start), true)
	return caller, err
}

func (c *Client) call(ctx context.Context, p *token.Presigned, clusterID string) (Caller, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	// The query goes out byte for byte: it is what was signed.
	target := &url.URL{Scheme: "https", Host: p.Host, Path: "/", RawQuery: p.URL.RawQuery}
	if c.endpoint != nil {
		target.Scheme, target.Host = c.endpoint.Scheme, c.endpoint.Host
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://sts.invalid/", nil)
	if err != nil {
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "request", Err: err}
	}
	req.URL = target
	// The host is signed: with an endpoint override it must still be the
	// token's. TLS verifies the endpoint's own name (req.URL.Host).
	req.Host = p.Host
	req.Header = http.Header{
		http.CanonicalHeaderKey(token.ClusterIDHeader): {clusterID},
		"Accept":     {"application/json"},
		"User-Agent": {"kube-iam-authz"},
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return Caller{}, transportError(ctx, err)
	}
	defer resp.Body.Close()

	if resp.ContentLength > c.maxBody {
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "oversize", Status: resp.StatusCode,
			Err: fmt.Errorf("answer of %d bytes exceeds the %d byte cap", resp.ContentLength, c.maxBody)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return Caller{}, transportError(ctx, err)
	}
	if int64(len(body)) > c.maxBody {
		return Caller{}, &Error{Class: ErrUnavailable, Reason: "oversize", Status: resp.StatusCode,
			Err: fmt.Errorf("answer exceeds the %d byte cap", c.maxBody)}
	}
	return interpret(resp, body, secretsOf(p))
}

// transportError classifies a failure to get or read an answer. The
// url.Error that http.Client returns quotes the whole URL, presigned query
// included: only its cause is kept.
func transportError(ctx context.Context, err error) error {
	err = unwrapURLError(err)
	reason := "network"
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		reason = "canceled"
	case errors.Is(err, context.DeadlineExceeded), ctx.Err() != nil, errors.As(err, &netErr) && netErr.Timeout():
		reason = "timeout"
	}
	return &Error{Class: ErrUnavailable, Reason: reason, Err: err}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	return err
}

func resultOf(err error) string {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, ErrUnauthenticated):
		return resultUnauthenticated
	case errors.Is(err, ErrThrottled):
		return resultThrottled
	default:
		return resultUnavailable
	}
}
