package check

import (
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// requestHeaders is what Check needs from the request's headers.
type requestHeaders struct {
	// authorization is the Authorization value when there is exactly one.
	authorization string
	// authorizationCount counts Authorization entries.
	authorizationCount int
	// impersonation is the name of a client header starting with
	// "impersonate-" (any case), or "".
	impersonation string
}

// readHeaders reads the request headers from either representation Envoy
// may send. By default Envoy fills the headers map: keys lower-cased,
// repeated headers merged into one comma-joined value. With
// encode_raw_headers it fills header_map instead: one entry per header line,
// values as raw bytes. Both are read so the server is correct whichever way
// the filter is configured; for Authorization, header_map wins when it has
// any entry because it keeps repeated lines apart.
func readHeaders(req *authv3.AttributeContext_HttpRequest) requestHeaders {
	var rh requestHeaders
	for _, hv := range req.GetHeaderMap().GetHeaders() {
		key := hv.GetKey()
		switch {
		case strings.EqualFold(key, "authorization"):
			rh.authorizationCount++
			if raw := hv.GetRawValue(); len(raw) > 0 {
				rh.authorization = string(raw)
			} else {
				rh.authorization = hv.GetValue()
			}
		case rh.impersonation == "" && hasPrefixFold(key, impersonate.Prefix):
			rh.impersonation = key
		}
	}
	fromMap := rh.authorizationCount == 0
	for key, value := range req.GetHeaders() {
		switch {
		case strings.EqualFold(key, "authorization"):
			if fromMap {
				rh.authorizationCount++
				rh.authorization = value
			}
		case rh.impersonation == "" && hasPrefixFold(key, impersonate.Prefix):
			rh.impersonation = key
		}
	}
	return rh
}

// hasPrefixFold is strings.HasPrefix ignoring ASCII case. Envoy lower-cases
// header names, but the check must not depend on it: iMpErSoNaTe-uSeR is
// the same header to the API server.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// bearerToken extracts the token from the request's Authorization header.
// It is stricter than the API server's bearer authenticator, which ignores
// anything after a second space: here the value must be exactly
// "Bearer <token>" with one space, one value and no comma.
func bearerToken(rh requestHeaders) (string, error) {
	switch {
	case rh.authorizationCount == 0:
		return "", ErrNoToken
	case rh.authorizationCount > 1:
		return "", ErrMultipleAuthorization
	}
	v := rh.authorization
	// A comma means Envoy merged several Authorization lines (the
	// CVE-2021-32777 shape) or the client packed several credentials into
	// one: either way there is no single credential to check. Base64url
	// tokens never contain a comma.
	if strings.IndexByte(v, ',') >= 0 {
		return "", ErrMultipleAuthorization
	}
	scheme, tok, found := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if v == "" {
			return "", ErrNoToken
		}
		return "", ErrNotBearer
	}
	if !found || tok == "" {
		return "", ErrEmptyToken
	}
	// Two IndexByte scans (vectorised) instead of ContainsAny, whose
	// byte-set loop was the costliest line of a cache-hit Check.
	if strings.IndexByte(tok, ' ') >= 0 || strings.IndexByte(tok, '\t') >= 0 {
		return "", ErrMalformedAuthorization
	}
	if !strings.HasPrefix(tok, token.Prefix) {
		return "", ErrNotAWSToken
	}
	return tok, nil
}
