// Package sar asks the Kubernetes API server, with a SubjectAccessReview
// (authorization.k8s.io/v1), whether a subject may do one thing. The Check
// service uses it to authorize nested impersonation (kubectl --as through
// the proxy) exactly as the API server's impersonation filter would.
package sar

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// ErrUnavailable is wrapped when no answer could be had: the API server is
// unreachable, times out, refuses the proxy's SubjectAccessReview (RBAC), or
// answers something unusable. The caller must treat it as "retry later",
// never as an allow.
var ErrUnavailable = errors.New("SubjectAccessReview unavailable")

// Subject is the user whose rights are reviewed: the SAR spec's user,
// groups, uid and extra.
type Subject struct {
	User   string
	Groups []string
	UID    string
	Extra  map[string][]string
}

// Attributes are the SAR spec's resourceAttributes. The impersonation
// filter only ever asks resource questions.
type Attributes struct {
	Verb        string
	Group       string
	Version     string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
}

// Decision is the SAR's status.
type Decision struct {
	// Allowed is status.allowed.
	Allowed bool
	// Reason is status.reason: the API server appends it to its own
	// forbidden message, and so does the Check service.
	Reason string
}

// Reviewer answers one SubjectAccessReview.
type Reviewer interface {
	Review(ctx context.Context, s Subject, a Attributes) (Decision, error)
}

// key is the cache and singleflight key: every field of the subject and the
// attributes, each length-prefixed so that no two different reviews can
// share a key (a group named "a,b" is not the groups a and b). Extras are
// sorted by key; values keep their order (the SAR carries them in order).
func key(s Subject, a Attributes) string {
	var b strings.Builder
	field := func(v string) {
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	for _, v := range []string{a.Verb, a.Group, a.Version, a.Resource, a.Subresource, a.Namespace, a.Name, s.User, s.UID} {
		field(v)
	}
	field(strconv.Itoa(len(s.Groups)))
	for _, g := range s.Groups {
		field(g)
	}
	keys := make([]string, 0, len(s.Extra))
	for k := range s.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	field(strconv.Itoa(len(keys)))
	for _, k := range keys {
		field(k)
		field(strconv.Itoa(len(s.Extra[k])))
		for _, v := range s.Extra[k] {
			field(v)
		}
	}
	return b.String()
}
