package app

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHealthcheckOptionsValidate(t *testing.T) {
	tests := map[string]struct {
		opts    healthcheckOptions
		wantErr []string
	}{
		"defaults":         {opts: healthcheckOptions{URL: defaultHealthcheckURL, Timeout: defaultHealthcheckTimeout}},
		"https with CA":    {opts: healthcheckOptions{URL: "https://127.0.0.1:9443/x", CAFile: "ca.pem", Timeout: time.Second}},
		"no scheme":        {opts: healthcheckOptions{URL: "127.0.0.1:9090/readyz", Timeout: time.Second}, wantErr: []string{"--url"}},
		"ftp":              {opts: healthcheckOptions{URL: "ftp://h/x", Timeout: time.Second}, wantErr: []string{"--url"}},
		"CA on plain http": {opts: healthcheckOptions{URL: "http://h/x", CAFile: "ca.pem", Timeout: time.Second}, wantErr: []string{"--ca-file"}},
		"every problem":    {opts: healthcheckOptions{URL: "", Timeout: 0}, wantErr: []string{"--url", "--timeout"}},
		"timeout too long": {opts: healthcheckOptions{URL: "http://h/x", Timeout: time.Hour}, wantErr: []string{"--timeout"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.opts.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors about %v", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %s", err, w)
				}
			}
		})
	}
}

func TestHealthcheck(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/notready", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: mapping not loaded", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/readyz", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	plain := httptest.NewServer(mux)
	defer plain.Close()
	secure := httptest.NewTLSServer(mux)
	defer secure.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := map[string]struct {
		opts    healthcheckOptions
		wantErr string // empty: healthy
	}{
		"200":                      {opts: healthcheckOptions{URL: plain.URL + "/readyz"}},
		"503 is unhealthy":         {opts: healthcheckOptions{URL: plain.URL + "/notready"}, wantErr: "503 not ready: mapping not loaded"},
		"redirect is not followed": {opts: healthcheckOptions{URL: plain.URL + "/redirect"}, wantErr: "answered 302"},
		"timeout":                  {opts: healthcheckOptions{URL: plain.URL + "/slow", Timeout: 200 * time.Millisecond}, wantErr: "unhealthy"},
		"https with its CA":        {opts: healthcheckOptions{URL: secure.URL + "/readyz", CAFile: caFile}},
		"https without its CA":     {opts: healthcheckOptions{URL: secure.URL + "/readyz"}, wantErr: "certificate"},
		"nothing listening":        {opts: healthcheckOptions{URL: "http://127.0.0.1:1/readyz"}, wantErr: "unhealthy"},
		"CA file missing":          {opts: healthcheckOptions{URL: secure.URL + "/readyz", CAFile: filepath.Join(t.TempDir(), "none.pem")}, wantErr: "--ca-file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.opts.Timeout == 0 {
				tc.opts.Timeout = 2 * time.Second
			}
			var out bytes.Buffer
			err := runHealthcheck(context.Background(), tc.opts, &out)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("runHealthcheck() = %v, want healthy", err)
			case tc.wantErr == "" && !strings.Contains(out.String(), "healthy"):
				t.Errorf("output %q, want a healthy line", out.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("runHealthcheck() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestHealthcheckExitCode runs the command as the container runtime does.
func TestHealthcheckExitCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"healthcheck", "--url", srv.URL + "/readyz"}, Streams{In: strings.NewReader(""), Out: &stdout, Err: &stderr})
	if code != 1 || !strings.Contains(stderr.String(), "503") {
		t.Errorf("exit %d, stderr %q: want 1 and the status", code, stderr.String())
	}
}
