package check

import (
	"context"
	"fmt"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
)

// Decision is what the proxy sends upstream for one verified identity on one
// cluster: the mapped user and the exact impersonation header lines.
type Decision struct {
	User    kubeuser.User
	Headers []impersonate.Header
}

// Decide maps a verified identity and renders the impersonation it gets,
// with every limit the Check service enforces. serve's Check and the `map`
// dry run both come through here, so a dry run cannot report "mapped" for an
// identity that serve refuses (it once did, for a user with 17 groups).
func Decide(ctx context.Context, m Mapper, id identity.Identity) (Decision, error) {
	user, err := m.Map(ctx, id)
	if err != nil {
		return Decision{}, err
	}
	return impersonation(id, user)
}

// impersonation is Decide after the mapping: the Check service calls it
// directly so that its response cache can sit between the two halves (a
// cached response was built by this function for the same identity and
// user, so it is the same decision).
func impersonation(id identity.Identity, user kubeuser.User) (Decision, error) {
	// Groups travel in MaxGroups dynamic metadata slots (response.go); one
	// more could only be dropped, and a dropped group may be one that RBAC
	// relies on, so the identity is refused instead.
	if len(user.Groups) > MaxGroups {
		return Decision{}, fmt.Errorf("%w: %d groups, at most %d", outcome.ErrTooManyGroups, len(user.Groups), MaxGroups)
	}
	hs, err := impersonate.Headers(id, user)
	if err != nil {
		return Decision{}, err
	}
	return Decision{User: user, Headers: hs}, nil
}
