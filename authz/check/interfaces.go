package check

import (
	"context"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
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
