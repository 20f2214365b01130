package check

import (
	"context"
	"errors"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// Verifier turns a bearer token into a verified identity for one cluster
// id. authz/verify implements it, and authz/cache wraps it.
type Verifier interface {
	Verify(ctx context.Context, token, clusterID string) (verify.Result, error)
}

// Mapper maps a verified identity to a Kubernetes user. mapping.Mapper
// implements it. It runs on every request (the mapping is never cached with
// the identity) so that a mapping change takes effect on the next request.
type Mapper interface {
	Map(ctx context.Context, id identity.Identity) (kubeuser.User, error)
}

// BearerSource provides the proxy's own credential for the upstream API
// server. The Check service puts it in the Authorization header it sends
// upstream in place of the client's token.
type BearerSource interface {
	// BearerToken returns the current token. It is called on every allowed
	// request, so it must be cheap (an atomic load).
	BearerToken() string
}

// IsDefinitiveRejection reports whether a verification error is a verdict
// on the token itself (malformed, or refused by STS) rather than trouble on
// the way (throttling, outage, timeout). Only verdicts may be cached
// negatively: caching trouble would turn a blip at STS into denials.
func IsDefinitiveRejection(err error) bool {
	return errors.Is(err, token.ErrMalformed) || errors.Is(err, sts.ErrUnauthenticated)
}

// IsTransientFailure reports whether a verification error is trouble on the
// way to STS (an outage, a timeout, an answer that cannot be trusted,
// throttling by STS or by our own limit) rather than a verdict on the
// token. While STS is in such trouble, an identity it verified earlier for
// the same unexpired token keeps being served (cache.Options
// ServeStaleOnError), so an outage locks out only tokens never seen before.
func IsTransientFailure(err error) bool {
	return errors.Is(err, sts.ErrUnavailable) || errors.Is(err, sts.ErrThrottled) ||
		errors.Is(err, context.DeadlineExceeded)
}
