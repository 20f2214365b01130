// Package identity describes who an AWS caller is, as STS reported it, and
// canonicalises the ARN the way aws-iam-authenticator does so that the
// mapping layer compares like with like.
package identity

// Identity is the verified AWS principal behind a token. Every field except
// AccessKeyID comes from STS's GetCallerIdentity answer; AccessKeyID comes
// from the token's X-Amz-Credential, which is only trustworthy because the
// verifier rejects duplicate query keys (CVE-2022-2385).
type Identity struct {
	// ARN is the ARN exactly as STS returned it, e.g.
	// arn:aws:sts::111122223333:assumed-role/Dev/alice.
	ARN string
	// CanonicalARN is ARN with assumed-role sessions folded into the IAM
	// role ARN (arn:aws:iam::111122223333:role/Dev). Case is preserved.
	CanonicalARN string
	// AccountID is the Account field of the STS answer.
	AccountID string
	// UserID is STS's UserId verbatim (AROA...:alice for a role session).
	UserID string
	// PrincipalID is the stable unique ID of the principal: the part of
	// UserID before ':' for role sessions, the whole UserID otherwise. The
	// reference uses it in the Kubernetes uid.
	PrincipalID string
	// SessionName is the caller-chosen role session name (empty for users,
	// root and federated users). Never trust it for privilege decisions.
	SessionName string
	// AccessKeyID is the access key that signed the token.
	AccessKeyID string
	// Kind is the principal type derived from the ARN.
	Kind Kind
}

// Kind is the type of IAM principal.
type Kind string

// The principal kinds that GetCallerIdentity can return.
const (
	KindUser          Kind = "user"
	KindRole          Kind = "role"
	KindAssumedRole   Kind = "assumed-role"
	KindFederatedUser Kind = "federated-user"
	KindRoot          Kind = "root"
)
