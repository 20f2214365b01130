package sts

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil/stsfixture"
)

const (
	testAccount = stsfixture.Account
	ourCluster  = "cluster-a"
)

// The fixture principals and their keys (internal/testutil/stsfixture), under short
// names.
var (
	userCreds = stsfixture.UserCredentials()
	roleCreds = stsfixture.RoleCredentials()
)

// signed makes a token with the SDK signer and turns it into the Presigned
// the token parser would return (the parser itself is tested in package
// token; here only the fields the client uses matter).
func signed(t testing.TB, c stsfake.Credentials, host, clusterID string, at time.Time) *token.Presigned {
	t.Helper()
	tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: c, Host: host, ClusterID: clusterID, SignedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stsfake.DecodeToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	return presignedFromURL(t, raw)
}

func presignedFromURL(t testing.TB, raw string) *token.Presigned {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(scope) != 5 {
		t.Fatalf("credential scope %q", q.Get("X-Amz-Credential"))
	}
	at, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		t.Fatal(err)
	}
	label := scope[2]
	if u.Host == "sts.amazonaws.com" {
		label = "global"
	}
	return &token.Presigned{URL: u, Host: u.Host, Region: scope[2], RegionLabel: label,
		AccessKeyID: scope[0], SignedAt: at, Expiry: at.Add(token.Validity)}
}

// wantClass checks that err wraps exactly the expected sentinel (nil for
// success).
func wantClass(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("err = %v, want success", err)
		}
		return
	}
	for _, s := range []error{ErrUnauthenticated, ErrThrottled, ErrUnavailable} {
		if got := errors.Is(err, s); got != (s == want) {
			t.Fatalf("errors.Is(%v, %v) = %v, want %v", err, s, got, s == want)
		}
	}
}

// wantNoLeak checks that an error says nothing of the presigned URL.
func wantNoLeak(t *testing.T, err error, p *token.Presigned) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	q := p.URL.Query()
	for _, secret := range []string{p.URL.RawQuery, q.Get("X-Amz-Signature"), q.Get("X-Amz-Security-Token"), q.Get("X-Amz-Credential"), "X-Amz-", "https://" + p.Host} {
		if secret != "" && strings.Contains(msg, secret) {
			t.Errorf("error %q contains %q", msg, secret)
		}
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
