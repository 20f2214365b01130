package token

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Parser validates tokens locally against the rules in rules.go. It is
// immutable after NewParser and safe for concurrent use.
type Parser struct {
	partition     string
	hosts         hostSet
	maxTokenBytes int
	maxFutureSkew time.Duration
	now           func() time.Time
}

// NewParser validates o, fills in defaults and precomputes the STS host
// allow-list.
func NewParser(o Options) (*Parser, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("token parser options: %w", err)
	}
	o = o.withDefaults()
	hosts, err := newHostSet(o.Partition, o.Regions)
	if err != nil {
		return nil, fmt.Errorf("token parser: STS hosts: %w", err)
	}
	return &Parser{
		partition:     o.Partition,
		hosts:         hosts,
		maxTokenBytes: o.MaxTokenBytes,
		maxFutureSkew: o.MaxFutureSkew,
		now:           o.Now,
	}, nil
}

// Hosts returns the accepted STS host names, for diagnostics and tests.
func (p *Parser) Hosts() []string {
	out := make([]string, 0, len(p.hosts))
	for h := range p.hosts {
		out = append(out, h)
	}
	return out
}

// dateLayout is SigV4's basic ISO 8601 timestamp (X-Amz-Date).
const dateLayout = "20060102T150405Z"

// Parse checks tok without any network access and returns what the STS call
// needs. Every rejection is a *FormatError wrapping ErrMalformed. The checks
// of aws-iam-authenticator come first, in its order, so that its test
// vectors fail on the same rule; the stricter checks follow.
func (p *Parser) Parse(tok string) (*Presigned, error) {
	// V1: bound the work before looking at the content at all.
	if len(tok) > p.maxTokenBytes {
		return nil, fail(RuleTooLarge, "token is %d bytes, the limit is %d", len(tok), p.maxTokenBytes)
	}
	// V2: the prefix is case-sensitive; "Bearer " must already be stripped.
	if !strings.HasPrefix(tok, Prefix) {
		return nil, fail(RulePrefix, "token does not start with %q", Prefix)
	}
	raw, err := decodePayload(tok[len(Prefix):])
	if err != nil {
		return nil, err
	}
	// V4.
	u, perr := url.Parse(raw)
	if perr != nil {
		// url.Error quotes the input: report only the cause.
		var cause error = perr
		if ue, ok := perr.(*url.Error); ok {
			cause = ue.Err
		}
		return nil, fail(RuleURL, "presigned URL does not parse: %s", clip(cause.Error()))
	}
	// V5: url.Parse lower-cases the scheme, so look at the raw text. Every
	// producer writes "https://"; "HTTPS://" is accepted by the reference
	// but has no legitimate source, so it is refused. TLS is what keeps the
	// presigned URL (a bearer credential) from leaking on its way to STS.
	if !strings.HasPrefix(raw, "https://") {
		return nil, fail(RuleScheme, "presigned URL scheme must be https")
	}
	// Strict: the reference keeps userinfo and fragments and sends them on
	// (it re-serialises the URL). Neither has a place in a presigned STS URL,
	// and userinfo is the classic way to make a URL look like another host.
	if u.User != nil {
		return nil, fail(RuleUserinfo, "presigned URL carries userinfo")
	}
	// u.Fragment is empty for a bare trailing '#', so look at the raw text;
	// an unescaped '#' can only start a fragment.
	if strings.IndexByte(raw, '#') >= 0 {
		return nil, fail(RuleFragment, "presigned URL carries a fragment")
	}
	// V6: exact lookup in the precomputed allow-list. Ports (even :443),
	// trailing dots, upper case and IP literals are never in it.
	info, ok := p.hosts[u.Host]
	if !ok {
		return nil, fail(RuleHost, "%s", p.hostProblem(u.Host))
	}
	// V8: exactly "/". RawPath is set when the escaped form differs, which
	// catches /%2F and friends.
	if u.Path != "/" || u.RawPath != "" {
		return nil, fail(RulePath, "presigned URL path must be /")
	}
	var q query
	if err := parseQuery(u.RawQuery, &q); err != nil {
		return nil, err
	}
	// V13: value compared case-sensitively; any other action (AssumeRole,
	// ...) must never be sent to STS on a client's behalf.
	if q.value(pAction) != "GetCallerIdentity" {
		return nil, fail(RuleAction, "Action must be GetCallerIdentity")
	}
	// V14: without x-k8s-aws-id signed, STS would accept the URL whatever
	// cluster id we send: the token would replay against any cluster.
	signedHeaders := q.raw[pSignedHeaders]
	if !containsHeaderFold(signedHeaders, "x-k8s-aws-id") {
		return nil, fail(RuleClusterUnsigned, "x-k8s-aws-id is not among the signed headers")
	}
	// V15: a decimal 0..900. 0 is what aws-iam-authenticator v0.4.0 to
	// v0.6.2x emitted (a seconds/nanoseconds mix-up); STS ignores the value
	// for GetCallerIdentity and honours 15 minutes regardless.
	if !validExpires(q.raw[pExpires]) || !q.seen[pExpires] {
		return nil, fail(RuleExpires, "X-Amz-Expires must be an integer from 0 to 900")
	}
	// V16, V18.
	dateRaw := q.raw[pDate]
	signedAt, ok := parseDate(dateRaw)
	if !ok {
		return nil, fail(RuleDate, "X-Amz-Date must be present and formatted as %s", dateLayout)
	}
	now := p.now()
	// V18: exactly 15:00 old is still accepted, like STS and the reference.
	if now.After(signedAt.Add(Validity)) {
		return nil, fail(RuleExpired, "token was signed more than %s ago", Validity)
	}

	// From here on: stricter than aws-iam-authenticator (reference §2.3
	// [REC]). Each of these is true of every token aws eks get-token,
	// aws-iam-authenticator and the SDKs produce.

	// A date far in the future would make the token outlive 15 minutes by
	// as much (caches key their TTL on it) and points at a broken clock.
	if signedAt.After(now.Add(p.maxFutureSkew)) {
		return nil, fail(RuleDateFuture, "X-Amz-Date is more than %s in the future", p.maxFutureSkew)
	}
	if q.value(pVersion) != "2011-06-15" {
		return nil, fail(RuleVersion, "Version must be 2011-06-15")
	}
	if q.value(pAlgorithm) != "AWS4-HMAC-SHA256" {
		return nil, fail(RuleAlgorithm, "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
	}
	if err := checkSignedHeaders(signedHeaders); err != nil {
		return nil, err
	}
	// The access key id is trusted later (mapping templates), although STS
	// never echoes it: it must be the key that signed, which holds because
	// the scope is in the signed canonical query and duplicates are refused.
	scope, err := parseCredential(q.raw[pCredential])
	if err != nil {
		return nil, err
	}
	if scope.date != dateRaw[:8] {
		return nil, fail(RuleCredentialDate, "credential scope date differs from X-Amz-Date")
	}
	if scope.region != info.region {
		return nil, fail(RuleCredentialRegion, "credential scope region %q does not match the STS host's region %q", clip(scope.region), info.region)
	}
	if !validSignature(q.raw[pSignature]) {
		return nil, fail(RuleSignature, "X-Amz-Signature must be 64 lower-case hex digits")
	}
	if q.seen[pSecurityToken] && q.raw[pSecurityToken] == "" {
		return nil, fail(RuleSecurityToken, "X-Amz-Security-Token is empty")
	}
	return &Presigned{
		URL:         u,
		Host:        u.Host,
		Region:      info.region,
		RegionLabel: info.label,
		// A copy: the raw parts are substrings of the decoded presigned URL
		// (0.5-1.5 KB), and the key id outlives it in every cached identity.
		// Sharing the memory kept the whole URL alive per cache entry, which
		// made a cached identity ~2.5x its size (docs/benchmarks.md, case 5).
		AccessKeyID: strings.Clone(scope.accessKeyID),
		SignedAt:    signedAt,
		Expiry:      signedAt.Add(Validity),
	}, nil
}

// fail builds the FormatError of rule.
func fail(rule, format string, args ...any) *FormatError {
	return &FormatError{Rule: rule, Detail: fmt.Sprintf(format, args...)}
}

// clip shortens attacker-chosen text for error details.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// decodePayload decodes the unpadded base64url payload (V3). Stricter than
// the reference: Go's decoder silently skips CR and LF, so a token with
// line breaks would be accepted although no producer emits one; and the
// Strict decoder refuses non-zero trailing bits, so every URL has exactly one
// encoding (no two distinct tokens decode to the same URL).
//
// The payload is decoded in stack-sized chunks straight into the result
// string: one allocation of the decoded size instead of a []byte plus its
// string copy.
func decodePayload(s string) (string, error) {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return "", fail(RuleBase64, "line break at payload byte %d", i)
	}
	if i := strings.IndexByte(s, '\r'); i >= 0 {
		return "", fail(RuleBase64, "line break at payload byte %d", i)
	}
	enc := base64.RawURLEncoding.Strict()
	var out strings.Builder
	out.Grow(enc.DecodedLen(len(s)))
	// Whole 4-byte quanta per chunk, so that only the last chunk can end in
	// a partial quantum.
	const chunk = 1024
	var buf [chunk / 4 * 3]byte
	for len(s) > 0 {
		n := min(len(s), chunk)
		m, err := enc.Decode(buf[:], []byte(s[:n]))
		if err != nil {
			// base64.CorruptInputError holds only an offset.
			return "", fail(RuleBase64, "payload is not unpadded base64url: %v", err)
		}
		out.Write(buf[:m])
		s = s[n:]
	}
	return out.String(), nil
}

