package kubeclient

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

func TestConfig(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		kubeconfig, tokenFile string
		host, port            string
		wantErr               error
		wantHost              string
		wantTokenFile         string
		wantCAFile            string
	}{
		"kubeconfig wins over the pod": {
			kubeconfig: kubeconfig, tokenFile: "/t", host: "10.96.0.1", port: "443",
			wantHost: "https://127.0.0.1:6443",
		},
		"in a pod with the proxy's token file": {
			tokenFile: "/var/run/secrets/tokens/kube-iam-authz/token", host: "10.96.0.1", port: "443",
			wantHost: "https://10.96.0.1:443", wantTokenFile: "/var/run/secrets/tokens/kube-iam-authz/token", wantCAFile: InClusterCAFile,
		},
		"IPv6 service address": {
			tokenFile: "/t", host: "fd00::1", port: "443",
			wantHost: "https://[fd00::1]:443", wantTokenFile: "/t", wantCAFile: InClusterCAFile,
		},
		"outside a pod with a token file": {tokenFile: "/t", wantErr: rest.ErrNotInCluster},
		"outside a pod":                   {wantErr: rest.ErrNotInCluster},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KUBERNETES_SERVICE_HOST", tc.host)
			t.Setenv("KUBERNETES_SERVICE_PORT", tc.port)
			cfg, err := Config(tc.kubeconfig, tc.tokenFile)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.wantHost || cfg.BearerTokenFile != tc.wantTokenFile || cfg.TLSClientConfig.CAFile != tc.wantCAFile || cfg.Insecure {
				t.Errorf("config host=%q tokenFile=%q caFile=%q insecure=%v, want %q %q %q false",
					cfg.Host, cfg.BearerTokenFile, cfg.TLSClientConfig.CAFile, cfg.Insecure, tc.wantHost, tc.wantTokenFile, tc.wantCAFile)
			}
		})
	}
}

// TestNewClientsetRefusesInsecure: insecure-skip-tls-verify in a kubeconfig
// would hand the proxy's credential to whoever answers.
func TestNewClientsetRefusesInsecure(t *testing.T) {
	if _, err := NewClientset(&rest.Config{Host: "https://127.0.0.1:1", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}); !errors.Is(err, ErrInsecure) {
		t.Fatalf("err = %v, want ErrInsecure", err)
	}
}

// TestNewClientsetFollowsNoRedirect: a redirecting API server (or something
// in its place) gets one request; the target never sees the credential.
func TestNewClientsetFollowsNoRedirect(t *testing.T) {
	var targetHits, apiHits atomic.Int32
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
	}))
	defer target.Close()
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiHits.Add(1)
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	cs, err := NewClientset(&rest.Config{Host: api.URL, BearerToken: "secret", TLSClientConfig: rest.TLSClientConfig{Insecure: false, CAData: pemCert(api)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "aws-auth", metav1.GetOptions{}); err == nil {
		t.Fatal("a redirect answered the request")
	}
	if apiHits.Load() != 1 || targetHits.Load() != 0 {
		t.Errorf("API server hits %d, redirect target hits %d; want 1 and 0", apiHits.Load(), targetHits.Load())
	}
}

func pemCert(s *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}
