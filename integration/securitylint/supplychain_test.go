package securitylint

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
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

// TestDependenciesArePinned: no go.mod of ours has a replace directive pointing at a
// local path or a fork, each has its go.sum (go mod verify in `make lint` checks the
// root one), and the Makefile installs every tool at a fixed version, never @latest.
//
// The differential test against aws-iam-authenticator (integration/aiadiff) may
// replace exactly one thing, this repository's own module, with the repository root
// as a relative path, so that it tests the code in this tree.
//
// One module may replace staging modules, and only one way: integration/kubeapiserver builds the real
// kube-apiserver (test-only, never shipped) from k8s.io/kubernetes, whose go.mod
// points its staging modules (k8s.io/api, k8s.io/apiserver, ...) at ./staging
// directories that do not exist in the module zip. Replacing each with the same module
// at the published v0.MINOR.PATCH is the only way to build it, so there a replace must
// keep the module path, name an exact version, and that version must be the staging
// release of the k8s.io/kubernetes it requires (the one the Makefile's KUBE_VERSION
// names).
func TestDependenciesArePinned(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(mk), "\n") {
		if strings.Contains(line, "@latest") || (strings.Contains(line, "pip install") && !strings.Contains(line, "==")) {
			t.Errorf("Makefile:%d installs an unpinned tool: %s", i+1, strings.TrimSpace(line))
		}
	}
	kubeVersion := regexp.MustCompile(`(?m)^KUBE_VERSION\s*:=\s*(v1\.\d+\.\d+)\s*$`).FindStringSubmatch(string(mk))
	if kubeVersion == nil {
		t.Fatal("Makefile: no KUBE_VERSION := v1.MINOR.PATCH")
	}

	modules := []struct {
		dir string
		// kubernetes: the module builds k8s.io/kubernetes and replaces its staging
		// modules (see above); everywhere else a replace is an error.
		kubernetes bool
		// ownModule: the module tests this repository's code and replaces
		// ownModulePath with the repository root (see above).
		ownModule bool
	}{
		{dir: "."},
		{dir: "integration/apiserver"},
		{dir: "integration/aiadiff", ownModule: true},
		{dir: "integration/kubeapiserver", kubernetes: true},
	}
	// Every go.mod in the tree is one of these: a new module is added here, with
	// the rule it falls under, not skipped.
	listed := map[string]bool{}
	for _, m := range modules {
		listed[m.dir] = true
	}
	err = filepath.WalkDir("../..", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "../.." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.Name() == "go.mod" {
			dir, _ := filepath.Rel("../..", filepath.Dir(p))
			if !listed[filepath.ToSlash(dir)] {
				t.Errorf("%s/go.mod is a module this check does not know: add it above", dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range modules {
		t.Run(tc.dir, func(t *testing.T) {
			path := filepath.Join("../..", tc.dir, "go.mod")
			mod := readGoMod(t, path)
			if len(mod.Require) == 0 {
				t.Errorf("%s requires nothing?", path)
			}
			if _, err := os.Stat(filepath.Join("../..", tc.dir, "go.sum")); err != nil {
				t.Errorf("go.sum: %v", err)
			}
			if tc.ownModule {
				if len(mod.Replace) != 1 {
					t.Errorf("%s: %d replace directives, want exactly one (%s => ../..)", path, len(mod.Replace), ownModulePath)
				}
				for _, r := range mod.Replace {
					if r.Old.Path != ownModulePath || r.Old.Version != "" || r.New.Version != "" || !strings.HasPrefix(r.New.Path, ".") ||
						filepath.Clean(filepath.Join(tc.dir, r.New.Path)) != "." {
						t.Errorf("%s: replace %s => %s %s: a test module may only replace %s, with the repository root as a relative path",
							path, r.Old.Path, r.New.Path, r.New.Version, ownModulePath)
					}
				}
				return
			}
			if !tc.kubernetes {
				for _, r := range mod.Replace {
					t.Errorf("%s: replace %s => %s %s: dependencies come from the module proxy at pinned versions", path, r.Old.Path, r.New.Path, r.New.Version)
				}
				return
			}
			var kube string
			for _, r := range mod.Require {
				if r.Path == "k8s.io/kubernetes" {
					kube = r.Version
				}
			}
			if kube != kubeVersion[1] {
				t.Fatalf("%s requires k8s.io/kubernetes %q, the Makefile's KUBE_VERSION is %s", path, kube, kubeVersion[1])
			}
			staging := "v0" + strings.TrimPrefix(kube, "v1")
			if len(mod.Replace) == 0 {
				t.Errorf("%s replaces nothing: k8s.io/kubernetes does not build without its staging modules", path)
			}
			for _, r := range mod.Replace {
				if !strings.HasPrefix(r.Old.Path, "k8s.io/") || r.Old.Path == "k8s.io/kubernetes" || r.Old.Version != "" ||
					r.New.Path != r.Old.Path || r.New.Version != staging {
					t.Errorf("%s: replace %s %s => %s %s: want only k8s.io/<staging> => the same module at %s",
						path, r.Old.Path, r.Old.Version, r.New.Path, r.New.Version, staging)
				}
			}
		})
	}
}

// goMod is the part of `go mod edit -json` these checks read (cmd/go's own parser,
// so a go.mod formatted any legal way is read the way the go command reads it).
type goMod struct {
	Require []struct{ Path, Version string }
	Replace []struct {
		Old, New struct{ Path, Version string }
	}
}

func readGoMod(t *testing.T, path string) goMod {
	t.Helper()
	out, err := exec.Command("go", "mod", "edit", "-json", path).Output()
	if err != nil {
		t.Fatalf("go mod edit -json %s: %v", path, err)
	}
	var m goMod
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("go mod edit -json %s: %v", path, err)
	}
	return m
}

// ownModulePath is this repository's module path.
const ownModulePath = "github.com/kube-iam-authz/kube-iam-authz"
