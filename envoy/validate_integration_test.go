//go:build integration

package envoy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestEnvoyValidatesReviewedConfigs runs the real Envoy's `--mode validate` on each
// reviewed config (rendered for loopback, so the certificate files exist): Envoy, not
// only our Go decoding, accepts every field.
func TestEnvoyValidatesReviewedConfigs(t *testing.T) {
	bin := harness.EnvoyPath(t)
	ca := harness.NewCA(t)
	cert := ca.Issue(t, "server", "localhost", "127.0.0.1")
	for _, file := range reviewedConfigs(t) {
		t.Run(file, func(t *testing.T) {
			cfg, _ := harness.RenderEnvoy(t, file, harness.RenderOptions{
				AuthzAddr: harness.FreeAddr(t), CA: ca, ServerCert: cert,
				// The stats listener too: Envoy validates every listener, beside
				// the SDS files the config reads.
				Stats: true,
			})
			path := filepath.Join(t.TempDir(), "envoy.json")
			if err := os.WriteFile(path, cfg, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", path, "--disable-hot-restart").CombinedOutput()
			if err != nil {
				t.Fatalf("envoy --mode validate: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "OK") {
				t.Fatalf("envoy --mode validate did not say OK:\n%s", out)
			}
		})
	}
}
