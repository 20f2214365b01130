package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// modulePath is the repository's root module.
const modulePath = "github.com/kube-iam-authz/kube-iam-authz"

// RepoFile returns the absolute path of rel (slash-separated, relative to the
// repository root), found by walking up from the test's working directory to the
// root module's go.mod. It fails the test when the file does not exist.
func RepoFile(t testing.TB, rel string) string {
	t.Helper()
	path, err := repoFile(rel)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return path
}

func repoFile(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isRootModule(filepath.Join(dir, "go.mod")) {
			path := filepath.Join(dir, filepath.FromSlash(rel))
			if _, err := os.Stat(path); err != nil {
				return "", err
			}
			return path, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func isRootModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module ")) == modulePath
		}
	}
	return false
}
