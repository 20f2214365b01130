package authz_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/kube-iam-authz/kube-iam-authz/"

// productImports maps each product package under dirs (relative to the
// module root) to the module packages its non-test files import.
func productImports(t *testing.T, dirs ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join("..", dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			pkg := filepath.ToSlash(filepath.Dir(strings.TrimPrefix(path, ".."+string(filepath.Separator))))
			for _, is := range f.Imports {
				p, _ := strconv.Unquote(is.Path.Value)
				if rest, ok := strings.CutPrefix(p, module); ok && !slices.Contains(out[pkg], rest) {
					out[pkg] = append(out[pkg], rest)
				}
			}
			if _, ok := out[pkg]; !ok {
				out[pkg] = nil
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestLayering holds the import rules docs/design.md draws: mapping depends
// on the authz leaves (identity, kubeuser) and never the other way; the
// leaves import nothing of the module; the error table imports no step of
// the path; nothing imports a command.
func TestLayering(t *testing.T) {
	imports := productImports(t, "authz", "mapping", "internal", "envoy")
	if len(imports["authz/check"]) == 0 || len(imports["mapping"]) == 0 {
		t.Fatalf("found no imports for authz/check or mapping: %v", imports)
	}
	leaves := map[string]bool{"authz/identity": true, "authz/kubeuser": true}
	pathSteps := []string{"authz", "authz/check", "authz/cache", "authz/verify", "authz/server"}
	for pkg, deps := range imports {
		for _, dep := range deps {
			switch {
			case strings.HasPrefix(pkg, "authz") && (dep == "mapping" || strings.HasPrefix(dep, "mapping/")):
				t.Errorf("%s imports %s: authz reads the mapping through check.Mapper and authz/kubeuser", pkg, dep)
			case strings.HasPrefix(pkg, "mapping") && strings.HasPrefix(dep, "authz") && !leaves[dep]:
				t.Errorf("%s imports %s: mapping may use only the authz leaves (identity, kubeuser)", pkg, dep)
			case leaves[pkg]:
				t.Errorf("%s imports %s: a leaf imports nothing of the module", pkg, dep)
			case pkg == "authz/outcome" && slices.Contains(pathSteps, dep):
				t.Errorf("authz/outcome imports %s: the table names errors, it runs no step", dep)
			case strings.HasPrefix(dep, "cmd/"):
				t.Errorf("%s imports %s: commands are imported by nothing", pkg, dep)
			}
		}
	}
}
