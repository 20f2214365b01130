package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestVersionCommand(t *testing.T) {
	want := buildInfo()
	tests := map[string]struct {
		args     []string
		wantOut  string
		wantJSON bool
		wantCode int
	}{
		"version":         {args: []string{"version"}, wantOut: want.String() + "\n"},
		"--version":       {args: []string{"--version"}, wantOut: want.String() + "\n"},
		"version -o json": {args: []string{"version", "-o", "json"}, wantJSON: true},
		"bad output":      {args: []string{"version", "--output", "yaml"}, wantCode: 1},
		"no arguments":    {args: []string{"version", "extra"}, wantCode: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), tc.args, Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.wantCode, errOut.String())
			}
			if tc.wantCode != 0 {
				return
			}
			if tc.wantJSON {
				var got BuildInfo
				if err := json.Unmarshal(out.Bytes(), &got); err != nil || got != want {
					t.Fatalf("json %q = %+v (%v), want %+v", out.String(), got, err, want)
				}
				return
			}
			if out.String() != tc.wantOut {
				t.Errorf("out %q, want %q", out.String(), tc.wantOut)
			}
		})
	}
	if want.GoVersion != runtime.Version() || want.Version == "" || want.Commit == "" {
		t.Errorf("buildInfo() = %+v: want the runtime's Go version and a non-empty version and commit", want)
	}
}

func TestBuildInfoMetric(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	b := BuildInfo{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.99"}
	if err := registerBuildInfo(reg, b); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP kube_iam_authz_build_info Always 1; the labels identify the running build (version, revision = git commit, goversion).
# TYPE kube_iam_authz_build_info gauge
kube_iam_authz_build_info{goversion="go1.99",revision="abc",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kube_iam_authz_build_info"); err != nil {
		t.Error(err)
	}
}

// TestMakefileStampsVersion builds the binary with the -X flags the
// Makefile passes (read from the Makefile, values replaced) and runs it:
// a renamed variable or package path would make the linker silently skip
// the stamp, and the binary would still say "dev".
func TestMakefileStampsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root := filepath.Join("..", "..", "..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	pkg := regexp.MustCompile(`(?m)^VERSION_PKG\s*:=\s*(\S+)`).FindSubmatch(mk)
	ld := regexp.MustCompile(`(?m)^LDFLAGS\s*:=\s*(.+)$`).FindSubmatch(mk)
	if pkg == nil || ld == nil {
		t.Fatalf("Makefile has no VERSION_PKG / LDFLAGS")
	}
	values := map[string]string{"$(VERSION)": "v9.8.7-test", "$(COMMIT)": "0123456789abcdef"}
	flags := strings.ReplaceAll(string(ld[1]), "$(VERSION_PKG)", string(pkg[1]))
	for k, v := range values {
		flags = strings.ReplaceAll(flags, k, v)
	}
	if strings.Contains(flags, "$(") {
		t.Fatalf("LDFLAGS %q references variables this test does not know", flags)
	}
	bin := filepath.Join(t.TempDir(), "kube-iam-authz")
	build := exec.Command("go", "build", "-ldflags", flags, "-o", bin, "./cmd/kube-iam-authz")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", flags, err, out)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var got BuildInfo
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	want := BuildInfo{Version: "v9.8.7-test", Commit: "0123456789abcdef", GoVersion: runtime.Version()}
	if got != want {
		t.Errorf("stamped binary reports %+v, want %+v", got, want)
	}
}

// TestDockerfileStampsVersion: the image is stamped like `make build`
// (same -X targets, from the VERSION and REVISION build args) and its
// product stage carries the OCI labels with the same two values.
func TestDockerfileStampsVersion(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	pkg := regexp.MustCompile(`(?m)^VERSION_PKG\s*:=\s*(\S+)`).FindSubmatch(mk)
	if pkg == nil {
		t.Fatal("Makefile has no VERSION_PKG")
	}
	text := string(df)
	for _, want := range []string{
		"-X " + string(pkg[1]) + ".version=${VERSION}",
		"-X " + string(pkg[1]) + ".commit=${REVISION}",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile does not build with %q", want)
		}
	}
	// The labels belong to the product stage (from its FROM to the next).
	_, stage, ok := strings.Cut(text, "AS kube-iam-authz\n")
	if !ok {
		t.Fatal("Dockerfile has no kube-iam-authz stage")
	}
	stage, _, _ = strings.Cut(stage, "\nFROM ")
	for _, want := range []string{
		"ARG VERSION", "ARG REVISION",
		`org.opencontainers.image.version="${VERSION}"`,
		`org.opencontainers.image.revision="${REVISION}"`,
		"org.opencontainers.image.source=", "org.opencontainers.image.title=", "org.opencontainers.image.created=",
	} {
		if !strings.Contains(stage, want) {
			t.Errorf("the kube-iam-authz stage lacks %s", want)
		}
	}
}
