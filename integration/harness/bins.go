package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// EnvVarBin names the environment variable holding the directory of the built
// binaries (kube-iam-authz, sts-fake, apiserver-fake); `make integration` sets it to
// bin/ after building them.
const EnvVarBin = "KIA_BIN"

// Binary names under KIA_BIN and the make target that builds each.
const (
	BinAuthz     = "kube-iam-authz"
	BinSTSFake   = "sts-fake"
	BinAPIServer = "apiserver-fake"
	// BinKubeAPIServer is the real kube-apiserver (integration/kubeapiserver).
	BinKubeAPIServer = "kube-apiserver"
)

var binTargets = map[string]string{
	BinAuthz:         "make build",
	BinSTSFake:       "make build",
	BinAPIServer:     "make apiserver",
	BinKubeAPIServer: "make kube-apiserver",
}

// BinPath returns $KIA_BIN/name, failing the test with the make target to run when
// KIA_BIN is unset or the binary is missing: an end-to-end test never passes by not
// running.
func BinPath(t testing.TB, name string) string {
	t.Helper()
	path, err := binPath(name)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return path
}

func binPath(name string) (string, error) {
	dir := os.Getenv(EnvVarBin)
	target := binTargets[name]
	if target == "" {
		target = "make build"
	}
	if dir == "" {
		return "", fmt.Errorf("%s is not set; run `%s` and set %s=$(pwd)/bin (or use `make integration`)", EnvVarBin, target, EnvVarBin)
	}
	path := filepath.Join(dir, name)
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file (%v); run `%s`", path, err, target)
	}
	return path, nil
}
