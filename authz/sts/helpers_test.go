package sts

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

const (
	testAccount = "111122223333"
	ourCluster  = "cluster-a"
)

var (
	userCreds = stsfake.Credentials{AccessKeyID: "AKIAUSEREXAMPLE00001", SecretAccessKey: "user/secret+key"}
	roleCreds = stsfake.Credentials{AccessKeyID: "ASIAROLEEXAMPLE00001", SecretAccessKey: "role/secret+key", SessionToken: "session/token+=="}
)

func principals() []stsfake.Principal {
	return []stsfake.Principal{
		stsfake.IAMUser(testAccount, "alice", userCreds),
		stsfake.AssumedRole(testAccount, "Dev", "bob", roleCreds),
	}
}

// standIn is a running stsfake over HTTPS with its CA written to a file.
type standIn struct {
	srv    *stsfake.Server
	run    *stsfake.Running
	caFile string
}

func startStandIn(t testing.TB, now func() time.Time) *standIn {
	t.Helper()
	srv, err := stsfake.New(stsfake.Options{Principals: principals(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	run, err := srv.Start(stsfake.ServeOptions{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Close() })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, run.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &standIn{srv: srv, run: run, caFile: caFile}
}

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
