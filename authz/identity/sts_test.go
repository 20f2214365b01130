package identity

import (
	"errors"
	"testing"
)

// Vectors from aws-iam-authenticator getIdentityFromSTSResponse (reference §7.4).
func TestFromSTS(t *testing.T) {
	const akid = "AKIAVVVVVVVVVVVAGAVA"
	tests := map[string]struct {
		arn, account, userID string
		want                 Identity
		wantError            bool
	}{
		"root": {
			arn: "arn:aws:iam::123456789012:root", account: "123456789012", userID: "123456789012",
			want: Identity{ARN: "arn:aws:iam::123456789012:root", CanonicalARN: "arn:aws:iam::123456789012:root", AccountID: "123456789012", UserID: "123456789012", PrincipalID: "123456789012", AccessKeyID: akid, Kind: KindRoot},
		},
		"user": {
			arn: "arn:aws:iam::123456789012:user/Alice", account: "123456789012", userID: "AIDAIYCCCMMMMMMMMGGDA",
			want: Identity{ARN: "arn:aws:iam::123456789012:user/Alice", CanonicalARN: "arn:aws:iam::123456789012:user/Alice", AccountID: "123456789012", UserID: "AIDAIYCCCMMMMMMMMGGDA", PrincipalID: "AIDAIYCCCMMMMMMMMGGDA", AccessKeyID: akid, Kind: KindUser},
		},
		"federated user keeps whole UserId": {
			arn: "arn:aws:sts::123456789012:federated-user/Alice", account: "123456789012", userID: "123456789012:Alice",
			want: Identity{ARN: "arn:aws:sts::123456789012:federated-user/Alice", CanonicalARN: "arn:aws:sts::123456789012:federated-user/Alice", AccountID: "123456789012", UserID: "123456789012:Alice", PrincipalID: "123456789012:Alice", AccessKeyID: akid, Kind: KindFederatedUser},
		},
		"assumed role": {
			arn: "arn:aws:sts::123456789012:assumed-role/Alice/session-name", account: "123456789012", userID: "AROAALICE:session-name",
			want: Identity{ARN: "arn:aws:sts::123456789012:assumed-role/Alice/session-name", CanonicalARN: "arn:aws:iam::123456789012:role/Alice", AccountID: "123456789012", UserID: "AROAALICE:session-name", PrincipalID: "AROAALICE", SessionName: "session-name", AccessKeyID: akid, Kind: KindAssumedRole},
		},
		"assumed role with three-part UserId": {arn: "arn:aws:sts::123456789012:assumed-role/Alice/x", account: "123456789012", userID: "not:vailid:userid", wantError: true},
		"assumed role with colon-less UserId": {arn: "arn:aws:sts::123456789012:assumed-role/Alice/x", account: "123456789012", userID: "AROAX", wantError: true},
		"UserId session differs from ARN":     {arn: "arn:aws:sts::123456789012:assumed-role/Alice/x", account: "123456789012", userID: "AROAX:y", wantError: true},
		"account differs from ARN":            {arn: "arn:aws:iam::123456789012:user/Alice", account: "999999999999", userID: "AIDA", wantError: true},
		"empty UserId for user":               {arn: "arn:aws:iam::123456789012:user/Alice", account: "123456789012", userID: "", wantError: true},
		"IAM user UserId with a session part": {arn: "arn:aws:iam::123456789012:user/Alice", account: "123456789012", userID: "AIDAALICE:someone-else", wantError: true},
		"root UserId that is not the account": {arn: "arn:aws:iam::123456789012:root", account: "123456789012", userID: "AIDAROOT", wantError: true},
		"invalid arn":                         {arn: "arn", account: "1000", userID: "userid", wantError: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := FromSTS(tc.arn, tc.account, tc.userID, akid)
			if tc.wantError {
				if !errors.Is(err, ErrInvalidARN) {
					t.Fatalf("FromSTS error = %v, want ErrInvalidARN", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromSTS unexpected error %v", err)
			}
			if got != tc.want {
				t.Errorf("FromSTS =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}
