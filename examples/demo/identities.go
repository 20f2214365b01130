package main

import (
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// demoAccount is the account of examples/aws-auth.yaml's mapUsers and
// mapRoles entries; otherAccount appears nowhere in it (mapAccounts lists
// 444455556666, which would map every principal of that account).
const (
	demoAccount  = "111122223333"
	otherAccount = "777788889999"
)

// identity is one demo caller: static fake keys registered in the STS
// stand-in, a kubeconfig context that signs tokens with them, and what
// `kubectl auth whoami` must show.
type identity struct {
	// Context is the kubeconfig context and user name.
	Context string
	// Title says which aws-auth rule applies.
	Title string
	// Principal is what the STS stand-in answers for these keys.
	Principal stsfake.PrincipalEntry
	// WantAllowed is true when whoami must succeed.
	WantAllowed bool
	// WantUser and WantGroups must appear in whoami's output; for a denied
	// identity WantDenied must appear in kubectl's error.
	WantUser   string
	WantGroups []string
	WantDenied string
}

// identities are the three callers of the scripted part, in order.
func identities() []identity {
	return []identity{
		{
			Context: "admin",
			Title:   "IAM user arn:aws:iam::111122223333:user/admin, mapped by mapUsers",
			Principal: stsfake.PrincipalEntry{
				Principal: stsfake.Principal{
					Credentials: stsfake.Credentials{
						AccessKeyID:     "AKIADEMOADMIN0000001",
						SecretAccessKey: "demo/admin/secret/not+a+real+key+000001",
					},
					Account: demoAccount,
				},
				User: "admin",
			},
			WantAllowed: true,
			WantUser:    "admin",
			WantGroups:  []string{"system:masters", "system:authenticated"},
		},
		{
			Context: "developer",
			Title:   "role session arn:aws:sts::111122223333:assumed-role/developer/alice, mapped by mapRoles",
			Principal: stsfake.PrincipalEntry{
				Principal: stsfake.Principal{
					Credentials: stsfake.Credentials{
						AccessKeyID:     "ASIADEMODEVELOPER001",
						SecretAccessKey: "demo/developer/secret/not+a+real+key+01",
						SessionToken:    "demo-session-token-for-alice-not-a-real-token",
					},
					Account: demoAccount,
					// examples/aws-auth.yaml pins the developer role to this
					// unique id (userid:), as STS reports it for a session:
					// <role id>:<session name>.
					UserID: "AROAEXAMPLEDEVELOPER1:alice",
				},
				Role:    "developer",
				Session: "alice",
			},
			WantAllowed: true,
			WantUser:    "developer:alice",
			WantGroups:  []string{"developers", "viewers", "team-" + demoAccount, "system:authenticated"},
		},
		{
			Context: "unmapped",
			Title:   "IAM user arn:aws:iam::777788889999:user/intern, in no mapping",
			Principal: stsfake.PrincipalEntry{
				Principal: stsfake.Principal{
					Credentials: stsfake.Credentials{
						AccessKeyID:     "AKIADEMOUNMAPPED0001",
						SecretAccessKey: "demo/unmapped/secret/not+a+real+key+001",
					},
					Account: otherAccount,
				},
				User: "intern",
			},
			WantAllowed: false,
			WantDenied:  "Forbidden",
		},
	}
}
