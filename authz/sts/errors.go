package sts

import "errors"

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