// hostProblem explains why host is not accepted, without echoing more than
// a clipped, quoted host.
func (p *Parser) hostProblem(host string) string {
	h := clip(host)
	switch {
	case host == "":
		return "presigned URL has no host"
	case strings.HasPrefix(host, "[") || net.ParseIP(host) != nil:
		return fmt.Sprintf("host %q is an IP literal", h)
	case strings.Contains(host, ":"):
		return fmt.Sprintf("host %q carries a port", h)
	case strings.HasSuffix(host, "."):
		return fmt.Sprintf("host %q ends with a dot", h)
	case strings.ToLower(host) != host:
		return fmt.Sprintf("host %q is not lower case", h)
	}
	return fmt.Sprintf("host %q is not an STS endpoint of partition %s", h, p.partition)
}

// validExpires accepts a canonical decimal 0..900: no sign, no leading zero.
func validExpires(s string) bool {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= 900
}

// parseDate parses X-Amz-Date. The shape (16 bytes: digits, 'T', 'Z') is
// checked byte by byte first, so that the accepted form does not depend on
// the leniencies time.Parse may have; it then rejects out-of-range fields.
func parseDate(s string) (time.Time, bool) {
	if len(s) != len(dateLayout) || s[8] != 'T' || s[15] != 'Z' {
		return time.Time{}, false
	}
	for i := 0; i < len(s); i++ {
		if i != 8 && i != 15 && (s[i] < '0' || s[i] > '9') {
			return time.Time{}, false
		}
	}
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// containsHeaderFold is V14: some element of the raw (still escaped)
// X-Amz-SignedHeaders value equals name, ignoring case, as in the reference.
// Working on the raw value saves decoding it; the only difference is that an
// element with escapes inside a header name (x%2Dk8s-aws-id), which no
// producer writes, does not count as signed.
func containsHeaderFold(list, name string) bool {
	for list != "" {
		var h string
		h, list, _ = cutEscaped(list, ';', '3', 'B')
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// cutEscaped is strings.Cut on a raw query value for the separator sep,
// written either literally or percent-encoded as %<hi><lo> (either case of
// lo). checkQuerySyntax has guaranteed that every '%' starts an escape.
func cutEscaped(s string, sep, hi, lo byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == sep:
			return s[:i], s[i+1:], true
		case s[i] == '%' && i+2 < len(s) && s[i+1] == hi && (s[i+2]|0x20) == (lo|0x20):
			return s[:i], s[i+3:], true
		}
	}
	return s, "", false
}

// checkSignedHeaders requires the SigV4 canonical form (lower-case names,
// sorted, no duplicates or empty names) and host among them: a URL that
// does not sign its host could be replayed to another endpoint.
func checkSignedHeaders(list string) error {
	prev := ""
	hasHost := false
	for rest, first := list, true; first || rest != ""; first = false {
		var h string
		h, rest, _ = cutEscaped(rest, ';', '3', 'B')
		if !validHeaderName(h) {
			return fail(RuleSignedHeaders, "X-Amz-SignedHeaders is not a sorted list of lower-case header names")
		}
		if h <= prev {
			return fail(RuleSignedHeaders, "X-Amz-SignedHeaders is not sorted and unique")
		}
		prev = h
		hasHost = hasHost || h == "host"
	}
	if !hasHost {
		return fail(RuleSignedHeaders, "host is not among the signed headers")
	}
	return nil
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// credentialScope is X-Amz-Credential split up.
type credentialScope struct {
	accessKeyID, date, region string
}

// parseCredential requires exactly AKID/yyyymmdd/region/sts/aws4_request
// in the raw X-Amz-Credential value ('/' literal or %2F). The reference only
// takes what precedes the first '/', so a scope for another service or a
// bare key id passed; the key id also feeds username templates, hence the
// tight character set. No part may contain an escape, so the raw parts are
// the decoded ones.
func parseCredential(c string) (credentialScope, error) {
	parts := [5]string{}
	rest := c
	for i := range parts {
		var more bool
		parts[i], rest, more = cutEscaped(rest, '/', '2', 'F')
		if more != (i < len(parts)-1) {
			return credentialScope{}, fail(RuleCredential, "X-Amz-Credential must be key/date/region/sts/aws4_request")
		}
	}
	if !validAccessKeyID(parts[0]) {
		return credentialScope{}, fail(RuleCredential, "X-Amz-Credential access key id must be 16 to 128 upper-case letters and digits")
	}
	if len(parts[1]) != 8 || parts[3] != "sts" || parts[4] != "aws4_request" || !validRegionName(parts[2]) {
		return credentialScope{}, fail(RuleCredential, "X-Amz-Credential scope must be yyyymmdd/region/sts/aws4_request")
	}
	return credentialScope{accessKeyID: parts[0], date: parts[1], region: parts[2]}, nil
}

// validAccessKeyID: IAM documents 16..128 word characters; every issued key
// (AKIA, ASIA, ...) is upper-case letters and digits.
func validAccessKeyID(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// validSignature: SigV4 signatures are hex-encoded HMAC-SHA256, lower case.
func validSignature(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
