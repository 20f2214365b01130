package securitylint

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImageRunsAsNonRootOnAMinimalBase reads the Dockerfile: every stage that ships
// (every stage not used only to build) starts from distroless static (no shell, no
// package manager, no libc) and switches to a non-zero numeric user, and the binaries
// are built static (CGO_ENABLED=0).
func TestImageRunsAsNonRootOnAMinimalBase(t *testing.T) {
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type stage struct {
		name, base string
		user       string
		line       int
	}
	var stages []*stage
	var cgoOff bool
	from := regexp.MustCompile(`(?i)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if m := from.FindStringSubmatch(line); m != nil {
			stages = append(stages, &stage{base: m[1], name: m[2], line: n})
			continue
		}
		if len(stages) == 0 {
			continue
		}
		cur := stages[len(stages)-1]
		if u, ok := strings.CutPrefix(line, "USER "); ok {
			cur.user = strings.TrimSpace(u)
		}
		if strings.Contains(line, "CGO_ENABLED=0") {
			cgoOff = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	shipped := 0
	for _, s := range stages {
		if strings.HasPrefix(s.name, "build") {
			continue
		}
		shipped++
		if !strings.HasPrefix(s.base, "gcr.io/distroless/static") || !strings.Contains(s.base, "nonroot") {
			t.Errorf("Dockerfile:%d: stage %s ships on %s, want gcr.io/distroless/static...:nonroot", s.line, s.name, s.base)
		}
		uid, _, _ := strings.Cut(s.user, ":")
		if s.user == "" || uid == "0" || uid == "root" || !regexp.MustCompile(`^[0-9]+$`).MatchString(uid) {
			t.Errorf("Dockerfile:%d: stage %s runs as %q, want a non-zero numeric USER", s.line, s.name, s.user)
		}
	}
	if shipped == 0 {
		t.Error("no shipped stage found")
	}
	if !cgoOff {
		t.Error("binaries are not built with CGO_ENABLED=0 (static, for a base without libc)")
	}
}

// TestDependenciesArePinned: go.mod has no replace directive pointing at a local
// path or a fork, go.sum exists (go mod verify in `make lint` checks it), and the
// Makefile installs every tool at a fixed version, never @latest.
func TestDependenciesArePinned(t *testing.T) {
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	requires := 0
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "replace") {
			t.Errorf("go.mod:%d: %s: dependencies come from the module proxy at pinned versions", i+1, strings.TrimSpace(line))
		}
		if len(f) >= 2 && strings.HasPrefix(f[1], "v") && strings.Contains(f[0], ".") {
			requires++
		}
	}
	if requires == 0 {
		t.Error("go.mod requires nothing?")
	}
	checkTestModules(t)
	if _, err := os.Stat("../../go.sum"); err != nil {
		t.Errorf("go.sum: %v", err)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(mk), "\n") {
		if strings.Contains(line, "@latest") || (strings.Contains(line, "pip install") && !strings.Contains(line, "==")) {
			t.Errorf("Makefile:%d installs an unpinned tool: %s", i+1, strings.TrimSpace(line))
		}
	}
}

// ownModule is this repository's module path.
const ownModule = "github.com/kube-iam-authz/kube-iam-authz"

// checkTestModules: the test-only modules under integration/ (the API-server
// stand-in, the differential test against aws-iam-authenticator) may replace
// exactly one thing, this repository's own module, and only with the
// repository itself (a relative path to the root), so that they test the
// code in this tree. Any other replace, a replace block, or one pointing
// elsewhere (a fork, another directory) is an error: their dependencies come
// from the module proxy at pinned versions like the root module's.
func checkTestModules(t *testing.T) {
	t.Helper()
	mods, err := filepath.Glob("../*/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) == 0 {
		t.Fatal("no test-only modules found under integration/")
	}
	for _, mod := range mods {
		data, err := os.ReadFile(mod)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "replace" {
				continue
			}
			where := fmt.Sprintf("%s:%d: %s", strings.TrimPrefix(mod, "../"), i+1, strings.TrimSpace(line))
			if len(f) != 4 || f[1] != ownModule || f[2] != "=>" {
				t.Errorf("%s: a test module may only replace %s (with this repository)", where, ownModule)
				continue
			}
			target, err := filepath.Abs(filepath.Join(filepath.Dir(mod), f[3]))
			root, rerr := filepath.Abs("../..")
			if err != nil || rerr != nil || !strings.HasPrefix(f[3], ".") || target != root {
				t.Errorf("%s: %s must be replaced by the repository root as a relative path (../..), not %s", where, ownModule, f[3])
			}
		}
	}
}
