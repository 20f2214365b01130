package check

import (
	"context"
	"sync"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sar"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
)

// fakeVerifier answers from a table keyed by token and records the cluster
// ids it was asked for.
type fakeVerifier struct {
	mu         sync.Mutex
	results    map[string]verify.Result
	err        error
	panicWith  any
	calls      int
	clusterIDs []string
}

func (f *fakeVerifier) Verify(_ context.Context, tok, clusterID string) (verify.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.clusterIDs = append(f.clusterIDs, clusterID)
	if f.panicWith != nil {
		panic(f.panicWith)
	}
	if f.err != nil {
		return verify.Result{}, f.err
	}
	r, ok := f.results[tok]
	if !ok {
		return verify.Result{}, errUnknownTokenInFake
	}
	return r, nil
}

type fakeError string

func (e fakeError) Error() string { return string(e) }

const errUnknownTokenInFake = fakeError("fake verifier: unknown token")

// fakeMapper maps by canonical ARN.
type fakeMapper struct {
	mu    sync.Mutex
	users map[string]kubeuser.User
	err   error
	calls int
}

func (f *fakeMapper) Map(_ context.Context, id identity.Identity) (kubeuser.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return kubeuser.User{}, f.err
	}
	u, ok := f.users[id.CanonicalARN]
	if !ok {
		return kubeuser.User{}, kubeuser.ErrUnmapped
	}
	return u, nil
}

func (f *fakeMapper) set(arn string, u kubeuser.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[arn] = u
}

// fakeBearer is a settable upstream token.
type fakeBearer struct {
	mu  sync.Mutex
	tok string
}

func (f *fakeBearer) BearerToken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tok
}

func (f *fakeBearer) set(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tok = tok
}

// fakeReviewer answers SubjectAccessReviews: allowed when allowAll or when
// the attribute's "resource[/subresource] [namespace/]name" is in allow,
// with reason on a denial; err fails every review. It records every
// review asked.
type fakeReviewer struct {
	mu       sync.Mutex
	allowAll bool
	allow    map[string]bool
	reason   string
	err      error
	asked    []review
}

type review struct {
	subject sar.Subject
	attrs   sar.Attributes
}

func attrKey(a sar.Attributes) string {
	k := a.Resource
	if a.Subresource != "" {
		k += "/" + a.Subresource
	}
	k += " "
	if a.Namespace != "" {
		k += a.Namespace + "/"
	}
	return k + a.Name
}

func (f *fakeReviewer) Review(_ context.Context, s sar.Subject, a sar.Attributes) (sar.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, review{subject: s, attrs: a})
	if f.err != nil {
		return sar.Decision{}, f.err
	}
	if f.allowAll || f.allow[attrKey(a)] {
		return sar.Decision{Allowed: true, Reason: "allowed by fake"}, nil
	}
	return sar.Decision{Reason: f.reason}, nil
}

func (f *fakeReviewer) reviews() []review {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]review(nil), f.asked...)
}
