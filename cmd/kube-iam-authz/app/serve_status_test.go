package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

func TestMappingStatus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aws-auth.yaml")
	good := "mapUsers: |\n  - userarn: arn:aws:iam::111122223333:user/bob\n    username: bob\n"
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := mapping.NewStore(mapping.StoreOptions{Path: path, Name: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Load(); err != nil {
		t.Fatal(err)
	}
	if got := mappingStatus([]*mapping.Store{store}); len(got) != 0 {
		t.Fatalf("healthy mapping: %q, want nothing", got)
	}
	if err := os.WriteFile(path, []byte("mapUsers: |\n  - userarn: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = store.Load()
	got := mappingStatus([]*mapping.Store{store})
	if len(got) != 1 || !strings.Contains(got[0], "mapping prod: last reload invalid") ||
		!strings.Contains(got[0], "serving the last good mapping sha256 "+store.Current().Hash()) {
		t.Errorf("corrupt mapping: %q", got)
	}
}
