package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sar"
)

// AccessReviewer answers SubjectAccessReviews; authz/sar implements it
// (its Cached around its Client in production).
type AccessReviewer interface {
	Review(ctx context.Context, s sar.Subject, a sar.Attributes) (sar.Decision, error)
}

// verbImpersonate is the verb of every review: the legacy impersonation
// verb. The constrained modes of the API server's filter (KEP-5284:
// impersonate:user-info, impersonate:serviceaccount, the node modes, each
// with impersonate-on:<mode>:<verb> on the request itself) are not
// evaluated: a caller with only such grants is refused here (fail closed).
const verbImpersonate = "impersonate"

// API groups and versions of the reviewed resources, as the API server's
// legacy impersonation mode asks them: users, groups and serviceaccounts in
// the core group, uids and userextras in authentication.k8s.io.
const (
	groupCore           = ""
	groupAuthentication = "authentication.k8s.io"
	versionV1           = "v1"
)

// impersonationAttributes lists one review per requested attribute, in the
// order the API server checks them (user or service account, uid, each
// group, each extra value), so the first refusal is the one it would name.
func impersonationAttributes(r impersonate.Requested) []sar.Attributes {
	out := make([]sar.Attributes, 0, 2+len(r.Groups)+len(r.Extras))
	user := sar.Attributes{Verb: verbImpersonate, Group: groupCore, Version: versionV1, Resource: "users", Name: r.User}
	if ns, name, ok := impersonate.ServiceAccount(r.User); ok {
		user.Resource, user.Namespace, user.Name = "serviceaccounts", ns, name
	}
	out = append(out, user)
	if r.UID != "" {
		out = append(out, sar.Attributes{Verb: verbImpersonate, Group: groupAuthentication, Version: versionV1, Resource: "uids", Name: r.UID})
	}
	for _, g := range r.Groups {
		out = append(out, sar.Attributes{Verb: verbImpersonate, Group: groupCore, Version: versionV1, Resource: "groups", Name: g})
	}
	for _, e := range r.Extras {
		out = append(out, sar.Attributes{Verb: verbImpersonate, Group: groupAuthentication, Version: versionV1,
			Resource: "userextras", Subresource: e.Key, Name: e.Value})
	}
	return out
}

// ImpersonationDeniedError is a SubjectAccessReview's refusal, carrying the
// Status body the API server itself would send for it.
type ImpersonationDeniedError struct {
	// Message is the Status message, e.g. `users "bob" is forbidden: User
	// "alice" cannot impersonate resource "users" in API group "" at the
	// cluster scope`.
	Message string
	body    string
}

func (e *ImpersonationDeniedError) Error() string {
	return outcome.ErrImpersonationDenied.Error() + ": " + e.Message
}

func (e *ImpersonationDeniedError) Unwrap() error { return outcome.ErrImpersonationDenied }

// htmlSanitizer: the API server escapes these in forbidden messages so an
// error never looks like HTML.
var htmlSanitizer = strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;")

// forbidden words a refusal the way the API server's impersonation filter
// does (responsewriters.ForbiddenStatusError): the same message, reason,
// details and code, so kubectl prints what it prints for a direct request.
func forbidden(caller string, a sar.Attributes, reason string) *ImpersonationDeniedError {
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	var msg string
	if a.Namespace != "" {
		msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", caller, a.Verb, resource, a.Group, a.Namespace)
	} else {
		msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", caller, a.Verb, resource, a.Group)
	}
	msg = htmlSanitizer.Replace(msg)
	if reason != "" {
		msg += ": " + reason
	}
	st := apierrors.NewForbidden(schema.GroupResource{Group: a.Group, Resource: a.Resource}, a.Name, errors.New(msg)).ErrStatus
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	b, err := json.Marshal(&st)
	if err != nil {
		b = []byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"Forbidden","code":403}`)
	}
	return &ImpersonationDeniedError{Message: st.Message, body: string(b)}
}

// authorizeImpersonation asks one review per requested attribute, in order,
// and stops at the first refusal. A review that cannot be had is
// sar.ErrUnavailable: never an allow.
func (s *Server) authorizeImpersonation(ctx context.Context, caller impersonate.CallerInfo, r impersonate.Requested, d *decision) error {
	ctx, cancel := context.WithTimeout(ctx, s.reviewTimeout)
	defer cancel()
	subject := sar.Subject{User: caller.User, Groups: caller.Groups, UID: caller.UID, Extra: caller.Extra}
	for _, a := range impersonationAttributes(r) {
		d.reviews++
		dec, err := s.reviewer.Review(ctx, subject, a)
		if err != nil {
			if !errors.Is(err, sar.ErrUnavailable) {
				err = fmt.Errorf("%w: %w", sar.ErrUnavailable, err)
			}
			return err
		}
		if !dec.Allowed {
			return forbidden(caller.User, a, dec.Reason)
		}
	}
	return nil
}
