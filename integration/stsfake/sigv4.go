package stsfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	amzDateLayout  = "20060102T150405Z"
	// ClusterIDHeader is the header aws-iam-authenticator and `aws eks
	// get-token` sign into every token.
	ClusterIDHeader = "x-k8s-aws-id"
	// emptyPayloadHash is SHA-256(""): what real tokens use as the payload
	// hash of a presigned GET (not UNSIGNED-PAYLOAD, which is S3's).
	emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	// requestWindow is how far X-Amz-Date may be from STS's clock, in
	// either direction. STS ignores X-Amz-Expires for GetCallerIdentity.
	requestWindow = 15 * time.Minute
)

// The query parameters of a SigV4 query-string signature. STS reads them
// with exactly this case; a lower-case duplicate is just another parameter
// (which is why aws-iam-authenticator reading x-amz-credential case-
// insensitively was CVE-2022-2385).
const (
	paramAlgorithm     = "X-Amz-Algorithm"
	paramCredential    = "X-Amz-Credential"
	paramDate          = "X-Amz-Date"
	paramSignedHeaders = "X-Amz-SignedHeaders"
	paramSignature     = "X-Amz-Signature"
	paramSecurityToken = "X-Amz-Security-Token"
)

// Real STS messages, so clients see what they would see from AWS.
const (
	msgInvalidToken = "The security token included in the request is invalid."
	msgExpiredToken = "The security token included in the request is expired"
	msgSignature    = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// lookupFunc finds the principal for an access key id.
type lookupFunc func(accessKeyID string) (Principal, bool)

// verifyPresigned checks a presigned SigV4 query signature the way STS does
// and returns the principal that signed it.
func verifyPresigned(r *http.Request, lookup lookupFunc, now time.Time) (Principal, *apiError) {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return Principal{}, errorf(http.StatusBadRequest, "MalformedQueryString", "The query string is malformed.")
	}
	auth := map[string]string{}
	present := 0
	for _, name := range []string{paramAlgorithm, paramCredential, paramDate, paramSignedHeaders, paramSignature} {
		values, ok := query[name]
		if !ok {
			continue
		}
		present++
		if len(values) != 1 {
			return Principal{}, errorf(http.StatusBadRequest, "MalformedQueryString", "Query parameter %s appears more than once.", name)
		}
		auth[name] = values[0]
	}
	switch {
	case present == 0:
		return Principal{}, errorf(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
	case present < 5:
		return Principal{}, errorf(http.StatusBadRequest, "IncompleteSignature",
			"AWS query-string parameters must include '%s', '%s', '%s', '%s' and '%s'. Re-examine the query-string parameters.",
			paramAlgorithm, paramCredential, paramSignature, paramSignedHeaders, paramDate)
	}
	if auth[paramAlgorithm] != sigV4Algorithm {
		return Principal{}, errorf(http.StatusBadRequest, "IncompleteSignature", "Unsupported AWS 'algorithm': '%s'.", auth[paramAlgorithm])
	}
	scope := strings.Split(auth[paramCredential], "/")
	if len(scope) != 5 {
		return Principal{}, errorf(http.StatusBadRequest, "IncompleteSignature", "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%d'.", len(scope))
	}
	accessKeyID, scopeDate, region, service, terminator := scope[0], scope[1], scope[2], scope[3], scope[4]
	signedAt, err := time.Parse(amzDateLayout, auth[paramDate])
	if err != nil {
		return Principal{}, errorf(http.StatusBadRequest, "IncompleteSignature", "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\".")
	}
	switch {
	case scopeDate != auth[paramDate][:8]:
		return Principal{}, errorf(http.StatusForbidden, "SignatureDoesNotMatch", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", scopeDate, auth[paramDate][:8], auth[paramDate])
	case service != "sts":
		return Principal{}, errorf(http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to correct service: 'sts'.")
	case terminator != "aws4_request":
		return Principal{}, errorf(http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'.", terminator)
	}
	if want := regionOfHost(r.Host); want != "" && region != want {
		return Principal{}, errorf(http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to a valid region.")
	}

	principal, ok := lookup(accessKeyID)
	if !ok {
		return Principal{}, errorf(http.StatusForbidden, "InvalidClientTokenId", msgInvalidToken)
	}
	// A temporary key is only valid with its own session token; a long-term
	// key must not carry one. STS answers both with InvalidClientTokenId.
	tokens, hasToken := query[paramSecurityToken]
	switch {
	case principal.SessionToken == "" && hasToken,
		principal.SessionToken != "" && (!hasToken || len(tokens) != 1 ||
			subtle.ConstantTimeCompare([]byte(tokens[0]), []byte(principal.SessionToken)) != 1):
		return Principal{}, errorf(http.StatusForbidden, "InvalidClientTokenId", msgInvalidToken)
	}

	switch {
	case now.After(signedAt.Add(requestWindow)):
		// What STS answered aws-iam-authenticator users whose token had
		// outlived its 15 minutes (aws-iam-authenticator #330).
		return Principal{}, errorf(http.StatusForbidden, "ExpiredToken", msgExpiredToken)
	case signedAt.After(now.Add(requestWindow)):
		return Principal{}, errorf(http.StatusForbidden, "SignatureDoesNotMatch",
			"Signature not yet current: %s is still later than %s (%s + 15 min.)",
			auth[paramDate], now.Add(requestWindow).UTC().Format(amzDateLayout), now.UTC().Format(amzDateLayout))
	}

	signedHeaders := strings.Split(auth[paramSignedHeaders], ";")
	if !contains(signedHeaders, "host") {
		return Principal{}, errorf(http.StatusForbidden, "SignatureDoesNotMatch", "'Host' must be a 'SignedHeader' in the AWS Authorization.")
	}
	// Stricter than STS (see the package comment): the cluster id header must
	// be signed and sent, or the token is not bound to a cluster.
	if !contains(signedHeaders, ClusterIDHeader) {
		return Principal{}, errorf(http.StatusForbidden, "SignatureDoesNotMatch", "stsfake: %s is not among the signed headers.", ClusterIDHeader)
	}
	if len(r.Header.Values(ClusterIDHeader)) == 0 {
		return Principal{}, errorf(http.StatusForbidden, "SignatureDoesNotMatch", "stsfake: the signed header %s was not sent.", ClusterIDHeader)
	}

	canonical := canonicalRequest(r, query, signedHeaders)
	stringToSign := strings.Join([]string{
		sigV4Algorithm,
		auth[paramDate],
		strings.Join(scope[1:], "/"),
		hexSHA256(canonical),
	}, "\n")
	key := signingKey(principal.SecretAccessKey, scopeDate, region, service)
	want := hex.EncodeToString(hmacSHA256(key, stringToSign))
	if subtle.ConstantTimeCompare([]byte(want), []byte(auth[paramSignature])) != 1 {
		return Principal{}, errorf(http.StatusForbidden, "SignatureDoesNotMatch", msgSignature)
	}
	if !principal.Expiration.IsZero() && now.After(principal.Expiration) {
		return Principal{}, errorf(http.StatusForbidden, "ExpiredToken", msgExpiredToken)
	}
	return principal, nil
}

// canonicalRequest builds the SigV4 canonical request from what was
// received: method, canonical URI, every query parameter except the
// signature, the signed headers' actual values, and the payload hash.
func canonicalRequest(r *http.Request, query url.Values, signedHeaders []string) string {
	type pair struct{ k, v string }
	var pairs []pair
	for k, values := range query {
		if k == paramSignature {
			continue
		}
		for _, v := range values {
			pairs = append(pairs, pair{uriEncode(k, true), uriEncode(v, true)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	encodedQuery := make([]string, len(pairs))
	for i, p := range pairs {
		encodedQuery[i] = p.k + "=" + p.v
	}

	var headers strings.Builder
	for _, name := range signedHeaders {
		var value string
		if name == "host" {
			value = r.Host
		} else {
			raw := r.Header.Values(name)
			values := make([]string, len(raw))
			for i, v := range raw {
				values[i] = strings.Join(strings.Fields(v), " ")
			}
			value = strings.Join(values, ",")
		}
		headers.WriteString(name + ":" + value + "\n")
	}

	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	return strings.Join([]string{
		r.Method,
		// Every service but S3 encodes the already-escaped path once more.
		uriEncode(path, false),
		strings.Join(encodedQuery, "&"),
		headers.String(),
		strings.Join(signedHeaders, ";"),
		emptyPayloadHash,
	}, "\n")
}

// uriEncode is SigV4's RFC 3986 encoding: unreserved characters stay, every
// other byte becomes %XX (upper case); '/' stays in paths.
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// regionOfHost is the signing region STS expects for a host: us-east-1 for
// the global endpoint, the second label of sts.<region>.<domain> or
// sts-fips.<region>.<domain>, and "" (no check) for anything else, such as
// 127.0.0.1 when a client talks to the stand-in directly.
func regionOfHost(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "sts.amazonaws.com" {
		return "us-east-1"
	}
	labels := strings.Split(host, ".")
	if len(labels) >= 4 && (labels[0] == "sts" || labels[0] == "sts-fips") {
		if labels[1] == "aws-global" {
			return "us-east-1"
		}
		return labels[1]
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
