package securitylint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// productDirs are the packages that handle tokens, signatures and the proxy's own
// credential (relative to this package).
var productDirs = []string{"../../authz", "../../mapping", "../../cmd"}

// secretName matches identifiers that hold a credential or a value derived from one:
// a bearer token, a signature, a session token, a MAC or cache digest.
var secretName = regexp.MustCompile(`(?i)^(tok|token|bearer|secret|signature|sig|mac|digest)$|(?i)(token|secret|signature|bearer|digest)$`)

// notSecret are names that match the pattern but hold no secret (a token's
// fingerprint is a public correlation id; a bool or count about a token is not the
// token).
var notSecret = map[string]bool{
	"Fingerprint": true, "fingerprint": true,
}

// TestSecretsAreComparedInConstantTime fails on `a == b` or `a != b` where either side
// is named like a secret, unless the other side is a constant (an emptiness or nil
// check reveals only presence). Secrets are compared with crypto/subtle or hmac.Equal,
// whose running time does not depend on how many leading bytes match. Cache lookups
// by HMAC digest go through Go maps and are not flagged here: authz/cache/key.go
// explains why a keyed digest may be a map key.
func TestSecretsAreComparedInConstantTime(t *testing.T) {
	files := 0
	for _, dir := range productDirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			files++
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				be, ok := n.(*ast.BinaryExpr)
				if !ok || (be.Op != token.EQL && be.Op != token.NEQ) {
					return true
				}
				if isConstant(be.X) || isConstant(be.Y) {
					return true
				}
				for _, side := range []ast.Expr{be.X, be.Y} {
					if name := exprName(side); name != "" && secretName.MatchString(name) && !notSecret[name] {
						t.Errorf("%s: %q compared with %s; use crypto/subtle.ConstantTimeCompare", fset.Position(be.Pos()), name, be.Op)
						break
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 20 {
		t.Fatalf("scanned only %d files: the product directories moved?", files)
	}
}

// exprName is the last identifier of x, *x, x.y or x[i].
func exprName(x ast.Expr) string {
	switch e := x.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.StarExpr:
		return exprName(e.X)
	case *ast.ParenExpr:
		return exprName(e.X)
	}
	return ""
}

func isConstant(x ast.Expr) bool {
	switch e := x.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return e.Name == "nil" || e.Name == "true" || e.Name == "false"
	case *ast.CallExpr:
		// len(x) == len(y) and the like compare lengths, not contents.
		if id, ok := e.Fun.(*ast.Ident); ok && id.Name == "len" {
			return true
		}
	}
	return false
}
