package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/apiserver/server"
)

// beMainEnv makes the test binary act as apiserver-fake, so the real
// main (flags, ready line, signal handling) is tested without a second
// build of the heavy dependency tree.
const beMainEnv = "APISERVER_FAKE_BE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(beMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		args       []string
		wantErr    []string
		wantGroups []string
		wantGrants []string
		wantDeny   []string
		wantMode   string
	}{
		"minimal": {
			args:       []string{"--cert-dir", "d", "--proxy-token", "t"},
			wantGroups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-iam-authz"},
			wantGrants: []string{server.GrantImpersonate},
			wantMode:   server.ModeClassic,
		},
		"list flags replace defaults, repeat and split on commas": {
			args: []string{"--cert-dir", "d", "--proxy-token-file", tokenFile,
				"--proxy-group", "a,b", "--proxy-group", "c",
				"--proxy-grant", "user-info", "--impersonation-mode", "constrained",
				"--deny-user", "mallory", "--deny-user", "eve"},
			wantGroups: []string{"a", "b", "c"},
			wantGrants: []string{server.GrantUserInfo},
			wantDeny:   []string{"mallory", "eve"},
			wantMode:   server.ModeConstrained,
		},
		"every problem reported": {
			args:    []string{"--impersonation-mode", "x", "--proxy-grant", "root", "--record-capacity", "0"},
			wantErr: []string{"cert dir", "proxy token", `mode "x"`, `grant "root"`, "record capacity"},
		},
		"unknown flag": {
			args:    []string{"--cert-dir", "d", "--proxy-token", "t", "--nope"},
			wantErr: []string{"flag provided but not defined"},
		},
		"stray argument": {
			args:    []string{"--cert-dir", "d", "--proxy-token", "t", "extra"},
			wantErr: []string{"unexpected arguments"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q missing %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.ProxyGroups, tc.wantGroups) || !slices.Equal(o.ProxyGrants, tc.wantGrants) ||
				!slices.Equal(o.DenyUsers, tc.wantDeny) || o.ImpersonationMode != tc.wantMode {
				t.Errorf("got groups %q grants %q deny %q mode %q", o.ProxyGroups, o.ProxyGrants, o.DenyUsers, o.ImpersonationMode)
			}
		})
	}
}

// TestBinaryReadyLineAndSIGTERM runs main as a child process: it prints
// the ready line, serves the recorder, and exits 0 on SIGTERM.
func TestBinaryReadyLineAndSIGTERM(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0],
		"--cert-dir", filepath.Join(dir, "certs"),
		"--listen", "127.0.0.1:0",
		"--record-listen", "127.0.0.1:0",
		"--proxy-token", "bin-token")
	cmd.Env = append(os.Environ(), beMainEnv+"=1")
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // already exited on the happy path

	lineCh := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lineCh <- line
	}()
	var line string
	select {
	case line = <-lineCh:
	case <-ctx.Done():
		t.Fatal("no ready line")
	}
	fields := strings.Fields(line)
	if len(fields) != 6 || fields[0] != "apiserver-fake" || fields[1] != "ready" || !strings.HasPrefix(fields[2], "https://127.0.0.1:") {
		t.Fatalf("ready line = %q", line)
	}
	base := fields[2]
	record := strings.TrimPrefix(fields[3], "record=")
	caFile := strings.TrimPrefix(fields[4], "ca=")
	if fields[5] != "mode=classic" {
		t.Errorf("mode field = %q", fields[5])
	}

	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()

	req, _ := http.NewRequest(http.MethodGet, base+"/apis", nil)
	req.Header.Set("Authorization", "Bearer bin-token")
	req.Header.Add("Impersonate-User", "alice")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /apis as alice: %d", resp.StatusCode)
	}

	resp, err = http.Get(record + "/requests?path=/apis")
	if err != nil {
		t.Fatal(err)
	}
	var got server.RequestsResponse
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Requests) != 1 || got.Requests[0].User == nil || got.Requests[0].User.Username != "alice" {
		t.Fatalf("recorded /apis requests = %+v", got.Requests)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v (want status 0)", err)
	}
}
