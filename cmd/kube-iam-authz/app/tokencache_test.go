package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil/stsfixture"
)

// cacheRun runs `token --cache` at now with home as the home directory.
func cacheRun(t *testing.T, home string, now time.Time, extra ...string) (execCredential, string) {
	t.Helper()
	args := append([]string{"--cluster-id", "prod", "--region", "us-west-2", "--cache"}, extra...)
	stdout, stderr, err := runTokenWith(t, args, now, func() (string, error) { return home, nil })
	if err != nil {
		t.Fatalf("token --cache: %v (stderr %q)", err, stderr)
	}
	return decodeOutput(t, stdout), stderr
}

func cacheFiles(t *testing.T, home string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(home, ".kube", "cache", "kube-iam-authz", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestTokenCacheFiles(t *testing.T) {
	home := awsTestEnv(t)
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	first, stderr := cacheRun(t, home, t0)
	if stderr != "" {
		t.Errorf("stderr %q", stderr)
	}
	if first.Status.ExpirationTimestamp != "2026-06-01T12:14:00Z" {
		t.Fatalf("expirationTimestamp %s", first.Status.ExpirationTimestamp)
	}
	files := cacheFiles(t, home)
	if len(files) != 1 {
		t.Fatalf("cache files %v, want one", files)
	}
	fi, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	di, err := os.Stat(filepath.Dir(files[0]))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("file %v, dir %v; want 0600, 0700", fi.Mode().Perm(), di.Mode().Perm())
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), stsfixture.ExampleSecretAccessKey) || !strings.Contains(string(raw), first.Status.Token) {
		t.Errorf("cache file holds a secret key or not the token: %s", raw)
	}
}

func TestTokenCacheReuseAndExpiry(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		at          time.Time
		args        []string
		profile     bool
		wantReuse   bool
		wantWarning string
	}{
		"reused 5 minutes later":              {at: t0.Add(5 * time.Minute), wantReuse: true},
		"reused until a minute before expiry": {at: t0.Add(13*time.Minute - time.Second), wantReuse: true},
		"fresh a minute before expiry":        {at: t0.Add(13 * time.Minute)},
		"fresh after expiry":                  {at: t0.Add(20 * time.Minute)},
		"fresh when the clock went back an hour": {
			at: t0.Add(-time.Hour), wantWarning: "expires implausibly late",
		},
		"other cluster, other entry": {at: t0.Add(time.Minute), args: []string{"--cluster-id", "staging"}},
		"other profile, other entry": {at: t0.Add(time.Minute), args: []string{"--profile", "x"}, profile: true},
		"other region, other entry":  {at: t0.Add(time.Minute), args: []string{"--region", "eu-west-1"}},
		"other access key, other entry": {
			at: t0.Add(time.Minute), args: []string{"--cluster-id", "prod"}, // same flags
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			home := awsTestEnv(t)
			first, _ := cacheRun(t, home, t0)
			if tc.profile {
				writeFile(t, filepath.Join(home, "credentials"),
					"[x]\naws_access_key_id = "+stsfixture.ExampleAccessKeyID+"\naws_secret_access_key = "+stsfixture.ExampleSecretAccessKey+"\n")
				t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "credentials"))
			}
			if strings.HasPrefix(name, "other access key") {
				t.Setenv("AWS_ACCESS_KEY_ID", "AKIAOTHERKEY00000000")
			}
			got, stderr := cacheRun(t, home, tc.at, tc.args...)
			if tc.wantWarning == "" && stderr != "" || !strings.Contains(stderr, tc.wantWarning) {
				t.Errorf("stderr %q, want warning %q", stderr, tc.wantWarning)
			}
			if reused := got.Status.Token == first.Status.Token; reused != tc.wantReuse {
				t.Errorf("reused = %v, want %v", reused, tc.wantReuse)
			}
			if tc.wantReuse {
				if got.Status.ExpirationTimestamp != first.Status.ExpirationTimestamp {
					t.Errorf("reused token with expirationTimestamp %s", got.Status.ExpirationTimestamp)
				}
				return
			}
			if want := tc.at.Add(14 * time.Minute).Format(time.RFC3339); got.Status.ExpirationTimestamp != want {
				t.Errorf("fresh token expirationTimestamp %s, want %s", got.Status.ExpirationTimestamp, want)
			}
			if _, err := parserAt(t, tc.at).Parse(got.Status.Token); err != nil {
				t.Errorf("fresh token: %v", err)
			}
		})
	}
}

