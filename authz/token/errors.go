package token

import "errors"

// ErrMalformed is wrapped by every local rejection of a token: nothing was
// sent to STS. The Check service turns it into a 401.
var ErrMalformed = errors.New("malformed token")

// FormatError says which verification rule rejected a token. Rule is a short,
// stable, low-cardinality name used as a metric label and log field; Detail is
// a human explanation that never contains the token or the presigned URL.
type FormatError struct {
	Rule   string
	Detail string
}

func (e *FormatError) Error() string { return "malformed token: " + e.Rule + ": " + e.Detail }

// Unwrap makes errors.Is(err, ErrMalformed) true for every FormatError.
func (e *FormatError) Unwrap() error { return ErrMalformed }
