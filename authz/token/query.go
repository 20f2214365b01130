package token

import (
	"net/url"
	"strings"
)

// param indexes the query parameters a presigned GetCallerIdentity URL may
// carry: the reference's allow-list (V11). Everything else (X-Amz-Content-
// Sha256, response-*, Accept, ...) could change what STS does or returns.
type param int

const (
	pAction param = iota
	pVersion
	pAlgorithm
	pCredential
	pDate
	pExpires
	pSecurityToken
	pSignature
	pSignedHeaders
	numParams
)

// name is the parameter's canonical spelling.
func (p param) name() string {
	switch p {
	case pAction:
		return "Action"
	case pVersion:
		return "Version"
	case pAlgorithm:
		return "X-Amz-Algorithm"
	case pCredential:
		return "X-Amz-Credential"
	case pDate:
		return "X-Amz-Date"
	case pExpires:
		return "X-Amz-Expires"
	case pSecurityToken:
		return "X-Amz-Security-Token"
	case pSignature:
		return "X-Amz-Signature"
	case pSignedHeaders:
		return "X-Amz-SignedHeaders"
	}
	return ""
}

// lookupParam matches key case-insensitively, like the reference.
func lookupParam(key string) (param, bool) {
	for p := param(0); p < numParams; p++ {
		if strings.EqualFold(key, p.name()) {
			return p, true
		}
	}
	return 0, false
}

// query holds the allowed parameters, each at most once. raw values keep
// their percent-escapes (already validated); value decodes on demand.
type query struct {
	raw  [numParams]string
	key  [numParams]string
	seen [numParams]bool
}

// value is the decoded value of p ("" when absent).
func (q *query) value(p param) string {
	v, err := url.QueryUnescape(q.raw[p])
	if err != nil { // unreachable: parseQuery validated every escape
		return ""
	}
	return v
}

// parseQuery is V9 to V12 in one pass over the raw query, without building
// a url.Values map (whose last-write-wins merging of case variants was the
// root of CVE-2022-2385).
func parseQuery(rawQuery string, q *query) error {
	if rawQuery == "" {
		return nil
	}
	if err := checkQuerySyntax(rawQuery); err != nil {
		return err
	}
	rest := rawQuery
	for {
		pair, next, more := strings.Cut(rest, "&")
		if pair == "" {
			return fail(RuleQuerySyntax, "empty query parameter")
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil { // unreachable after checkQuerySyntax
			return fail(RuleQuerySyntax, "bad escape in query parameter name")
		}
		p, ok := lookupParam(key)
		if !ok {
			return fail(RuleParamNotAllowed, "query parameter %q is not allowed", clip(key))
		}
		if q.seen[p] {
			if q.key[p] == key {
				// V12: STS and we could read different copies.
				return fail(RuleDuplicate, "query parameter %s appears more than once", p.name())
			}
			// V10, CVE-2022-2385: STS reads the exact-case parameter, the
			// reference read whichever case variant its map kept; an
			// attacker's lower-case twin could set the access key id or
			// drop x-k8s-aws-id from the signed headers.
			return fail(RuleDuplicateCase, "query parameter %s appears in two spellings", p.name())
		}
		q.seen[p], q.key[p], q.raw[p] = true, key, rawValue
		if !more {
			return nil
		}
		rest = next
	}
}

// checkQuerySyntax admits only RFC 3986 query characters minus ';' (which
// Go >= 1.17 refuses as a separator and other parsers accept: a parser
// differential) and requires every '%' to start a valid escape. Spaces,
// quotes, control and non-ASCII bytes have no business in a URL that we
// put on the wire to STS.
func checkQuerySyntax(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == '~' || c == '!' || c == '$' || c == '&' || c == '\'' ||
			c == '(' || c == ')' || c == '*' || c == '+' || c == ',' || c == '=' || c == ':' || c == '@' || c == '/' || c == '?':
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return fail(RuleQuerySyntax, "bad percent-escape at query byte %d", i)
			}
			i += 2
		case c == ';':
			return fail(RuleQuerySyntax, "';' in query")
		default:
			return fail(RuleQuerySyntax, "character 0x%02x not allowed in query", c)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
