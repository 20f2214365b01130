//go:build integration

package e2e

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestMappingKinds: an assumed-role session mapped through mapRoles (templated
// username and group, the role's unique id in the uid, the session name as an
// extra) and an IAM user whose account alone is mapped (mapAccounts: the ARN as
// username, no groups), each through both token producers.
func TestMappingKinds(t *testing.T) {
	t.Parallel()
	c := harness.StartChain(t, harness.ChainOptions{})
	dev := c.Identity(t, harness.IdentityDeveloper)
	carol := c.Identity(t, harness.IdentityAccountOnly)
	// STS's UserId of a role session is ROLEID:SESSION; the principal id is ROLEID.
	devPrincipal, _, _ := strings.Cut(dev.UserID, ":")

	const (
		devARN      = "arn:aws:sts::111122223333:assumed-role/developer/alice"
		devRoleARN  = "arn:aws:iam::111122223333:role/developer"
		carolARN    = "arn:aws:iam::444455556666:user/carol"
		devUsername = "developer:alice"
	)
	proxy := "Authorization: " + harness.RedactedBearer(c.ProxyToken(t))
	type want struct {
		user  userInfo
		lines []string
	}
	developer := want{
		user: userInfo{
			Username: devUsername,
			UID:      "aws-iam-authenticator:111122223333:" + devPrincipal,
			Groups:   withAuthenticated("developers", "viewers", "team-111122223333"),
			Extra: map[string][]string{
				"accesskeyid":  {dev.AccessKeyID},
				"arn":          {devARN},
				"canonicalarn": {devRoleARN},
				"principalid":  {devPrincipal},
				"sessionname":  {"alice"},
			},
		},
		lines: []string{
			proxy,
			"Impersonate-Extra-Accesskeyid: " + dev.AccessKeyID,
			"Impersonate-Extra-Arn: " + devARN,
			"Impersonate-Extra-Canonicalarn: " + devRoleARN,
			"Impersonate-Extra-Principalid: " + devPrincipal,
			"Impersonate-Extra-Sessionname: alice",
			"Impersonate-Group: developers",
			"Impersonate-Group: viewers",
			"Impersonate-Group: team-111122223333",
			"Impersonate-Uid: aws-iam-authenticator:111122223333:" + devPrincipal,
			"Impersonate-User: " + devUsername,
		},
	}
	accountOnly := want{
		user: userInfo{
			Username: carolARN,
			UID:      "aws-iam-authenticator:444455556666:" + carol.UserID,
			Groups:   withAuthenticated(),
			Extra: map[string][]string{
				"accesskeyid":  {carol.AccessKeyID},
				"arn":          {carolARN},
				"canonicalarn": {carolARN},
				"principalid":  {carol.UserID},
			},
		},
		// No groups: no Impersonate-Group line at all.
		lines: []string{
			proxy,
			"Impersonate-Extra-Accesskeyid: " + carol.AccessKeyID,
			"Impersonate-Extra-Arn: " + carolARN,
			"Impersonate-Extra-Canonicalarn: " + carolARN,
			"Impersonate-Extra-Principalid: " + carol.UserID,
			"Impersonate-Uid: aws-iam-authenticator:444455556666:" + carol.UserID,
			"Impersonate-User: " + carolARN,
		},
	}

	tests := map[string]struct {
		identity string
		producer string
		want     want
	}{
		"mapRoles, assumed role, kube-iam-authz token":    {identity: harness.IdentityDeveloper, producer: harness.ProducerToken, want: developer},
		"mapRoles, assumed role, aws eks get-token":       {identity: harness.IdentityDeveloper, producer: harness.ProducerAWSCLI, want: developer},
		"mapAccounts, account only, kube-iam-authz token": {identity: harness.IdentityAccountOnly, producer: harness.ProducerToken, want: accountOnly},
		"mapAccounts, account only, aws eks get-token":    {identity: harness.IdentityAccountOnly, producer: harness.ProducerAWSCLI, want: accountOnly},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c.ResetRecorded(t)
			user := harness.KubeUser(tc.identity, tc.producer, "default")

			if got := whoami(t, c, "default", user); !reflect.DeepEqual(got, tc.want.user) {
				t.Errorf("kubectl auth whoami:\n got %+v\nwant %+v", got, tc.want.user)
			}
			rec := onlyRequest(t, c.Recorded(t), http.MethodPost, whoamiPath)
			if got := identityLines(rec); !reflect.DeepEqual(got, tc.want.lines) {
				t.Errorf("identity header lines received upstream:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tc.want.lines, "\n     "))
			}
			assertNothingOfTheClient(t, rec, c.IssuedTokens(t, user))
		})
	}
}
