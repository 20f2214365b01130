package harness

import "github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"

// Identity is an AWS caller the chain's STS stand-in knows, and the name its
// kubeconfig users carry.
type Identity struct {
	// Name is the kubeconfig user's name stem: "<Name>@<cluster>" runs our token
	// command, "<Name>-awscli@<cluster>" runs `aws eks get-token`.
	Name string
	stsfake.Principal
}

// Accounts of the default identities.
const (
	// AccountMain holds the mapped user and role.
	AccountMain = "111122223333"
	// AccountMapped is mapped as a whole (mapAccounts).
	AccountMapped = "444455556666"
	// AccountStranger is mapped nowhere.
	AccountStranger = "999988887777"
)

// Names of the default identities.
const (
	// IdentityAdmin is the IAM user arn:aws:iam::111122223333:user/admin (mapUsers).
	IdentityAdmin = "admin"
	// IdentityDeveloper is the role session
	// arn:aws:sts::111122223333:assumed-role/developer/alice with session
	// credentials (mapRoles).
	IdentityDeveloper = "developer"
	// IdentityAccountOnly is arn:aws:iam::444455556666:user/carol, mapped only
	// through mapAccounts.
	IdentityAccountOnly = "account-only"
	// IdentityUnmapped is arn:aws:iam::999988887777:user/mallory, mapped nowhere.
	IdentityUnmapped = "unmapped"
)

// DefaultIdentities are the callers of a chain unless ChainOptions says otherwise:
// one of each kind the mapping distinguishes. The keys are fake and only valid
// against the stand-in.
func DefaultIdentities() []Identity {
	return []Identity{
		{Name: IdentityAdmin, Principal: stsfake.IAMUser(AccountMain, "admin", stsfake.Credentials{
			AccessKeyID: "AKIAE2EADMINUSER0001", SecretAccessKey: "e2e/admin+secret=0123456789abcdefghijk"})},
		{Name: IdentityDeveloper, Principal: stsfake.AssumedRole(AccountMain, "developer", "alice", stsfake.Credentials{
			AccessKeyID: "ASIAE2EDEVELOPER0001", SecretAccessKey: "e2e/developer+secret=0123456789abcdefgh",
			SessionToken: "FwoGZXIvYXdzE2E//////////wEaDGRldmVsb3Blci1zZXNzaW9u"})},
		{Name: IdentityAccountOnly, Principal: stsfake.IAMUser(AccountMapped, "carol", stsfake.Credentials{
			AccessKeyID: "AKIAE2EACCOUNTONLY01", SecretAccessKey: "e2e/carol+secret=0123456789abcdefghijkl"})},
		{Name: IdentityUnmapped, Principal: stsfake.IAMUser(AccountStranger, "mallory", stsfake.Credentials{
			AccessKeyID: "AKIAE2EUNMAPPEDUSER1", SecretAccessKey: "e2e/mallory+secret=0123456789abcdefghij"})},
	}
}

// DefaultMapping is the aws-auth ConfigMap of a chain's clusters unless
// ChainOptions says otherwise: the admin user with three groups (mapUsers), the
// developer role with templated username and groups (mapRoles), and the whole of
// AccountMapped (mapAccounts).
func DefaultMapping() []byte {
	return []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapRoles: |
    - rolearn: arn:aws:iam::111122223333:role/developer
      username: developer:{{SessionName}}
      groups:
        - developers
        - viewers
        - team-{{AccountID}}
  mapUsers: |
    - userarn: arn:aws:iam::111122223333:user/admin
      username: admin
      groups:
        - system:masters
        - ops
        - auditors
  mapAccounts: |
    - "444455556666"
`)
}
