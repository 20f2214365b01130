package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProxyTokenAuthenticator(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]struct {
		static    string
		fileBody  *string // nil: no token file configured
		missing   bool    // configure a token file that does not exist
		presented string
		wantOK    bool
		wantErr   error
	}{
		"static token accepted":                  {static: "s3cret", presented: "s3cret", wantOK: true},
		"wrong static token rejected":            {static: "s3cret", presented: "s3cret2"},
		"prefix of static token rejected":        {static: "s3cret", presented: "s3c"},
		"empty token never matches empty static": {presented: "", fileBody: ptr("")},
		"file token accepted":                    {fileBody: ptr("filetok"), presented: "filetok", wantOK: true},
		"file token trailing newline trimmed":    {fileBody: ptr("filetok\n"), presented: "filetok", wantOK: true},
		"file token with newline not accepted verbatim": {
			fileBody: ptr("filetok\n"), presented: "filetok\n",
		},
		"static still valid beside a file":           {static: "s3cret", fileBody: ptr("filetok"), presented: "s3cret", wantOK: true},
		"oversized token file fails closed":          {fileBody: ptr(strings.Repeat("a", maxTokenFileBytes+1)), presented: "presented-secret", wantErr: errTokenFile},
		"missing token file fails closed with error": {missing: true, presented: "presented-secret", wantErr: errTokenFile},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := NewOptions()
			o.ProxyToken = tc.static
			switch {
			case tc.missing:
				o.ProxyTokenFile = filepath.Join(dir, "does-not-exist")
			case tc.fileBody != nil:
				o.ProxyTokenFile = filepath.Join(t.TempDir(), "token")
				writeFile(t, o.ProxyTokenFile, *tc.fileBody)
			}
			a := newProxyTokenAuthenticator(o)
			resp, ok, err := a.AuthenticateToken(context.Background(), tc.presented)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), tc.presented) {
				t.Errorf("error %q contains the presented token", err)
			}
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if ok && resp.User.GetName() != DefaultProxyUser {
				t.Errorf("user = %q, want %q", resp.User.GetName(), DefaultProxyUser)
			}
		})
	}
}

func TestProxyTokenFileRotation(t *testing.T) {
	o := NewOptions()
	o.ProxyTokenFile = filepath.Join(t.TempDir(), "token")
	writeFile(t, o.ProxyTokenFile, "old-token")
	a := newProxyTokenAuthenticator(o)

	steps := []struct {
		write     string
		presented string
		wantOK    bool
	}{
		{presented: "old-token", wantOK: true},
		{write: "new-token", presented: "old-token", wantOK: false},
		{presented: "new-token", wantOK: true},
		{write: "newer", presented: "new-token", wantOK: false},
	}
	for i, s := range steps {
		if s.write != "" {
			writeFile(t, o.ProxyTokenFile, s.write)
		}
		_, ok, err := a.AuthenticateToken(context.Background(), s.presented)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if ok != s.wantOK {
			t.Errorf("step %d: presenting %q: ok = %v, want %v", i, s.presented, ok, s.wantOK)
		}
	}
}

func TestProxyUserIsNotShared(t *testing.T) {
	o := NewOptions()
	o.ProxyToken = "t"
	a := newProxyTokenAuthenticator(o)
	first, _, _ := a.AuthenticateToken(context.Background(), "t")
	first.User.GetGroups()[0] = "system:masters"
	second, _, _ := a.AuthenticateToken(context.Background(), "t")
	if got := second.User.GetGroups()[0]; got == "system:masters" {
		t.Fatalf("mutating one response's groups leaked into the next: %q", got)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }
