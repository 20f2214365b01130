package verify

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

type fakeParser struct {
	p     *token.Presigned
	err   error
	calls int
	got   string
}

func (f *fakeParser) Parse(tok string) (*token.Presigned, error) {
	f.calls++
	f.got = tok
	return f.p, f.err
}

type fakeSTS struct {
	caller       sts.Caller
	err          error
	calls        int
	gotPresigned *token.Presigned
	gotClusterID string
}

func (f *fakeSTS) GetCallerIdentity(_ context.Context, p *token.Presigned, clusterID string) (sts.Caller, error) {
	f.calls++
	f.gotPresigned, f.gotClusterID = p, clusterID
	return f.caller, f.err
}

func TestVerify(t *testing.T) {
	signedAt := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	presigned := &token.Presigned{
		URL:  &url.URL{Scheme: "https", Host: "sts.eu-west-1.amazonaws.com", Path: "/"},
		Host: "sts.eu-west-1.amazonaws.com", Region: "eu-west-1", RegionLabel: "eu-west-1",
		AccessKeyID: "ASIAEXAMPLE000000001", SignedAt: signedAt, Expiry: signedAt.Add(token.Validity),
	}
	const account = "111122223333"
	role := sts.Caller{ARN: "arn:aws:sts::111122223333:assumed-role/Dev/alice", Account: account, UserID: "AROAEXAMPLE:alice"}
	throttled := &sts.ThrottledError{RetryAfter: 3 * time.Second, Status: 400, Code: "Throttling"}

	tests := map[string]struct {
		parseErr       error
		parserNil      bool
		caller         sts.Caller
		stsErr         error
		want           Result
		wantClass      error
		wantNotWrapped error
		wantSTSCalls   int
		wantThrottled  *sts.ThrottledError
	}{
		"assumed role": {
			caller: role, wantSTSCalls: 1,
			want: Result{
				Identity: identity.Identity{
					ARN: role.ARN, CanonicalARN: "arn:aws:iam::111122223333:role/Dev", AccountID: account,
					UserID: "AROAEXAMPLE:alice", PrincipalID: "AROAEXAMPLE", SessionName: "alice",
					AccessKeyID: "ASIAEXAMPLE000000001", Kind: identity.KindAssumedRole,
				},
				Expiry: signedAt.Add(15 * time.Minute), STSRegion: "eu-west-1", Fingerprint: token.Fingerprint("k8s-aws-v1.tok"),
			},
		},
		"iam user": {
			caller: sts.Caller{ARN: "arn:aws:iam::111122223333:user/bob", Account: account, UserID: "AIDAEXAMPLE"}, wantSTSCalls: 1,
			want: Result{
				Identity: identity.Identity{
					ARN: "arn:aws:iam::111122223333:user/bob", CanonicalARN: "arn:aws:iam::111122223333:user/bob", AccountID: account,
					UserID: "AIDAEXAMPLE", PrincipalID: "AIDAEXAMPLE", AccessKeyID: "ASIAEXAMPLE000000001", Kind: identity.KindUser,
				},
				Expiry: signedAt.Add(15 * time.Minute), STSRegion: "eu-west-1", Fingerprint: token.Fingerprint("k8s-aws-v1.tok"),
			},
		},
		"malformed token costs no STS call":    {parseErr: &token.FormatError{Rule: "prefix", Detail: "x"}, wantClass: token.ErrMalformed},
		"bare parser error is still malformed": {parseErr: errors.New("boom"), wantClass: token.ErrMalformed},
		"parser returns nothing":               {parserNil: true, wantClass: token.ErrMalformed},
		"STS rejects":                          {stsErr: &sts.Error{Class: sts.ErrUnauthenticated, Reason: "rejected", Status: 403, Code: "SignatureDoesNotMatch"}, wantClass: sts.ErrUnauthenticated, wantSTSCalls: 1},
		"STS throttles":                        {stsErr: throttled, wantClass: sts.ErrThrottled, wantThrottled: throttled, wantSTSCalls: 1},
		"STS unavailable":                      {stsErr: &sts.Error{Class: sts.ErrUnavailable, Reason: "timeout"}, wantClass: sts.ErrUnavailable, wantSTSCalls: 1},
		"unclassified STS error":               {stsErr: errors.New("surprise"), wantClass: sts.ErrUnavailable, wantSTSCalls: 1},
		"unparseable ARN is untrusted":         {caller: sts.Caller{ARN: "arn:aws:not-an-identity", Account: account, UserID: "x"}, wantClass: sts.ErrUnavailable, wantNotWrapped: identity.ErrInvalidARN, wantSTSCalls: 1},
		"account contradicts ARN":              {caller: sts.Caller{ARN: role.ARN, Account: "999999999999", UserID: role.UserID}, wantClass: sts.ErrUnavailable, wantNotWrapped: identity.ErrInvalidARN, wantSTSCalls: 1},
		"UserId contradicts ARN session":       {caller: sts.Caller{ARN: role.ARN, Account: account, UserID: "AROAEXAMPLE:mallory"}, wantClass: sts.ErrUnavailable, wantNotWrapped: identity.ErrInvalidARN, wantSTSCalls: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			parser := &fakeParser{p: presigned, err: tc.parseErr}
			if tc.parseErr != nil || tc.parserNil {
				parser.p = nil
			}
			stsFake := &fakeSTS{caller: tc.caller, err: tc.stsErr}
			got, err := New(parser, stsFake).Verify(context.Background(), "k8s-aws-v1.tok", "cluster-a")

			for _, class := range []error{token.ErrMalformed, sts.ErrUnauthenticated, sts.ErrThrottled, sts.ErrUnavailable} {
				if is := errors.Is(err, class); is != (class == tc.wantClass) {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, class, is, class == tc.wantClass)
				}
			}
			if tc.wantNotWrapped != nil && errors.Is(err, tc.wantNotWrapped) {
				t.Errorf("err = %v wraps %v", err, tc.wantNotWrapped)
			}
			if tc.wantThrottled != nil {
				var thr *sts.ThrottledError
				if !errors.As(err, &thr) || thr != tc.wantThrottled {
					t.Errorf("err = %v, want the STS client's *ThrottledError", err)
				}
			}
			if got != tc.want {
				t.Errorf("Verify() =\n%+v\nwant\n%+v", got, tc.want)
			}
			if parser.calls != 1 || parser.got != "k8s-aws-v1.tok" {
				t.Errorf("parser called %d times with %q", parser.calls, parser.got)
			}
			if stsFake.calls != tc.wantSTSCalls {
				t.Errorf("STS calls = %d, want %d", stsFake.calls, tc.wantSTSCalls)
			}
			if stsFake.calls > 0 && (stsFake.gotPresigned != presigned || stsFake.gotClusterID != "cluster-a") {
				t.Errorf("STS got %p %q, want the parsed token and our cluster id", stsFake.gotPresigned, stsFake.gotClusterID)
			}
		})
	}
}
