package impersonate

import (
	"strings"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

// String renders a header line as it appears on the wire.
func (h Header) String() string { return h.Name + ": " + h.Value }

// Render returns exactly the Impersonate-* header lines the Check service
// would send upstream for this identity and user, one per line in sending
// order. The `map` dry-run command prints it so an operator can see what the
// API server (and its RBAC) will be asked to accept.
func Render(id identity.Identity, user kubeuser.User) (string, error) {
	hs, err := Headers(id, user)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h.String())
		b.WriteByte('\n')
	}
	return b.String(), nil
}
