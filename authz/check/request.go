package check

import (
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
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
	// impersonationLines are every client Impersonate-* line (from
	// header_map, one per line; else from the merged headers map), and
	// impersonationMerged says they came from the merged map, where
	// repeated lines are comma-joined. Only --allow-impersonation reads them.
	impersonationLines  []impersonate.Header
	impersonationMerged bool
	// impersonationConflict: both representations carried Impersonate-*
	// lines (Envoy fills only one), so what goes upstream is unclear.
	impersonationConflict bool
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
		case hasPrefixFold(key, impersonate.Prefix):
			if rh.impersonation == "" {
				rh.impersonation = key
			}
			v := hv.GetValue()
			if raw := hv.GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			rh.impersonationLines = append(rh.impersonationLines, impersonate.Header{Name: key, Value: v})
		}
	}
	fromRaw := len(rh.impersonationLines) > 0
	fromMap := rh.authorizationCount == 0
	for key, value := range req.GetHeaders() {
		switch {
		case strings.EqualFold(key, "authorization"):
			if fromMap {
				rh.authorizationCount++
				rh.authorization = value
			}
		case hasPrefixFold(key, impersonate.Prefix):
			if rh.impersonation == "" {
				rh.impersonation = key
			}
			if fromRaw {
				rh.impersonationConflict = true
				continue
			}
			rh.impersonationMerged = true
			rh.impersonationLines = append(rh.impersonationLines, impersonate.Header{Name: key, Value: value})
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
	tok, err := bearerValue(rh)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(tok, token.Prefix) {
		return "", outcome.ErrNotAWSToken
	}
	return tok, nil
}

// passthroughToken returns the client's bearer token when it may be
// forwarded untouched (--passthrough-non-aws-tokens): exactly one
// well-formed "Bearer <token>" whose token is not a k8s-aws-v1 token in any
// letter case (a K8S-AWS-V1. token is a broken AWS token, not someone
// else's credential, and stays a 401).
func passthroughToken(rh requestHeaders) (string, bool) {
	tok, err := bearerValue(rh)
	if err != nil || hasPrefixFold(tok, token.Prefix) {
		return "", false
	}
	return tok, true
}

// bearerValue is the token of the single, well-formed Bearer
// Authorization value, whatever its kind.
func bearerValue(rh requestHeaders) (string, error) {
	switch {
	case rh.authorizationCount == 0:
		return "", outcome.ErrNoToken
	case rh.authorizationCount > 1:
		return "", outcome.ErrMultipleAuthorization
	}
	v := rh.authorization
	// A comma means Envoy merged several Authorization lines (the
	// CVE-2021-32777 shape) or the client packed several credentials into
	// one: either way there is no single credential to check. Base64url
	// tokens never contain a comma.
	if strings.IndexByte(v, ',') >= 0 {
		return "", outcome.ErrMultipleAuthorization
	}
	scheme, tok, found := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if v == "" {
			return "", outcome.ErrNoToken
		}
		return "", outcome.ErrNotBearer
	}
	if !found || tok == "" {
		return "", outcome.ErrEmptyToken
	}
	// Two IndexByte scans (vectorised) instead of ContainsAny, whose
	// byte-set loop was the costliest line of a cache-hit Check.
	if strings.IndexByte(tok, ' ') >= 0 || strings.IndexByte(tok, '\t') >= 0 {
		return "", outcome.ErrMalformedAuthorization
	}
	return tok, nil
}
