package check

import "time"

// retryAfter extracts the wait an STS throttling error asks for.
// Placeholder until authz/sts's ThrottledError is merged.
func retryAfter(err error) time.Duration { return 0 }
