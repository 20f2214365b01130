// Package outcome is THE table of decisions (table.go): every error a Check
// can end in, matched with errors.Is, and what it becomes on the wire (HTTP
// status, Kubernetes Status reason and message, gRPC code), in metrics and
// logs (the "reason" label), and for the verification cache (Verification:
// which errors are a verdict on the token, cached briefly, and which are
// trouble on the way to STS, ridden out with the identity verified earlier).
//
// It is a leaf of authz so that both authz/check (the responses) and
// authz/cache (its own policy) read the same rows: adding an error is one
// row here, and neither side can disagree with the other. The sentinel
// errors of the Check service itself (errors.go) live here too, because the
// table names them.
package outcome

import (
	"encoding/json"
	"errors"
	"slices"

	"google.golang.org/grpc/codes"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Verification is what an error tells the verification cache (authz/cache)
// about the token it was returned for.
type Verification uint8

const (
	// NotVerification: not an answer about the token (a bug, a cancelled
	// caller, and every error a verifier does not return). Never cached, and
	// never answered with an identity verified earlier.
	NotVerification Verification = iota
	// Rejected: a verdict on the token itself (malformed, or refused by STS).
	// Cached for the cache's NegativeTTL; a rejection by STS is never
	// treated as an outage, so a revoked credential is never served stale.
	Rejected
	// Transient: trouble on the way to STS (an outage, a timeout, an answer
	// that cannot be trusted, throttling by STS or by our own limit). Never
	// cached: that would turn a blip at STS into NegativeTTL of denials. An
	// identity STS verified earlier for the same unexpired token is served
	// instead, so an outage locks out only tokens never seen before.
	Transient
)

// Outcome is one row of the table: what a class of error becomes on the
// wire, in metrics and for the verification cache. Rows are shared and
// immutable; compare them by pointer.
type Outcome struct {
	// err is the sentinel matched with errors.Is; nil for the allowed rows.
	err error
	// httpCode is the status Envoy sends the client.
	httpCode int
	// reason is the Kubernetes Status reason in the body.
	reason metav1.StatusReason
	// label is the metric "reason" label and the log "reason" field; a
	// closed set, one per row.
	label string
	// message is what the client reads. It says what to fix without
	// echoing any detail (the detail is logged): no ARN, no STS error text,
	// no token.
	message string
	// grpcCode is the CheckResponse status code. Envoy denies on anything
	// but OK; the code only helps someone reading a gRPC trace.
	grpcCode codes.Code
	// verification is the row's meaning for the verification cache.
	verification Verification
}

// Err is the row's sentinel error (nil for the allowed rows).
func (o *Outcome) Err() error { return o.err }

// HTTPCode is the HTTP status the client gets.
func (o *Outcome) HTTPCode() int { return o.httpCode }

// Label is the metric "reason" label and the log "reason" field.
func (o *Outcome) Label() string { return o.label }

// GRPCCode is the CheckResponse's gRPC status code.
func (o *Outcome) GRPCCode() codes.Code { return o.grpcCode }

// Verification is what the row means to the verification cache.
func (o *Outcome) Verification() Verification { return o.verification }

// Of returns the row for err: the first whose sentinel errors.Is-matches,
// OK for nil, and Internal for anything not in the table (fail closed).
func Of(err error) *Outcome {
	if err == nil {
		return rowOK
	}
	for _, o := range rows {
		if errors.Is(err, o.err) {
			return o
		}
	}
	return rowInternal
}

// OK is the allowed decision.
func OK() *Outcome { return rowOK }

// Impersonated is an allowed nested impersonation (kubectl --as).
func Impersonated() *Outcome { return rowImpersonated }

// Passthrough is a non-AWS bearer token forwarded untouched.
func Passthrough() *Outcome { return rowPassthrough }

// Internal is what any error not in the table becomes.
func Internal() *Outcome { return rowInternal }

// Allowed returns the rows that answer OK, in table order.
func Allowed() []*Outcome { return slices.Clone(allowedRows) }

// Denials returns the rows that refuse, in table order (Internal last).
func Denials() []*Outcome { return slices.Clone(rows) }

// Labels returns every value the metric "reason" label can take, in table
// order, starting with "ok".
func Labels() []string {
	out := make([]string, 0, len(allowedRows)+len(rows))
	for _, o := range allowedRows {
		out = append(out, o.label)
	}
	for _, o := range rows {
		out = append(out, o.label)
	}
	return out
}

// StatusBody renders the Kubernetes Status object the API server itself
// would send for this row, so kubectl prints a familiar error.
func (o *Outcome) StatusBody() string {
	b, err := json.Marshal(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  o.message,
		Reason:   o.reason,
		Code:     int32(o.httpCode),
	})
	if err != nil {
		// metav1.Status always marshals; keep a valid body regardless.
		return `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","code":500}`
	}
	return string(b)
}
