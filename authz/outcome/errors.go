package outcome

import "errors"

// Sentinel errors for problems the Check service (authz/check) finds itself,
// before or after verification. They live beside the table (table.go) that
// maps each to a response.
var (
	// ErrNoToken: the request has no Authorization header.
	ErrNoToken = errors.New("no Authorization header")
	// ErrMultipleAuthorization: Authorization appears more than once, or its
	// value holds a comma. Envoy comma-joins repeated headers in the
	// CheckRequest, and CVE-2021-32777 was ext_authz seeing a different
	// value from the upstream; an ambiguous credential is refused.
	ErrMultipleAuthorization = errors.New("several Authorization values")
	// ErrNotBearer: the Authorization scheme is not Bearer.
	ErrNotBearer = errors.New("authorization scheme is not Bearer")
	// ErrEmptyToken: "Bearer" with no token after it.
	ErrEmptyToken = errors.New("empty bearer token")
	// ErrMalformedAuthorization: the Authorization value has extra fields
	// or whitespace after the token.
	ErrMalformedAuthorization = errors.New("malformed Authorization header")
	// ErrNotAWSToken: the bearer token does not start with k8s-aws-v1.;
	// other token types (service account JWTs, OIDC) are not passed
	// through unless --passthrough-non-aws-tokens is set, since the
	// upstream would otherwise see the proxy's identity, not the client's.
	ErrNotAWSToken = errors.New("bearer token is not a k8s-aws-v1 token")
	// ErrImpersonationHeader: the client sent a header starting with
	// Impersonate- and the server runs without --allow-impersonation.
	// (With it, the headers are authorized with SubjectAccessReviews and
	// passed on: authz/check/impersonation.go.) Stripping it and adding ours is unsafe: Envoy applies
	// headers_to_remove after header mutations (set, add, append, remove),
	// so removing impersonate-* would also delete the headers we add, and
	// adding without removing lets the API server union client groups with
	// ours. The request is refused instead.
	ErrImpersonationHeader = errors.New("client sent an impersonation header")
	// ErrUnknownCluster: a route's context_extensions name a cluster id or
	// mapping the server is not configured for. This is an Envoy
	// configuration error; falling back to the default cluster could map
	// the caller with the wrong cluster's rules, so it fails closed.
	ErrUnknownCluster = errors.New("unknown cluster or mapping in context_extensions")
	// ErrNotReady: the selected mapping has not been loaded yet.
	ErrNotReady = errors.New("mapping not loaded yet")
	// ErrTooManyGroups: the user has more groups than the Envoy route has
	// Impersonate-Group slots (MaxGroups).
	ErrTooManyGroups = errors.New("more groups than the proxy can pass on")
	// ErrImpersonationDenied: a SubjectAccessReview refused an attribute the
	// client asked to impersonate; authz/check's ImpersonationDeniedError
	// wraps it with the API server's own Status body.
	ErrImpersonationDenied = errors.New("impersonation not allowed")
	// ErrInternal: a panic or a bug; never an OK.
	ErrInternal = errors.New("internal error")
)
