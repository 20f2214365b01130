package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil"
)

func TestRunPrintsReadyLineAndServes(t *testing.T) {
	dir := t.TempDir()
	principals := filepath.Join(dir, "principals.yaml")
	if err := os.WriteFile(principals, []byte("principals:\n- {accessKeyId: AKIA1, secretAccessKey: s, account: '111122223333', user: alice}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--principals", principals, "--tls=false", "--latency", "1ms"}, out, io.Discard)
	}()

	ready := regexp.MustCompile(`^sts-fake ready url=(http://127\.0\.0\.1:\d+) ca= principals=1\n$`)
	deadline := time.Now().Add(10 * time.Second)
	var m []string
	for m == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line, got %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
		m = ready.FindStringSubmatch(out.String())
	}
	resp, err := http.Get(m[1] + "/_fake/stats")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("stats: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v after cancel", err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := map[string]struct {
		args      []string
		wantError string
	}{
		"no principals":      {args: []string{}, wantError: "--principals is required"},
		"ca-out without tls": {args: []string{"--principals", "p", "--tls=false", "--ca-out", "x"}, wantError: "--ca-out needs --tls"},
		"missing file":       {args: []string{"--principals", "/nonexistent/p.yaml"}, wantError: "no such file"},
		"unknown flag":       {args: []string{"--nope"}, wantError: "flag provided but not defined"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Errorf("run = %v, want %q", err, tc.wantError)
			}
		})
	}
}
