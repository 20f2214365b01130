package sts

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"time"
)

// Defaults.
const (
	// DefaultTimeout bounds one STS call end to end. It must stay below
	// Envoy's ext_authz timeout so that we answer 503 ourselves rather than
	// Envoy failing the request on its own terms.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxBodyBytes caps an STS answer. A real GetCallerIdentity
	// answer is under 1 KiB; the reference reads without a cap (§2.1 V23).
	DefaultMaxBodyBytes = 64 << 10
	// maxMaxBodyBytes keeps a configuration typo from disabling the bound.
	maxMaxBodyBytes = 16 << 20
	// defaultRetryAfter is the hint when STS throttles without Retry-After
	// (it never sends one).
	defaultRetryAfter = time.Second
	// maxRetryAfter caps a Retry-After taken from the upstream.
	maxRetryAfter = time.Minute
)

// Options configure a Client.
type Options struct {
	// Endpoint is an optional base URL to send requests to instead of the
	// token's host: an STS VPC endpoint (https://vpce-...), or a stand-in on
	// loopback for tests (http://127.0.0.1:PORT). The token's host is still
	// sent as the Host header, because it is signed.
	Endpoint string
	// CAFile is an optional PEM file of extra CAs to trust besides the
	// system roots.
	CAFile string
	// Timeout bounds one call (dial, TLS, headers and body); default 5s.
	Timeout time.Duration
	// MaxBodyBytes caps the answer; default 64 KiB.
	MaxBodyBytes int64
	// RateLimit is the number of STS calls per second allowed (token
	// bucket); 0 means unlimited.
	RateLimit float64
	// RateBurst is the bucket size; defaults to max(1, ceil(RateLimit)).
	RateBurst int
	// Metrics is optional.
	Metrics *Metrics
	// Now is the clock of the rate limiter; time.Now when nil.
	Now func() time.Time
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if o.Endpoint != "" {
		if _, err := parseEndpoint(o.Endpoint); err != nil {
			errs = append(errs, err)
		}
	}
	if o.Timeout < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	if o.MaxBodyBytes < 0 || o.MaxBodyBytes > maxMaxBodyBytes {
		errs = append(errs, fmt.Errorf("max body bytes must be between 0 (default) and %d", maxMaxBodyBytes))
	}
	if o.RateLimit < 0 || math.IsNaN(o.RateLimit) || math.IsInf(o.RateLimit, 0) {
		errs = append(errs, errors.New("rate limit must be a finite number >= 0"))
	}
	if o.RateBurst < 0 {
		errs = append(errs, errors.New("rate burst must not be negative"))
	}
	if o.RateBurst > 0 && o.RateLimit == 0 {
		errs = append(errs, errors.New("rate burst needs a rate limit"))
	}
	return errors.Join(errs...)
}

// parseEndpoint accepts an https URL, or http only to a loopback address: the
// presigned URL is a bearer credential for 15 minutes and must not cross a
// network in clear text. The path must be empty or "/", because the signed
// path is "/".
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("endpoint does not parse: %w", unwrapURLError(err))
	}
	var errs []error
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			errs = append(errs, errors.New("endpoint may use http only to a loopback IP address"))
		}
	default:
		errs = append(errs, fmt.Errorf("endpoint scheme must be https, got %q", u.Scheme))
	}
	if u.Host == "" {
		errs = append(errs, errors.New("endpoint has no host"))
	}
	if u.User != nil {
		errs = append(errs, errors.New("endpoint must not carry userinfo"))
	}
	if u.Path != "" && u.Path != "/" {
		errs = append(errs, errors.New("endpoint must not have a path: the signed path is /"))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, errors.New("endpoint must not have a query or fragment"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return u, nil
}
