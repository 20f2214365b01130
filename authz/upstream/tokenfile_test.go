package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func newTestFile(t *testing.T, path string) (*TokenFile, *prometheus.Registry, *bytes.Buffer, error) {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(zapcore.AddSync(logs)), zap.DebugLevel)
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewTokenFile(Options{Path: path, Logger: zap.New(core), Metrics: m, Interval: time.Hour})
	return f, reg, logs, err
}

func TestNewTokenFile(t *testing.T) {
	tests := map[string]struct {
		content   *string
		want      string
		wantError bool
	}{
		"plain":               {content: ptr("abc.def.ghi"), want: "abc.def.ghi"},
		"trailing newline":    {content: ptr("abc.def.ghi\n"), want: "abc.def.ghi"},
		"surrounding spaces":  {content: ptr("  abc \r\n"), want: "abc"},
		"missing":             {content: nil, wantError: true},
		"empty":               {content: ptr(""), wantError: true},
		"only whitespace":     {content: ptr(" \n\t"), wantError: true},
		"embedded newline":    {content: ptr("abc\ndef"), wantError: true},
		"embedded NUL":        {content: ptr("abc\x00def"), wantError: true},
		"larger than a bound": {content: ptr(strings.Repeat("a", maxTokenBytes+1)), wantError: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if tc.content != nil {
				if err := os.WriteFile(path, []byte(*tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			f, _, _, err := newTestFile(t, path)
			if tc.wantError {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("error = %v, want ErrInvalidToken", err)
				}
				if tc.content != nil && strings.Contains(err.Error(), strings.TrimSpace(*tc.content)) && strings.TrimSpace(*tc.content) != "" {
					t.Errorf("error quotes the file content: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.BearerToken(); got != tc.want {
				t.Errorf("BearerToken = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOptionsValidateReportsEverything(t *testing.T) {
	o := Options{Interval: -1}
	err := o.Validate()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 3 {
		t.Fatalf("Validate = %v, want 3 problems", err)
	}
}

func TestReloadKeepsLastGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	write(t, path, "first")
	f, reg, logs, err := newTestFile(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Reload of a deleted file = %v", err)
	}
	if got := f.BearerToken(); got != "first" {
		t.Errorf("after a failed read BearerToken = %q, want the last good token", got)
	}
	write(t, path, "")
	if err := f.Reload(); err == nil {
		t.Fatal("Reload of an empty file succeeded")
	}
	write(t, path, "second\n")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := f.BearerToken(); got != "second" {
		t.Errorf("BearerToken = %q, want second", got)
	}
	reads := mustVec(t, reg)
	if reads["success"] != 2 || reads["failure"] != 2 {
		t.Errorf("reads = %v, want 2 successes and 2 failures", reads)
	}
	for _, secret := range []string{"first", "second"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain the token %q", secret)
		}
	}
}

// TestRunFollowsAtomicWriterRotation simulates the kubelet's AtomicWriter:
// token -> ..data/token, ..data -> ..<timestamp>; a rotation writes a new
// timestamped directory, swaps ..data with a rename and deletes the old
// directory.
func TestRunFollowsAtomicWriterRotation(t *testing.T) {
	dir := t.TempDir()
	atomicWrite(t, dir, 0, "token-0")
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}
	f, _, _, err := newTestFile(t, filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for i := 1; i <= 20; i++ {
		want := fmt.Sprintf("token-%d", i)
		atomicWrite(t, dir, i, want)
		waitFor(t, func() bool { return f.BearerToken() == want }, "rotation to "+want)
	}
}

func atomicWrite(t *testing.T, dir string, gen int, content string) {
	t.Helper()
	tsDir := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", gen%60, gen)
	if err := os.Mkdir(filepath.Join(dir, tsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, tsDir, "token"), content)
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(tsDir, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustVec(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "kube_iam_authz_upstream_token_reads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["name"] == "default" {
				out[labels["result"]] = m.GetCounter().GetValue()
			}
		}
	}
	if n := testutil.CollectAndCount(reg, "kube_iam_authz_upstream_token_last_success_timestamp_seconds"); n != 1 {
		t.Errorf("last success gauge count = %d", n)
	}
	return out
}

func ptr(s string) *string { return &s }
