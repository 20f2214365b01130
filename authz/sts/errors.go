package sts

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors of an STS GetCallerIdentity call. The Check service maps
// them to HTTP statuses in one place; they must stay distinct because only
// ErrUnauthenticated may be cached (negatively): throttling and outages are
// transient and never cached.
var (
	// ErrUnauthenticated: STS refused the signature, the key or the session
	// (SignatureDoesNotMatch, InvalidClientTokenId, ExpiredToken, ...). 401.
	ErrUnauthenticated = errors.New("sts rejected the token")
	// ErrThrottled: STS answered Throttling, or our own STS rate limit is
	// exhausted. 429 with Retry-After.
	ErrThrottled = errors.New("sts throttled the request")
	// ErrUnavailable: network failure, timeout, 5xx, or an answer we cannot
	// trust or parse (HTML, truncated JSON, oversized body, inconsistent
	// identity). 503: the client did nothing wrong and may retry.
	ErrUnavailable = errors.New("sts unavailable")
)

// Error is a GetCallerIdentity call that failed with ErrUnauthenticated or
// ErrUnavailable. Its text never contains the presigned URL, the token, the
// signature or the session token: it is logged and may end up in a decision
// record, while the presigned URL stays a bearer credential for 15 minutes.
type Error struct {
	// Class is ErrUnauthenticated or ErrUnavailable.
	Class error
	// Reason is a stable, low-cardinality cause for logs: "rejected",
	// "network", "timeout", "canceled", "redirect", "status",
	// "oversize", "content-type", "decode", "incomplete", "request".
	Reason string
	// Status is the HTTP status STS answered (0 when there was no answer).
	Status int
	// Code is STS's error code (SignatureDoesNotMatch, ...), if any.
	Code string
	// Message is STS's error message, shortened and withheld entirely if it
	// echoes any part of the request's credentials.
	Message string
	// Err is the underlying cause (a network error, a JSON error), with any
	// url.Error already unwrapped so that it cannot carry the URL.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Class.Error())
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.Status)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes the class sentinel and the cause, so errors.Is works for
// both (for example ErrUnavailable and context.Canceled).
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Class}
	}
	return []error{e.Class, e.Err}
}

// ThrottledError is ErrThrottled with a hint for the client's Retry-After.
type ThrottledError struct {
	// RetryAfter is how long the caller should wait: Retry-After from STS
	// when it sent one, a second otherwise, or the time until our own rate
	// limiter has a token again.
	RetryAfter time.Duration
	// Local is true when our own STS rate limit refused the call and no
	// request was sent.
	Local bool
	// Status and Code are STS's answer when STS throttled.
	Status int
	Code   string
}

func (e *ThrottledError) Error() string {
	if e.Local {
		return fmt.Sprintf("%s: local STS rate limit exceeded, retry after %s", ErrThrottled, e.RetryAfter)
	}
	return fmt.Sprintf("%s: HTTP %d %s, retry after %s", ErrThrottled, e.Status, e.Code, e.RetryAfter)
}

// Unwrap makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// SignatureMismatch reports whether STS refused the presigned URL's
// signature (SignatureDoesNotMatch). For a k8s-aws-v1 token the likeliest
// cause is not the secret key STS's message blames: the verifier sends its
// own cluster id as the signed x-k8s-aws-id header, so a token made for
// another cluster id fails exactly this way.
func SignatureMismatch(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == "SignatureDoesNotMatch"
}

// ClusterIDHint is the hint to add to a SignatureMismatch error, naming the
// cluster id the verifier used (who expects it: "this server", "--cluster-id"),
// or "" for any other error. It names only the expected id, never anything
// of the token.
func ClusterIDHint(err error, who, clusterID string) string {
	if !SignatureMismatch(err) {
		return ""
	}
	return fmt.Sprintf("or the token was made for another cluster id (%s expects %q)", who, clusterID)
}
