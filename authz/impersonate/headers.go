// Package impersonate builds the Kubernetes impersonation headers that tell
// the API server who a verified AWS caller is. It is pure: no I/O, no state.
//
// The API server's impersonation filter (k8s.io/apiserver
// pkg/endpoints/filters/impersonation) reads:
//   - Impersonate-User: one value, the username;
//   - Impersonate-Group: every header line is one group; commas are NOT
//     split, so each group must travel as its own line;
//   - Impersonate-Uid: one value (Kubernetes ≥ 1.22);
//   - Impersonate-Extra-<key>: the suffix is lower-cased and then
//     url.PathUnescape'd to give the extra key; each line is one value.
//
// Groups, uid or extras without a user are a 400 on the API server, so an
// empty username is refused here.
package impersonate

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

// Header names, lower-case: Envoy stores header names lower-cased and
// HTTP/2 requires it, and the API server matches them case-insensitively.
const (
	HeaderUser        = "impersonate-user"
	HeaderGroup       = "impersonate-group"
	HeaderUID         = "impersonate-uid"
	HeaderExtraPrefix = "impersonate-extra-"
	// Prefix is what every impersonation header starts with; the Check
	// service refuses requests carrying any header with this prefix.
	Prefix = "impersonate-"
)

// ErrInvalidValue is wrapped when a username, group or extra value cannot be
// sent as a header value as is. Refusing (rather than escaping or dropping)
// fails closed: a mapping that renders such a value is a configuration or
// template-injection problem, and a half-applied identity is worse than none.
var ErrInvalidValue = errors.New("value cannot be sent as an impersonation header")

// Header is one header line. Several Headers may share a Name
// (Impersonate-Group); each must reach the API server as its own line.
type Header struct {
	Name  string
	Value string
}

// Headers returns the impersonation header lines for a mapped identity, in
// a fixed order: user, one line per group (mapping order), uid, then the
// extras in ExtraKeys order. Extras with an empty value are left out (an
// IAM user has no session name): the API server would otherwise record an
// extra whose only value is "", which RBAC on userextras cannot usefully
// name.
func Headers(id identity.Identity, user kubeuser.User) ([]Header, error) {
	if user.Username == "" {
		return nil, fmt.Errorf("%w: empty username", ErrInvalidValue)
	}
	if err := checkName("username", user.Username); err != nil {
		return nil, err
	}
	out := make([]Header, 0, 2+len(user.Groups)+len(extraKeys))
	out = append(out, Header{Name: HeaderUser, Value: user.Username})
	for _, g := range user.Groups {
		if g == "" {
			return nil, fmt.Errorf("%w: empty group name", ErrInvalidValue)
		}
		if err := checkName("group", g); err != nil {
			return nil, err
		}
		out = append(out, Header{Name: HeaderGroup, Value: g})
	}
	uid := UID(id)
	if err := checkValue("uid", uid); err != nil {
		return nil, err
	}
	out = append(out, Header{Name: HeaderUID, Value: uid})
	return appendExtras(out, Extras(id))
}

// appendExtras appends one Impersonate-Extra-<escaped key> line per extra
// with a value (an empty one is left out: the API server would record an
// extra whose only value is ""), refusing a value no header can carry.
func appendExtras(out []Header, extras []Extra) ([]Header, error) {
	for _, e := range extras {
		if e.Value == "" {
			continue
		}
		if err := checkValue("extra "+e.Key, e.Value); err != nil {
			return nil, err
		}
		out = append(out, Header{Name: HeaderExtraPrefix + EscapeExtraKey(e.Key), Value: e.Value})
	}
	return out, nil
}

// checkName is checkValue plus no comma, for the username and group names.
// The API server reads each Impersonate-Group line as one group and never
// splits on commas, but any hop that merges repeated lines (Envoy's
// deprecated append, an HTTP/1 proxy folding headers) would turn "a,b"
// into two groups or one mangled one; a comma in a Kubernetes user or group
// name is almost certainly a mapping mistake, so it is refused.
func checkName(what, v string) error {
	if strings.IndexByte(v, ',') >= 0 {
		return fmt.Errorf("%w: %s contains a comma", ErrInvalidValue, what)
	}
	return checkValue(what, v)
}

// checkValue refuses values that are not valid header field values: control
// characters (CR and LF would split the header, NUL truncates it in some
// stacks; RFC 9110 §5.5 allows only HTAB among them, and we refuse it too)
// and invalid UTF-8, which protobuf cannot carry in a string field.
func checkValue(what, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidValue, what)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: %s contains control character 0x%02x", ErrInvalidValue, what, c)
		}
	}
	return nil
}
