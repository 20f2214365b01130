package outcome

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// TestTable: every row is reachable by its sentinel (also when wrapped), has
// a unique label, a message and a refusing status. authz/check's
// TestEveryRowHasAWireShape holds each row to its response on the wire.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range Denials() {
		if seen[o.label] {
			t.Errorf("duplicate label %q", o.label)
		}
		seen[o.label] = true
		if o.message == "" || o.httpCode < 400 {
			t.Errorf("row %q: message %q, code %d", o.label, o.message, o.httpCode)
		}
		if got := Of(fmt.Errorf("outer: %w", o.err)); got != o {
			t.Errorf("Of(wrapped %v) = %q, want %q", o.err, got.label, o.label)
		}
		if o.verification != NotVerification && o.httpCode != 401 && o.httpCode != 429 && o.httpCode != 503 {
			t.Errorf("row %q: a verification class on a %d; only a 401 (a verdict on the token) or a 429/503 (retry later) can be one", o.label, o.httpCode)
		}
	}
	if got := Of(nil); got != OK() {
		t.Errorf("Of(nil) = %q, want ok", got.label)
	}
	if got := Of(errors.New("never seen")); got != Internal() {
		t.Errorf("Of(unknown) = %q, want internal", got.label)
	}
	labels := Labels()
	if labels[0] != "ok" || labels[1] != "impersonated" || labels[2] != "passthrough" || len(labels) != len(rows)+3 {
		t.Errorf("Labels = %v", labels)
	}
	// The accessors hand out copies: a caller cannot reorder or drop rows.
	Denials()[0] = Internal()
	if rows[0] == rowInternal {
		t.Error("Denials() returned the table itself")
	}
}

// TestVerification: the errors for which a stale identity may be served and
// those cached as rejections are disjoint, and a rejection by STS is never
// treated as an outage. These are the verification cache's whole policy
// (authz/cache reads it from the table).
func TestVerification(t *testing.T) {
	tests := map[string]struct {
		err  error
		want Verification
	}{
		"sts unreachable":       {err: &sts.Error{Class: sts.ErrUnavailable, Reason: "network"}, want: Transient},
		"sts garbage":           {err: fmt.Errorf("%w: STS answered an inconsistent identity", sts.ErrUnavailable), want: Transient},
		"sts throttling":        {err: &sts.ThrottledError{RetryAfter: time.Second, Code: "Throttling"}, want: Transient},
		"our rate limit":        {err: &sts.ThrottledError{RetryAfter: time.Second, Local: true}, want: Transient},
		"flight deadline":       {err: fmt.Errorf("cache: %w", context.DeadlineExceeded), want: Transient},
		"sts timeout":           {err: fmt.Errorf("%w: %w", sts.ErrUnavailable, context.DeadlineExceeded), want: Transient},
		"sts rejected":          {err: &sts.Error{Class: sts.ErrUnauthenticated, Reason: "rejected", Code: "SignatureDoesNotMatch"}, want: Rejected},
		"sts rejected, late":    {err: fmt.Errorf("%w: %w", &sts.Error{Class: sts.ErrUnauthenticated, Reason: "rejected"}, context.DeadlineExceeded), want: Rejected},
		"malformed token":       {err: fmt.Errorf("%w: expired", token.ErrMalformed), want: Rejected},
		"client went away":      {err: context.Canceled},
		"unmapped":              {err: kubeuser.ErrUnmapped},
		"mapping unavailable":   {err: kubeuser.ErrUnavailable},
		"not ready":             {err: ErrNotReady},
		"unknown error":         {err: errors.New("boom")},
		"no error is no answer": {err: nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Of(tc.err).Verification(); got != tc.want {
				t.Errorf("Of(%v).Verification() = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}
