package check

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

// TestTransientFailureIsNeverAVerdict: the errors for which a stale identity
// may be served and those cached as rejections are disjoint, and a
// rejection by STS is never treated as an outage.
func TestTransientFailureIsNeverAVerdict(t *testing.T) {
	tests := map[string]struct {
		err           error
		wantTransient bool
		wantVerdict   bool
	}{
		"sts unreachable":  {err: &sts.Error{Class: sts.ErrUnavailable, Reason: "network"}, wantTransient: true},
		"sts garbage":      {err: fmt.Errorf("%w: STS answered an inconsistent identity", sts.ErrUnavailable), wantTransient: true},
		"sts throttling":   {err: &sts.ThrottledError{RetryAfter: time.Second, Code: "Throttling"}, wantTransient: true},
		"our rate limit":   {err: &sts.ThrottledError{RetryAfter: time.Second, Local: true}, wantTransient: true},
		"flight deadline":  {err: fmt.Errorf("cache: %w", context.DeadlineExceeded), wantTransient: true},
		"sts rejected":     {err: &sts.Error{Class: sts.ErrUnauthenticated, Reason: "rejected", Code: "SignatureDoesNotMatch"}, wantVerdict: true},
		"malformed token":  {err: fmt.Errorf("%w: expired", token.ErrMalformed), wantVerdict: true},
		"client went away": {err: context.Canceled},
		"unmapped":         {err: kubeuser.ErrUnmapped},
		"unknown error":    {err: errors.New("boom")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := IsTransientFailure(tc.err); got != tc.wantTransient {
				t.Errorf("IsTransientFailure = %v, want %v", got, tc.wantTransient)
			}
			if got := IsDefinitiveRejection(tc.err); got != tc.wantVerdict {
				t.Errorf("IsDefinitiveRejection = %v, want %v", got, tc.wantVerdict)
			}
		})
	}
}
