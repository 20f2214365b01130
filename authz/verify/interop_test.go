package verify_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil/stsfixture"
)

const (
	account    = stsfixture.Account
	ourCluster = "cluster-a"
)

var (
	userCreds = stsfixture.UserCredentials()
	roleCreds = stsfixture.RoleCredentials()
)

// Real producers' tokens verify end to end: the strict parser, the STS
// client over HTTPS to the stand-in (endpoint override, its CA trusted),
// and identity.FromSTS.
func TestInterop(t *testing.T) {
	principals := stsfixture.Principals()
	user, role := principals[0], principals[1]
	standIn := stsfixture.Start(t, nil, principals...)
	fake, run, caFile := standIn.Server, standIn.Running, standIn.CAFile
	parser, err := token.NewParser(token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := sts.New(sts.Options{Endpoint: run.URL, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	v := verify.New(parser, client)

	userID := identity.Identity{ARN: user.ARN, CanonicalARN: user.ARN, AccountID: account, UserID: user.UserID, PrincipalID: user.UserID, AccessKeyID: userCreds.AccessKeyID, Kind: identity.KindUser}
	roleID := identity.Identity{ARN: role.ARN, CanonicalARN: "arn:aws:iam::111122223333:role/Dev", AccountID: account, UserID: role.UserID, PrincipalID: role.UserID[:21], SessionName: "bob", AccessKeyID: roleCreds.AccessKeyID, Kind: identity.KindAssumedRole}

	tests := map[string]struct {
		producer     string // awscli, sdk or literal
		creds        stsfake.Credentials
		region       string
		signCluster  string
		literal      string
		want         identity.Identity
		wantRegion   string
		wantClass    error
		wantSTSCalls int64
	}{
		"awscli global, IAM user":            {producer: "awscli", creds: userCreds, want: userID, wantRegion: "global", wantSTSCalls: 1},
		"awscli global, role session":        {producer: "awscli", creds: roleCreds, want: roleID, wantRegion: "global", wantSTSCalls: 1},
		"awscli eu-west-1, IAM user":         {producer: "awscli", creds: userCreds, region: "eu-west-1", want: userID, wantRegion: "eu-west-1", wantSTSCalls: 1},
		"awscli eu-west-1, role session":     {producer: "awscli", creds: roleCreds, region: "eu-west-1", want: roleID, wantRegion: "eu-west-1", wantSTSCalls: 1},
		"sdk us-east-1, IAM user":            {producer: "sdk", creds: userCreds, region: "us-east-1", want: userID, wantRegion: "us-east-1", wantSTSCalls: 1},
		"sdk ap-southeast-2, role session":   {producer: "sdk", creds: roleCreds, region: "ap-southeast-2", want: roleID, wantRegion: "ap-southeast-2", wantSTSCalls: 1},
		"awscli, signed for another cluster": {producer: "awscli", creds: userCreds, region: "eu-west-1", signCluster: "cluster-b", wantClass: sts.ErrUnauthenticated, wantSTSCalls: 1},
		"sdk, signed for another cluster":    {producer: "sdk", creds: roleCreds, region: "eu-west-1", signCluster: "cluster-b", wantClass: sts.ErrUnauthenticated, wantSTSCalls: 1},
		"malformed, never sent":              {producer: "literal", literal: "k8s-aws-v1.aHR0cHM6Ly9leGFtcGxlLmNvbS8", wantClass: token.ErrMalformed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fake.ResetStats()
			signCluster := tc.signCluster
			if signCluster == "" {
				signCluster = ourCluster
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var tok string
			switch tc.producer {
			case "awscli":
				tok, err = stsfake.AWSCLIToken(ctx, t.TempDir(), tc.creds, tc.region, signCluster)
				if errors.Is(err, stsfake.ErrNoAWSCLI) {
					t.Skip(err)
				}
			case "sdk":
				tok, err = stsfake.SDKPresignToken(ctx, tc.creds, tc.region, signCluster)
			default:
				tok = tc.literal
			}
			if err != nil {
				t.Fatal(err)
			}

			got, err := v.Verify(ctx, tok, ourCluster)
			for _, class := range []error{token.ErrMalformed, sts.ErrUnauthenticated, sts.ErrThrottled, sts.ErrUnavailable} {
				if is := errors.Is(err, class); is != (class == tc.wantClass) {
					t.Fatalf("errors.Is(%v, %v) = %v, want %v", err, class, is, class == tc.wantClass)
				}
			}
			stats := fake.Stats()
			if stats.Total != tc.wantSTSCalls {
				t.Errorf("stand-in received %d requests, want %d", stats.Total, tc.wantSTSCalls)
			}
			for _, id := range stats.ClusterIDs {
				if id != ourCluster {
					t.Errorf("stand-in saw x-k8s-aws-id %q, want only ours (%q)", id, ourCluster)
				}
			}
			if tc.wantClass != nil {
				return
			}
			if got.Identity != tc.want {
				t.Errorf("identity =\n%+v\nwant\n%+v", got.Identity, tc.want)
			}
			if got.STSRegion != tc.wantRegion {
				t.Errorf("STS region = %q, want %q", got.STSRegion, tc.wantRegion)
			}
			raw, _ := stsfake.DecodeToken(tok)
			u, _ := url.Parse(raw)
			signedAt, _ := time.Parse("20060102T150405Z", u.Query().Get("X-Amz-Date"))
			if want := signedAt.Add(15 * time.Minute); !got.Expiry.Equal(want) {
				t.Errorf("expiry = %s, want X-Amz-Date + 15m = %s", got.Expiry, want)
			}
		})
	}
}
