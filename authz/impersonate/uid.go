package impersonate

import "github.com/kube-iam-authz/kube-iam-authz/authz/identity"

// uidPrefix is the uid namespace aws-iam-authenticator uses. Keeping it lets
// RBAC and audit tooling written for clusters that used the authenticator's
// TokenReview webhook keep working unchanged.
const uidPrefix = "aws-iam-authenticator:"

// UID is the stable Kubernetes uid of an AWS principal:
// aws-iam-authenticator:<account>:<principal id>. It is built from the
// principal's unique id (AROA…/AIDA…, without the role session), so every
// session of one role shares a uid, and a deleted and recreated role with
// the same ARN gets a new one.
func UID(id identity.Identity) string {
	return uidPrefix + id.AccountID + ":" + id.PrincipalID
}
