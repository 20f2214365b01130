package impersonate

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
)

// Errors of ParseRequested. The Check service maps each to a status
// (authz/outcome/table.go).
var (
	// ErrWithoutUser: Impersonate-Group, -Uid or -Extra-* without
	// Impersonate-User. The API server answers 400 for the same request.
	ErrWithoutUser = errors.New("impersonation of groups, uid or extras without impersonating a user")
	// ErrInvalidRequest: impersonation headers the proxy cannot pass on
	// unambiguously (a repeated Impersonate-User or -Uid, an empty value, a
	// comma in a user or group name, an unknown Impersonate-* header, too
	// many attributes).
	ErrInvalidRequest = errors.New("invalid impersonation headers")
	// ErrReservedExtra: the client tried to set an extra under
	// ReservedExtraPrefix, which only the proxy writes (the original
	// caller recorded for audit).
	ErrReservedExtra = errors.New("client set a reserved impersonation extra")
)

// ReservedExtraPrefix starts every extra key the proxy reserves for
// itself. A client can never set a key with this prefix, so an audit
// reader can trust it.
const ReservedExtraPrefix = "kube-iam-authz.io/"

// The reserved extras recording the original (mapped AWS) caller of a
// nested impersonation, like Pinniped's original-user-info.
const (
	ExtraOriginalUsername = ReservedExtraPrefix + "original-username"
	ExtraOriginalUID      = ReservedExtraPrefix + "original-uid"
	ExtraOriginalGroups   = ReservedExtraPrefix + "original-groups"
	ExtraOriginalARN      = ReservedExtraPrefix + "original-arn"
)

var reservedExtraKeys = [...]string{ExtraOriginalUsername, ExtraOriginalUID, ExtraOriginalGroups, ExtraOriginalARN}

// ReservedExtraKeys returns the reserved keys the proxy may emit, in
// emission order. The proxy's RBAC must grant userextras/<key> for each.
func ReservedExtraKeys() []string {
	out := make([]string, len(reservedExtraKeys))
	copy(out, reservedExtraKeys[:])
	return out
}

// MaxRequested bounds the attributes (user, uid, groups, extra values) one
// request may ask to impersonate: each costs a SubjectAccessReview.
const MaxRequested = 32

// headerUIDName and co. are the client header names; Prefix covers them all.
const serviceAccountPrefix = "system:serviceaccount:"

// Requested is what a client asked to impersonate, decoded the way the
// API server's impersonation filter decodes it.
type Requested struct {
	User   string
	UID    string
	Groups []string
	// Extras in header order; a key repeated on several lines has several
	// values.
	Extras []Extra
}

// ServiceAccount splits a service account username
// (system:serviceaccount:NAMESPACE:NAME) as the API server does
// (serviceaccount.SplitUsername): exactly two parts, a valid namespace
// name and a valid service account name. Anything else is a plain user.
func ServiceAccount(username string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(username, serviceAccountPrefix)
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 2 {
		return "", "", false
	}
	if len(apivalidation.ValidateNamespaceName(parts[0], false)) != 0 ||
		len(apivalidation.ValidateServiceAccountName(parts[1], false)) != 0 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// DecodeExtraKey turns an Impersonate-Extra- suffix into the extra key the
// API server records: lower-cased, then percent-decoded; a suffix that does
// not decode is kept as it is (the API server's unescapeExtraKey).
func DecodeExtraKey(suffix string) string {
	lower := strings.ToLower(suffix)
	key, err := url.PathUnescape(lower)
	if err != nil {
		return lower
	}
	return key
}

// ParseRequested reads the client's Impersonate-* header lines (names in
// any case, one entry per line). merged says the lines came from Envoy's
// comma-joined headers map, where two lines and one value with a comma
// look alike: then no value may contain a comma.
//
// It is stricter than the API server in ways that fail closed: a repeated
// Impersonate-User or -Uid, an empty value, a comma in a user or group name
// and an unknown Impersonate-* header are refused rather than resolved.
func ParseRequested(lines []Header, merged bool) (Requested, error) {
	var r Requested
	var users, uids, n int
	for _, l := range lines {
		name := strings.ToLower(l.Name)
		v := l.Value
		if v == "" {
			return Requested{}, fmt.Errorf("%w: %s is empty", ErrInvalidRequest, name)
		}
		var err error
		if merged && strings.IndexByte(v, ',') >= 0 {
			err = fmt.Errorf("%w: %s has a comma (repeated lines cannot be told apart)", ErrInvalidRequest, name)
		}
		switch {
		case name == HeaderUser:
			users++
			r.User = v
			if err == nil {
				err = checkName("impersonated user", v)
			}
		case name == HeaderUID:
			uids++
			r.UID = v
			if err == nil {
				err = checkValue("impersonated uid", v)
			}
		case name == HeaderGroup:
			r.Groups = append(r.Groups, v)
			if err == nil {
				err = checkName("impersonated group", v)
			}
		case strings.HasPrefix(name, HeaderExtraPrefix) && len(name) > len(HeaderExtraPrefix):
			k := DecodeExtraKey(name[len(HeaderExtraPrefix):])
			if strings.HasPrefix(k, ReservedExtraPrefix) {
				return Requested{}, fmt.Errorf("%w: %q", ErrReservedExtra, k)
			}
			if k == "" {
				err = fmt.Errorf("%w: empty extra key", ErrInvalidRequest)
			}
			r.Extras = append(r.Extras, Extra{Key: k, Value: v})
			if err == nil {
				err = checkValue("impersonated extra "+k, v)
			}
		default:
			err = fmt.Errorf("%w: unknown header %q", ErrInvalidRequest, name)
		}
		if err != nil {
			if errors.Is(err, ErrInvalidValue) {
				err = fmt.Errorf("%w: %w", ErrInvalidRequest, err)
			}
			return Requested{}, err
		}
		n++
	}
	switch {
	case users > 1:
		return Requested{}, fmt.Errorf("%w: %d Impersonate-User lines", ErrInvalidRequest, users)
	case uids > 1:
		return Requested{}, fmt.Errorf("%w: %d Impersonate-Uid lines", ErrInvalidRequest, uids)
	case users == 0 && n > 0:
		return Requested{}, ErrWithoutUser
	case n > MaxRequested:
		return Requested{}, fmt.Errorf("%w: %d attributes, at most %d", ErrInvalidRequest, n, MaxRequested)
	}
	return r, nil
}
