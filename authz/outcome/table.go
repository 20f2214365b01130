package outcome

import (
	"context"
	"net/http"

	"google.golang.org/grpc/codes"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sar"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// rowOK is the allowed decision.
var rowOK = &Outcome{httpCode: http.StatusOK, label: "ok", grpcCode: codes.OK}

// rowImpersonated is an allowed nested impersonation (kubectl --as),
// every requested attribute authorized by a SubjectAccessReview.
var rowImpersonated = &Outcome{httpCode: http.StatusOK, label: "impersonated", grpcCode: codes.OK}

// rowPassthrough is a non-AWS bearer token forwarded untouched
// (--passthrough-non-aws-tokens): the API server authenticates it.
var rowPassthrough = &Outcome{httpCode: http.StatusOK, label: "passthrough", grpcCode: codes.OK}

// allowedRows are the rows that answer OK.
var allowedRows = []*Outcome{rowOK, rowImpersonated, rowPassthrough}

// rowInternal is what any error not in the table becomes: fail closed.
var rowInternal = &Outcome{
	err: ErrInternal, httpCode: http.StatusInternalServerError, reason: metav1.StatusReasonInternalError,
	label: "internal", message: "Internal error: the request could not be authenticated", grpcCode: codes.Internal,
}

// rows is THE table mapping errors to responses. The first row whose
// sentinel errors.Is-matches wins, so specific errors come before generic
// ones (the STS sentinels before the context errors an STS timeout may
// also wrap).
var rows = []*Outcome{
	// 401: no usable credential. Kubernetes answers 401 for a rejected
	// bearer token, and client-go then re-runs the exec credential plugin.
	{err: ErrNoToken, httpCode: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized, label: "no_token",
		message: "Unauthorized: this endpoint needs an AWS IAM bearer token (as made by aws eks get-token)", grpcCode: codes.Unauthenticated},
	{err: ErrMultipleAuthorization, httpCode: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized, label: "multiple_authorization",
		message: "Unauthorized: the request carries more than one Authorization value", grpcCode: codes.Unauthenticated},
	{err: ErrNotBearer, httpCode: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized, label: "not_bearer",
		message: "Unauthorized: the Authorization scheme must be Bearer", grpcCode: codes.Unauthenticated},
	{err: ErrEmptyToken, httpCode: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized, label: "empty_token",
		message: "Unauthorized: the bearer token is empty", grpcCode: codes.Unauthenticated},
	{err: ErrMalformedAuthorization, httpCode: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized, label: "malformed_authorization",
		message: "Unauthorized: the Authorization header is malformed", grpcCode: codes.Unauthenticated},
	{err: ErrNotAWSToken, httpCode: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized, label: "not_aws_token",
		message: "Unauthorized: the bearer token is not a k8s-aws-v1 token (as made by aws eks get-token)", grpcCode: codes.Unauthenticated},
	{err: token.ErrMalformed, httpCode: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized, label: "malformed_token",
		message: "Unauthorized: the token is malformed or expired; get a new one", grpcCode: codes.Unauthenticated, verification: Rejected},
	{err: sts.ErrUnauthenticated, httpCode: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized, label: "sts_rejected",
		message: "Unauthorized: AWS STS did not accept the token (expired or revoked credentials, or a token for another cluster)", grpcCode: codes.Unauthenticated, verification: Rejected},

	// 400: impersonation headers the API server would also refuse, or the
	// proxy cannot pass on unambiguously (only with --allow-impersonation).
	{err: impersonate.ErrWithoutUser, httpCode: http.StatusBadRequest, reason: metav1.StatusReasonBadRequest, label: "impersonation_without_user",
		message: "Bad request: Impersonate-Group, Impersonate-Uid and Impersonate-Extra-* need Impersonate-User", grpcCode: codes.InvalidArgument},
	{err: impersonate.ErrInvalidRequest, httpCode: http.StatusBadRequest, reason: metav1.StatusReasonBadRequest, label: "impersonation_invalid",
		message: "Bad request: the Impersonate-* headers cannot be passed on unambiguously (a repeated Impersonate-User or Impersonate-Uid, an empty value, a comma or control character in a name, an unknown Impersonate-* header, or more than 32 attributes)", grpcCode: codes.InvalidArgument},

	// 403: the caller is who they say, but may not come in this way.
	{err: ErrImpersonationHeader, httpCode: http.StatusForbidden, reason: metav1.StatusReasonForbidden, label: "impersonation_header",
		message: "Forbidden: Impersonate-* headers are not accepted through this proxy (kubectl --as is not supported here)", grpcCode: codes.PermissionDenied},
	{err: impersonate.ErrReservedExtra, httpCode: http.StatusForbidden, reason: metav1.StatusReasonForbidden, label: "reserved_extra",
		message: "Forbidden: Impersonate-Extra keys under " + impersonate.ReservedExtraPrefix + " are set only by this proxy", grpcCode: codes.PermissionDenied},
	// The body of this row is built per request (authz/check's ImpersonationDeniedError):
	// the API server's own wording for the refused attribute.
	{err: ErrImpersonationDenied, httpCode: http.StatusForbidden, reason: metav1.StatusReasonForbidden, label: "impersonation_denied",
		message: "Forbidden: the impersonation is not allowed", grpcCode: codes.PermissionDenied},
	{err: kubeuser.ErrUnmapped, httpCode: http.StatusForbidden, reason: metav1.StatusReasonForbidden, label: "unmapped",
		message: "Forbidden: the AWS identity is not mapped to a Kubernetes user on this cluster", grpcCode: codes.PermissionDenied},
	{err: kubeuser.ErrForbidden, httpCode: http.StatusForbidden, reason: metav1.StatusReasonForbidden, label: "mapping_refused",
		message: "Forbidden: the mapping for this AWS identity was refused", grpcCode: codes.PermissionDenied},
	{err: impersonate.ErrInvalidValue, httpCode: http.StatusForbidden, reason: metav1.StatusReasonForbidden, label: "invalid_mapping",
		message: "Forbidden: the mapping for this AWS identity produced a user that cannot be sent to the API server", grpcCode: codes.PermissionDenied},
	{err: ErrTooManyGroups, httpCode: http.StatusForbidden, reason: metav1.StatusReasonForbidden, label: "too_many_groups",
		message: "Forbidden: the AWS identity maps to more groups than this proxy can pass on", grpcCode: codes.PermissionDenied},
	{err: identity.ErrInvalidARN, httpCode: http.StatusForbidden, reason: metav1.StatusReasonForbidden, label: "unsupported_identity",
		message: "Forbidden: this kind of AWS identity is not supported", grpcCode: codes.PermissionDenied},

	// 429: STS (or our own limit protecting the account's STS quota) says slow down.
	{err: sts.ErrThrottled, httpCode: http.StatusTooManyRequests, reason: metav1.StatusReasonTooManyRequests, label: "throttled",
		message: "Too many requests: token verification is being rate limited; retry later", grpcCode: codes.ResourceExhausted, verification: Transient},

	// 503: nothing wrong with the request; retry.
	{err: sts.ErrUnavailable, httpCode: http.StatusServiceUnavailable, reason: metav1.StatusReasonServiceUnavailable, label: "sts_unavailable",
		message: "Service unavailable: AWS STS could not be reached to verify the token; retry later", grpcCode: codes.Unavailable, verification: Transient},
	{err: sar.ErrUnavailable, httpCode: http.StatusServiceUnavailable, reason: metav1.StatusReasonServiceUnavailable, label: "sar_unavailable",
		message: "Service unavailable: the API server could not be asked whether the impersonation is allowed; retry later", grpcCode: codes.Unavailable},
	{err: kubeuser.ErrUnavailable, httpCode: http.StatusServiceUnavailable, reason: metav1.StatusReasonServiceUnavailable, label: "mapping_unavailable",
		message: "Service unavailable: the identity mapping could not be evaluated right now; retry later", grpcCode: codes.Unavailable},
	{err: ErrNotReady, httpCode: http.StatusServiceUnavailable, reason: metav1.StatusReasonServiceUnavailable, label: "not_ready",
		message: "Service unavailable: the authenticating proxy is starting; retry later", grpcCode: codes.Unavailable},
	{err: context.DeadlineExceeded, httpCode: http.StatusServiceUnavailable, reason: metav1.StatusReasonServiceUnavailable, label: "timeout",
		message: "Service unavailable: token verification timed out; retry later", grpcCode: codes.Unavailable, verification: Transient},
	{err: context.Canceled, httpCode: http.StatusServiceUnavailable, reason: metav1.StatusReasonServiceUnavailable, label: "canceled",
		message: "Service unavailable: the request was cancelled", grpcCode: codes.Unavailable},

	// 500: our configuration, not the caller's fault; still never OK.
	{err: ErrUnknownCluster, httpCode: http.StatusInternalServerError, reason: metav1.StatusReasonInternalError, label: "unknown_cluster",
		message: "Internal error: this route is not configured correctly on the authenticating proxy", grpcCode: codes.Internal},
	rowInternal,
}