func TestTokenCacheAPIVersionFollowsExecInfo(t *testing.T) {
	home := awsTestEnv(t)
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	first, _ := cacheRun(t, home, t0)
	t.Setenv("KUBERNETES_EXEC_INFO", `{"apiVersion":"client.authentication.k8s.io/v1"}`)
	again, _ := cacheRun(t, home, t0.Add(time.Minute))
	if again.Status.Token != first.Status.Token || again.APIVersion != execV1 {
		t.Errorf("reused = %v, apiVersion %s", again.Status.Token == first.Status.Token, again.APIVersion)
	}
}

// TestTokenCacheRefusals: any doubt about the cache gives a warning and a
// fresh token, never an error.
func TestTokenCacheRefusals(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		tamper      func(t *testing.T, home, file string)
		wantWarning string
		wantFixed   bool // the next run leaves a private, valid file behind
	}{
		"group-readable file": {
			tamper:      func(t *testing.T, _, file string) { chmod(t, file, 0o640) },
			wantWarning: "permissions 0640 are not private", wantFixed: true,
		},
		"world-writable file": {
			tamper:      func(t *testing.T, _, file string) { chmod(t, file, 0o602) },
			wantWarning: "permissions 0602 are not private", wantFixed: true,
		},
		"shared directory": {
			tamper:      func(t *testing.T, _, file string) { chmod(t, filepath.Dir(file), 0o755) },
			wantWarning: "token cache disabled: cache directory",
		},
		"garbage file": {
			tamper:      func(t *testing.T, _, file string) { writeFile(t, file, "not json") },
			wantWarning: "ignoring token cache", wantFixed: true,
		},
		"not a token": {
			tamper: func(t *testing.T, _, file string) {
				writeFile(t, file, `{"token":"hello","expirationTimestamp":"2026-06-01T12:14:00Z"}`)
			},
			wantWarning: "holds no token", wantFixed: true,
		},
		"implausible expiry": {
			tamper: func(t *testing.T, _, file string) {
				writeFile(t, file, `{"token":"k8s-aws-v1.aHR0cHM6","expirationTimestamp":"2030-01-01T00:00:00Z"}`)
			},
			wantWarning: "implausibly late", wantFixed: true,
		},
		"oversized file": {
			tamper:      func(t *testing.T, _, file string) { writeFile(t, file, strings.Repeat(" ", maxCacheFileBytes+1)) },
			wantWarning: "too large", wantFixed: true,
		},
		"symlink to another file": {
			tamper: func(t *testing.T, home, file string) {
				target := filepath.Join(home, "planted")
				writeFile(t, target, `{"token":"k8s-aws-v1.planted","expirationTimestamp":"2026-06-01T12:14:00Z"}`)
				if err := os.Remove(file); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, file); err != nil {
					t.Fatal(err)
				}
			},
			wantWarning: "ignoring token cache", wantFixed: true,
		},
		"cache path is a file": {
			tamper: func(t *testing.T, _, file string) {
				dir := filepath.Dir(file)
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				writeFile(t, dir, "")
			},
			wantWarning: "token cache disabled",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			home := awsTestEnv(t)
			first, _ := cacheRun(t, home, t0)
			files := cacheFiles(t, home)
			if len(files) != 1 {
				t.Fatalf("cache files %v", files)
			}
			tc.tamper(t, home, files[0])
			got, stderr := cacheRun(t, home, t0.Add(time.Minute))
			if !strings.Contains(stderr, tc.wantWarning) {
				t.Errorf("stderr %q lacks %q", stderr, tc.wantWarning)
			}
			if got.Status.Token == first.Status.Token || strings.Contains(got.Status.Token, "planted") {
				t.Errorf("the refused cache entry was used")
			}
			if _, err := parserAt(t, t0.Add(time.Minute)).Parse(got.Status.Token); err != nil {
				t.Errorf("fresh token: %v", err)
			}
			if tc.wantFixed {
				fi, err := os.Lstat(files[0])
				if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
					t.Errorf("cache file after the fresh run: %v, %v", fi, err)
				}
				again, stderr := cacheRun(t, home, t0.Add(2*time.Minute))
				if stderr != "" || again.Status.Token != got.Status.Token {
					t.Errorf("the rewritten entry is not reused (stderr %q)", stderr)
				}
			}
		})
	}
}

func TestTokenCacheNoHome(t *testing.T) {
	awsTestEnv(t)
	stdout, stderr, err := runTokenWith(t, []string{"--cluster-id", "prod", "--cache"}, time.Now(),
		func() (string, error) { return "", nil })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "token cache disabled: no home directory") {
		t.Errorf("stderr %q", stderr)
	}
	decodeOutput(t, stdout)
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
