package harness

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubectlTimeout bounds one kubectl run (exec plugin included).
const kubectlTimeout = 60 * time.Second

// KubectlResult is what one kubectl run printed and how it exited.
type KubectlResult struct {
	Stdout   string
	Stderr   string
	ExitCode int
}

// KubectlPath returns kubectl from PATH, skipping the test when it is absent: the
// real client is the point of these tests, and no stand-in is faithful enough to
// replace it.
func KubectlPath(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skipf("kubectl is not installed (%v): the end-to-end tests drive the real client", err)
	}
	return path
}

// clientEnv is the environment kubectl and its exec plugins run in: the test's own
// environment minus every AWS_* variable, KUBECONFIG and HOME, plus an isolated
// HOME with empty AWS config files, so no developer's credentials, profiles or
// kubeconfig leak into a test and no SDK reaches for the instance metadata service.
func clientEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AWS_") || name == "HOME" || name == "KUBECONFIG" || name == "KUBECACHEDIR" {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+home,
		"AWS_CONFIG_FILE="+filepath.Join(home, ".aws", "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, ".aws", "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	)
}

// newClientHome makes the isolated HOME of clientEnv.
func newClientHome(t testing.TB) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatalf("harness: %v", err)
	}
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(home, ".aws", f), nil, 0o600); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	return home
}

// runKubectl runs kubectl with the kubeconfig and environment given. A non-zero exit
// is a result, not a test failure; failing to start kubectl at all is.
func runKubectl(t testing.TB, kubectl, kubeconfig string, env []string, args ...string) KubectlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	full := append([]string{"--kubeconfig", kubeconfig, "--request-timeout", "30s"}, args...)
	cmd := exec.CommandContext(ctx, kubectl, full...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := KubectlResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		t.Fatalf("harness: kubectl %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("harness: kubectl %s: no answer within %s; stderr:\n%s", strings.Join(args, " "), kubectlTimeout, res.Stderr)
	}
	return res
}
