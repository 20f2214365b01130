package token

import (
	"net/url"
	"time"
)

// Prefix starts every token; the rest is the unpadded base64url encoding of
// a presigned STS GetCallerIdentity URL.
const Prefix = "k8s-aws-v1."

// Validity is how long STS honours a presigned GetCallerIdentity URL after
// its X-Amz-Date, whatever X-Amz-Expires says.
const Validity = 15 * time.Minute

// Presigned is a token that passed every local check. Nothing in it has been
// confirmed by STS yet.
type Presigned struct {
	// URL is the parsed presigned URL, to be sent to STS as is.
	URL *url.URL
	// Host is the STS host the URL was signed for (also the signed Host header).
	Host string
	// Region is the signing region of the credential scope (us-east-1 for
	// the global host).
	Region string
	// RegionLabel is a bounded metric label: the region, or "global".
	RegionLabel string
	// AccessKeyID is the key id from X-Amz-Credential.
	AccessKeyID string
	// SignedAt is X-Amz-Date.
	SignedAt time.Time
	// Expiry is SignedAt + Validity.
	Expiry time.Time
}
