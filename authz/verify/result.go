// Package verify turns a k8s-aws-v1 bearer token into a verified AWS
// identity: strict local checks first (package token), then one STS call
// (package sts).
package verify

import (
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
)

// Result is a verified token.
type Result struct {
	Identity identity.Identity
	// Expiry is when STS stops honouring the token: X-Amz-Date + 15 minutes.
	// Caches must not keep the result past it.
	Expiry time.Time
	// STSRegion is the region label of the STS host the token was signed
	// for ("global" for sts.amazonaws.com); a bounded metric label.
	STSRegion string
	// Fingerprint is token.Fingerprint of the verified token. It is
	// computed once, when the token is verified, so that a cache serves it
	// with the result: hashing a 1.5 KB token again for the log line was a
	// fifth of a cache-hit Check (BenchmarkCheckCacheHit profile). Empty
	// when a Verifier does not set it; consumers then compute it.
	Fingerprint string
}
