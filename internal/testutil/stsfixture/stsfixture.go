// Package stsfixture holds the AWS fixtures shared by several packages'
// tests: the principals the STS stand-in (integration/stsfake) knows, their
// keys, the stand-in started over HTTPS, and AWS's documentation example key
// for tests that never reach STS. Only tests import it.
package stsfixture

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// Account is the AWS account of the fixture principals.
const Account = "111122223333"

// AWS's documentation example key pair. Tests that sign with the SDK or the
// CLI but never reach an STS that checks the signature use it (token
// generation, the token command's credential chain); it is not a real key.
const (
	ExampleAccessKeyID     = "AKIAIOSFODNN7EXAMPLE"
	ExampleSecretAccessKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// UserCredentials are alice's long-term keys (an IAM user). The secret holds
// '/', '+' and '=' so that signing and query encoding meet them.
func UserCredentials() stsfake.Credentials {
	return stsfake.Credentials{AccessKeyID: "AKIAUSEREXAMPLE00001", SecretAccessKey: "user/secret+key=0123"}
}

// RoleCredentials are the temporary keys of bob's session of role Dev, with
// a session token as STS issues them.
func RoleCredentials() stsfake.Credentials {
	return stsfake.Credentials{AccessKeyID: "ASIAROLEEXAMPLE00001", SecretAccessKey: "role/secret+key=0123", SessionToken: "FwoGZXIvYXdzEJr//////////wEaDH+session/token=="}
}

// Principals are the fixture principals in Account: alice, an IAM user
// (UserCredentials), then bob, a session of role Dev (RoleCredentials).
func Principals() []stsfake.Principal {
	return []stsfake.Principal{
		stsfake.IAMUser(Account, "alice", UserCredentials()),
		stsfake.AssumedRole(Account, "Dev", "bob", RoleCredentials()),
	}
}

// STS is the stand-in running over HTTPS, with its CA in a file for
// --sts-ca-file or sts.Options.CAFile.
type STS struct {
	Server  *stsfake.Server
	Running *stsfake.Running
	// URL is the endpoint (https://127.0.0.1:PORT).
	URL string
	// CAFile is the PEM file of the CA that signed its certificate.
	CAFile string
}

// Start starts the stand-in over HTTPS for principals (Principals() when
// none are given), on the clock now (time.Now when nil). It stops when the
// test ends.
func Start(t testing.TB, now func() time.Time, principals ...stsfake.Principal) *STS {
	t.Helper()
	if len(principals) == 0 {
		principals = Principals()
	}
	srv, err := stsfake.New(stsfake.Options{Principals: principals, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	run, err := srv.Start(stsfake.ServeOptions{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Close() })
	caFile := filepath.Join(t.TempDir(), "sts-ca.pem")
	if err := os.WriteFile(caFile, run.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &STS{Server: srv, Running: run, URL: run.URL, CAFile: caFile}
}
