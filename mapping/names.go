package mapping

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameLen bounds a username or group, literal or rendered. Kubernetes has
// no limit of its own, but every name becomes an HTTP header value that
// Envoy and the API server must accept.
const maxNameLen = 1024

// reservedPrefixes are the prefixes EKS access entries refuse in custom
// usernames (anchors A.2) and that aws-iam-authenticator's dynamic-file dev
// config reserves. A name that only got one of them through a template
// substitution is refused at request time (see checkRendered).
var reservedPrefixes = [...]string{"system:", "eks:", "aws:", "amazon:", "iam:"}

// checkName is the load-time and request-time shape check of a username or
// group; its errors carry their Rule. A comma matters because header lists
// are comma-joined: Envoy or a client library folding several
// Impersonate-Group values into one line would turn "a,system:masters" into
// two groups. Control characters (CR, LF, NUL...) could split or truncate
// headers, and HTTP trims leading and trailing whitespace, so such a name
// would reach the API server changed. Inner spaces pass (see hasSpace): the
// classic aws-auth mis-indentation (an extra space before "- system:nodes")
// yields one group "system:bootstrappers - system:nodes", which
// aws-iam-authenticator accepts too; it is warned about at load time.
func checkName(s string) error {
	if s == "" {
		return &ruleError{rule: RuleEmptyName, err: fmt.Errorf("is empty")}
	}
	if len(s) > maxNameLen {
		return &ruleError{rule: RuleNameChars, err: fmt.Errorf("is %d bytes long, more than %d", len(s), maxNameLen)}
	}
	if asciiNameOK(s) {
		return nil // the common case, decided without decoding runes
	}
	if !utf8.ValidString(s) {
		return &ruleError{rule: RuleNameChars, err: fmt.Errorf("is not valid UTF-8")}
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return &ruleError{rule: RuleNameChars, err: fmt.Errorf("%q has leading or trailing whitespace, which HTTP header values lose", s)}
	}
	for _, r := range s {
		switch {
		case r == ',':
			return &ruleError{rule: RuleNameChars, err: fmt.Errorf("%q contains a comma, which would split it into two names when header values are joined", s)}
		case unicode.IsControl(r):
			return &ruleError{rule: RuleNameChars, err: fmt.Errorf("%q contains a control character %U", s, r)}
		}
	}
	return nil
}

// hasSpace reports whether a name that passed checkName has inner
// whitespace, which is legal but most often a YAML slip.
func hasSpace(s string) bool { return strings.ContainsFunc(s, unicode.IsSpace) }

// asciiNameOK reports whether s is printable ASCII without a comma or a
// space: such a name passes every check of checkName. Anything else (also a
// valid non-ASCII name) is left to the rune loop.
func asciiNameOK(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == ',' {
			return false
		}
	}
	return true
}

// reservedPrefix returns the reserved prefix s starts with, compared
// case-insensitively: refusing "System:masters" costs nothing and does not
// depend on how every consumer compares names.
func reservedPrefix(s string) string {
	for _, p := range reservedPrefixes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return p
		}
	}
	return ""
}
