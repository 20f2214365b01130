package check

import (
	"errors"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
)

// retryAfter is the wait a throttling error asks for: STS's Retry-After,
// or the time until our own STS rate limiter has a token again.
func retryAfter(err error) time.Duration {
	var te *sts.ThrottledError
	if errors.As(err, &te) {
		return te.RetryAfter
	}
	return 0
}
