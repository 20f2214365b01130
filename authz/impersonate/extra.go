package impersonate

import (
	"strings"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
)

// Extra is one user extra: a key as the API server will see it (lower
// case, decoded) and one value.
type Extra struct {
	Key   string
	Value string
}

// The extra keys we emit, as the API server records them. The reference
// (aws-iam-authenticator's TokenReview) names them arn, canonicalArn,
// sessionName, accessKeyId and principalId; but a header name carries no
// case and the API server lower-cases the Impersonate-Extra- suffix before
// decoding it, so through impersonation they always arrive lower-cased:
// canonicalArn arrives as canonicalarn. We emit the lower-case form so that
// what we send is exactly what RBAC (resource "userextras/<key>") must name.
const (
	ExtraARN          = "arn"
	ExtraCanonicalARN = "canonicalarn"
	ExtraSessionName  = "sessionname"
	ExtraAccessKeyID  = "accesskeyid"
	ExtraPrincipalID  = "principalid"
)

var extraKeys = [...]string{ExtraARN, ExtraCanonicalARN, ExtraSessionName, ExtraAccessKeyID, ExtraPrincipalID}

// ExtraKeys returns every extra key the server may emit, in emission order.
// The RBAC ClusterRole that lets the proxy impersonate must grant
// userextras/<key> for each; tests compare this list with the manifests.
func ExtraKeys() []string {
	out := make([]string, len(extraKeys))
	copy(out, extraKeys[:])
	return out
}

// Extras returns the extras of an identity in ExtraKeys order, including
// empty values (Headers leaves those out).
func Extras(id identity.Identity) []Extra {
	return []Extra{
		{Key: ExtraARN, Value: id.ARN},
		{Key: ExtraCanonicalARN, Value: id.CanonicalARN},
		{Key: ExtraSessionName, Value: id.SessionName},
		{Key: ExtraAccessKeyID, Value: id.AccessKeyID},
		{Key: ExtraPrincipalID, Value: id.PrincipalID},
	}
}

// EscapeExtraKey encodes an extra key for use after Impersonate-Extra-, the
// way client-go's impersonating transport does: every byte that is not an
// RFC 7230 token character, and '%' itself (url.PathUnescape on the API
// server would reject a stray one), becomes %XX with upper-case hex. The key
// is lower-cased first because the API server lower-cases the suffix before
// unescaping: a key with upper-case letters could never round-trip. So
// "example.com/Project" becomes "example.com%2Fproject"; the API server
// lower-cases that to "example.com%2fproject" and url.PathUnescape decodes
// it to "example.com/project".
func EscapeExtraKey(key string) string {
	key = strings.ToLower(key)
	n := 0
	for i := 0; i < len(key); i++ {
		if shouldEscape(key[i]) {
			n++
		}
	}
	if n == 0 {
		return key
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(key) + 2*n)
	for i := 0; i < len(key); i++ {
		c := key[i]
		if shouldEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// shouldEscape reports whether a byte is outside the RFC 7230 token set
// (tchar) or is '%'.
func shouldEscape(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return false
	}
	switch c {
	case '!', '#', '$', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return false
	}
	return true
}
